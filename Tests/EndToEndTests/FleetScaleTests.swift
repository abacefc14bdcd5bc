import Foundation
import SVCTraceTestSupport
import Testing

/// Fleet scale (#14) on a large lab (`scripts/test` brings up 50 nodes for it, `SVCTRACE_SCALE=1`):
/// install, verify, traffic of every kind with ground truth, collect, `trace` — every connection
/// the traffic made is traced to its Service, pod and node — a second collect that finds nothing
/// new, remove.
/// No time is asserted: speed is `svctrace-bench fleet`'s job.
@Suite(
  .serialized,
  .enabled(if: Lab.isUp && Lab.environment["SVCTRACE_SCALE"] != nil, "needs SVCTRACE_SCALE=1 and a large lab"))
struct FleetScaleTests {
  let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts, "--forks", "20"]

  @Test func everyConnectionOfEveryKindIsTracedRightAcrossTheFleet() async throws {
    let nodes = try Lab.cluster().nodes
    try #require(nodes.count >= 50, "the scale suite needs a lab of at least 50 nodes, this one has \(nodes.count)")
    try await Lab.svctrace(["remove"] + fleet)
    let install = try await Lab.svctrace(["install", "--json"] + fleet)
    try #require(install.status == 0, "install: \(install.stdout.suffix(2000))\(install.stderr.suffix(2000))")
    let verify = try await Lab.svctrace(["verify"] + fleet)
    #expect(verify.status == 0, "verify: \(verify.stdout.suffix(3000))")
    try await withCleanup {
      for node in nodes {
        try await Lab.onNode(node.name, ": > /var/log/iptables.log; conntrack -F >/dev/null 2>&1 || true")
      }

      let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-scale-\(UUID())").path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let truthFile = directory + "/truth.jsonl"
      let kinds = "host-clusterip,pod-clusterip,nodeport,udp,hostnetwork,burst"
      // Connections that time out under load are not in the ground truth (and not asserted);
      // every one that was made must be traced right.
      _ = try await Lab.lab([
        "traffic", "--count", "60", "--burst", "240", "--kinds", kinds, "--timeout", "10", "--out", truthFile,
      ])
      try await Task.sleep(for: .seconds(3))  // rsyslog writes asynchronously
      let truth = try String(contentsOfFile: truthFile, encoding: .utf8).split(separator: "\n").compactMap {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
      // Under load the generator times some connections out (they are not ground truth); enough of
      // every kind must remain for the check to mean something.
      #expect(truth.count >= 200, "the traffic made only \(truth.count) of 540 connections")
      let made = Set(truth.compactMap { $0["kind"] as? String })
      #expect(made.isSuperset(of: ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hostnetwork"]), "\(made)")

      let store = directory + "/store.sqlite"
      let collect = try await Lab.svctrace(["collect", "--store", store, "--no-snapshot"] + fleet)
      #expect(collect.status == 0, "collect: \(collect.stdout.suffix(3000))\(collect.stderr.suffix(2000))")
      let all = try await Lab.svctrace(["trace", "--store", store, "--format", "jsonl", "--max", "1000000"])
      var byClient: [String: [[String: Any]]] = [:]
      for line in all.stdout.split(separator: "\n") {
        let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        // A pre line without a post line (a timed-out connection, pod unknown) is no ground truth.
        if record["method"] as? String == "pod-unknown" { continue }
        byClient["\(record["proto"] ?? "")|\(record["client_ip"] ?? ""):\(record["client_port"] ?? "")", default: []]
          .append(record)
      }
      let nodeIPs = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.ip) })
      var problems: [String] = []
      for connection in truth {
        let key = "\(connection["proto"] ?? "")|\(connection["client_ip"] ?? ""):\(connection["client_port"] ?? "")"
        let records = byClient[key] ?? []
        guard records.count == 1, let record = records.first else {
          problems.append("\(connection["kind"] ?? "?") \(key): \(records.count) records")
          continue
        }
        let node = connection["dnat_node"] as? String ?? "?"
        let service =
          connection["kind"] as? String == "nodeport" ? nodeIPs[node] ?? "?" : "\(connection["service_ip"] ?? "")"
        let wrong = [
          ("service_ip", service), ("pod_ip", "\(connection["pod_ip"] ?? "")"),
          ("pod_port", "\(connection["pod_port"] ?? "")"), ("node", node),
        ].filter { "\(record[$0.0] ?? "")" != $0.1 }.map(\.0)
        if !wrong.isEmpty { problems.append("\(connection["kind"] ?? "?") \(key): wrong \(wrong)") }
      }
      #expect(problems.isEmpty, "\(problems.count) of \(truth.count) connections: \(problems.prefix(10))")

      // A second collect finds nothing new on any node (one exchange each).
      let again = try await Lab.svctrace(["collect", "--store", store, "--no-snapshot", "--json"] + fleet)
      #expect(again.status == 0)
      let idle = try NSRegularExpression(pattern: #""lines" ?: ?0[,\n ]"#)
        .numberOfMatches(in: again.stdout, range: NSRange(again.stdout.startIndex..., in: again.stdout))
      #expect(idle == nodes.count, "\(idle) of \(nodes.count) nodes reported 0 new lines")
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }
}
