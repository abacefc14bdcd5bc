import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `install` → traffic with ground truth → `collect` → `trace` / `stats` on the lab: issue 7's
/// acceptance test. The capture runs once for the suite; every test reads the same store.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct TraceEndToEndTests {
  /// What one capture produced: the store and the ground truth of every connection.
  ///
  /// Unchecked `Sendable`: its JSON objects are made once, by the capture, and only read after.
  struct Capture: @unchecked Sendable {
    var store: String
    var truth: [[String: Any]]
    var nodeIPs: [String: String]
    var podNodes: [String: String]
    /// RFC 3339 bounds around the traffic run, for `--since` / `--until` (the lab may carry
    /// other traffic outside them).
    var since: String
    var until: String
  }

  /// The one capture of the suite: started by the first test to ask (a `static let` is
  /// initialised once), awaited by the others; a failure is kept and rethrown to each of them.
  private static let capturing = Task { try await makeCapture() }

  /// Installs svctrace on every lab node, sends ≥ 1000 connections of every kind (a burst of
  /// 240 concurrent ones included), collects into a fresh store and removes svctrace again.
  static func capture() async throws -> Capture {
    try await capturing.value
  }

  private static func makeCapture() async throws -> Capture {
    let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
    let cluster = try Lab.cluster()
    try await Lab.svctrace(["remove"] + fleet)
    let install = try await Lab.svctrace(["install"] + fleet)
    try #require(install.status == 0, "install: \(install.stdout)\(install.stderr)")
    return try await withCleanup {
      // Start from empty node logs so earlier runs' client ports cannot collide with this run's.
      // Empty the logs, and forget earlier tests' flows: a UDP 5-tuple still in conntrack is not a new
      // connection (no LOG line), so the ground truth must only hold new flows.
      for node in cluster.nodes {
        try await Lab.onNode(node.name, ": > /var/log/iptables.log; conntrack -F >/dev/null 2>&1 || true")
      }

      // Stores of earlier runs (the suite has no teardown hook after its last test).
      let temporary = FileManager.default.temporaryDirectory
      for stale in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
      where stale.hasPrefix("svct-trace-e2e-") {
        try? FileManager.default.removeItem(at: temporary.appendingPathComponent(stale))
      }
      let directory = temporary.appendingPathComponent("svct-trace-e2e-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      let truthFile = directory + "/truth.jsonl"
      // 6 kinds × 130 + a burst of 240 concurrent connections = 1020.
      let formatter = ISO8601DateFormatter()
      formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
      let since = formatter.string(from: Date().addingTimeInterval(-1))
      let traffic = try await Lab.lab(["traffic", "--count", "130", "--burst", "240", "--check", "--out", truthFile])
      let until = formatter.string(from: Date().addingTimeInterval(1))
      try #require(traffic.status == 0, "traffic: \(traffic.stdout)\(traffic.stderr)")
      try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously

      let store = directory + "/store.sqlite"
      let collect = try await Lab.svctrace(["collect", "--store", store, "--json"] + fleet)
      try #require(collect.status == 0, "collect: \(collect.stdout)\(collect.stderr)")

      let truth = try String(contentsOfFile: truthFile, encoding: .utf8).split(separator: "\n").compactMap {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
      let raw = try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: Lab.directory + "/cluster.json")))
      let pods = (raw as? [String: Any])?["pods"] as? [[String: Any]] ?? []
      var podNodes: [String: String] = [:]
      for pod in pods {
        if let name = pod["name"] as? String, let node = pod["node"] as? String { podNodes[name] = node }
      }
      return Capture(
        store: store, truth: truth, nodeIPs: Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0.name, $0.ip) }),
        podNodes: podNodes, since: since, until: until)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }

  /// A record of a pre line without a post line (method `pod-unknown`, no pod).
  static func isPodUnknown(_ record: [String: Any]) -> Bool { record["method"] as? String == "pod-unknown" }

  /// What is wrong with `record` as the answer for ground-truth `connection` (nil when right).
  private static func mismatch(_ record: [String: Any], _ connection: [String: Any], _ capture: Capture) -> String? {
    let kind = connection["kind"] as? String ?? "?"
    let node = connection["dnat_node"] as? String ?? "?"
    var serviceIP = "\(connection["service_ip"] ?? "")"
    var problems: [String] = []
    if kind == "nodeport" {
      // The client dialled the node's own address and the NodePort.
      serviceIP = capture.nodeIPs[node] ?? "?"
    } else if "\(record["service_port"] ?? "")" != "\(connection["service_port"] ?? "")" {
      problems.append("service_port \(record["service_port"] ?? "nil")")
    }
    if "\(record["service_ip"] ?? "")" != serviceIP { problems.append("service_ip \(record["service_ip"] ?? "nil")") }
    if "\(record["pod_ip"] ?? "")" != "\(connection["pod_ip"] ?? "")" {
      problems.append("pod_ip \(record["pod_ip"] ?? "nil")")
    }
    if "\(record["pod_port"] ?? "")" != "\(connection["pod_port"] ?? "")" {
      problems.append("pod_port \(record["pod_port"] ?? "nil")")
    }
    if record["node"] as? String != node { problems.append("node \(record["node"] ?? "nil") instead of \(node)") }
    return problems.isEmpty ? nil : "\(kind) \(GroundTruth.key(connection)): " + problems.joined(separator: ", ")
  }

  @Test func everyGroundTruthConnectionTracesToItsServicePodAndNode() async throws {
    let capture = try await Self.capture()
    let truth = capture.truth
    #expect(truth.count >= 1000, "only \(truth.count) ground-truth connections")
    // The burst's 240 concurrent connections are recorded as host-/pod-clusterip, on top of 130 each.
    let clusterIP = truth.filter { ["host-clusterip", "pod-clusterip"].contains($0["kind"] as? String ?? "") }.count
    #expect(clusterIP >= 2 * 130 + 200, "\(clusterIP) ClusterIP connections: the concurrent burst is missing")
    let kinds = Set(truth.compactMap { $0["kind"] as? String })
    #expect(kinds.isSuperset(of: ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hairpin", "hostnetwork"]))

    // Every stored connection at once, matched on (proto, client ip:port) here.
    let byClient = try await GroundTruth.tracedByClient(store: capture.store)
    let outcome = GroundTruth.compare(truth, with: byClient) { Self.mismatch($0, $1, capture) }
    let (missing, wrong) = (outcome.missing, outcome.wrong)
    #expect(
      missing.isEmpty, "\(missing.count) of \(truth.count) connections missing or ambiguous: \(missing.prefix(10))")
    #expect(wrong.isEmpty, "\(wrong.count) of \(truth.count) connections answered wrongly: \(wrong.prefix(10))")

    // The exact command of the issue, for a sample of every kind: `trace --client IP:PORT --format json`.
    var sample: [[String: Any]] = []
    for kind in kinds.sorted() { sample += truth.filter { $0["kind"] as? String == kind }.prefix(4) }
    for connection in sample {
      let client = "\(connection["client_ip"] ?? ""):\(connection["client_port"] ?? "")"
      let run = try await Lab.svctrace([
        "trace", "--store", capture.store, "--client", client, "--proto", "\(connection["proto"] ?? "")", "--format",
        "json",
      ])
      #expect(run.status == 0, "\(client): \(run.stderr)")
      let records = (try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]] ?? []).filter {
        !Self.isPodUnknown($0)
      }
      #expect(records.count == 1, "\(client): \(records.count) records")
      if let record = records.first { #expect(Self.mismatch(record, connection, capture) == nil, "\(client)") }
    }

    // A client that made no connection: no record, exit status 1.
    let none = try await Lab.svctrace([
      "trace", "--store", capture.store, "--client", "10.250.0.254:9", "--format", "json",
    ])
    #expect(none.status == 1)
    #expect(none.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
  }

  @Test func traceShowsServiceAndPodNamesFromTheKubectlSnapshot() async throws {
    let capture = try await Self.capture()
    // ClusterIP kinds: the Service's and pod's names are known from node1's kubectl snapshot.
    let named = capture.truth.filter {
      ["host-clusterip", "pod-clusterip", "udp", "hairpin"].contains($0["kind"] as? String ?? "")
    }
    try #require(!named.isEmpty)
    let sample = stride(from: 0, to: named.count, by: max(1, named.count / 12)).map { named[$0] }
    for connection in sample {
      let client = "\(connection["client_ip"] ?? ""):\(connection["client_port"] ?? "")"
      let run = try await Lab.svctrace([
        "trace", "--store", capture.store, "--client", client, "--proto", "\(connection["proto"] ?? "")", "--format",
        "json",
        "--explain",
      ])
      let record = try #require(
        (try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])?.first,
        "\(client): \(run.stderr)")
      #expect(record["service"] as? String == connection["service"] as? String, "\(client)")
      let podName = connection["pod_name"] as? String ?? "?"
      #expect((record["pod"] as? String)?.hasSuffix("/" + podName) == true, "\(client): pod \(record["pod"] ?? "nil")")
      #expect(record["pod_node"] as? String == capture.podNodes[podName], "\(client)")
      let explain = record["explain"] as? [[String: Any]] ?? []
      #expect(explain.map { $0["stage"] as? String } == ["pre", "post"], "\(client)")
    }
    // A Service by name selects exactly its connections.
    let service = try #require(named.first?["service"] as? String)
    let run = try await Lab.svctrace([
      "trace", "--store", capture.store, "--service", service, "--since", capture.since, "--until", capture.until,
      "--format", "jsonl", "--max", "100000",
    ])
    let records = run.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }.filter { !Self.isPodUnknown($0) }
    let expected = capture.truth.filter { $0["service"] as? String == service }.count
    #expect(records.count == expected, "\(service): \(records.count) records, \(expected) in the ground truth")
    #expect(records.allSatisfy { $0["service"] as? String == service })
  }

  @Test func statsCountsEveryEndpointInJSONAndHTML() async throws {
    let capture = try await Self.capture()
    // The Service with the most ground-truth connections.
    var counts: [String: Int] = [:]
    for connection in capture.truth { counts[connection["service"] as? String ?? "?", default: 0] += 1 }
    let service = try #require(counts.max { $0.value < $1.value }?.key)
    var perEndpoint: [String: Int] = [:]
    for connection in capture.truth where connection["service"] as? String == service {
      perEndpoint["\(connection["pod_ip"] ?? ""):\(connection["pod_port"] ?? "")", default: 0] += 1
    }

    let window = ["--since", capture.since, "--until", capture.until]
    let json = try await Lab.svctrace(
      ["stats", "--store", capture.store, "--service", service, "--format", "json"] + window)
    #expect(json.status == 0, "\(json.stderr)")
    let stats = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
    #expect(stats["service"] as? String == service)
    #expect(stats["connections"] as? Int == counts[service])
    let endpoints = stats["endpoints"] as? [[String: Any]] ?? []
    var seen: [String: Int] = [:]
    for endpoint in endpoints where (endpoint["connections"] as? Int ?? 0) > 0 {
      seen[endpoint["endpoint"] as? String ?? "?"] = endpoint["connections"] as? Int
    }
    #expect(seen == perEndpoint)
    let shares = endpoints.compactMap { $0["share"] as? Double }
    #expect(abs(shares.reduce(0, +) - 1) < 1e-9)
    let expectedShares = endpoints.compactMap { $0["expectedShare"] as? Double }
    #expect(abs(expectedShares.reduce(0, +) - 1) < 1e-6)

    let html = FileManager.default.temporaryDirectory.appendingPathComponent("svct-stats-\(UUID().uuidString).html")
      .path
    defer { try? FileManager.default.removeItem(atPath: html) }
    let page = try await Lab.svctrace(
      ["stats", "--store", capture.store, "--service", service, "--format", "html", "--output", html] + window)
    #expect(page.status == 0, "\(page.stderr)")
    let text = try String(contentsOfFile: html, encoding: .utf8)
    #expect(text.hasPrefix("<!DOCTYPE html>"))
    #expect(text.contains("<span id=\"connections\">\(counts[service] ?? -1) connections</span>"))
    for (endpoint, count) in perEndpoint {
      #expect(text.contains("<td class=\"endpoint\">\(endpoint)</td>"), "\(endpoint)")
      #expect(text.contains("<td class=\"num\">\(count)</td>"), "\(endpoint)")
    }
    #expect(!text.contains("http://") && !text.contains("https://"), "the page must be self-contained")
  }

  @Test func followPrintsConnectionsMadeAfterItStarted() async throws {
    _ = try await Self.capture()  // the capture's install/remove must not overlap with this one
    let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
    let install = try await Lab.svctrace(["install"] + fleet)
    try #require(install.status == 0, "install: \(install.stdout)\(install.stderr)")
    try await withCleanup {
      let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "svct-trace-e2e-follow-\(UUID().uuidString)"
      ).path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }

      let process = try await BackgroundProcess.start(
        [
          Lab.binary, "trace", "--store", directory + "/store.sqlite", "--follow", "--interval", "1", "--for", "60s",
          "--format", "jsonl",
        ] + fleet, collectOutput: true)
      // Wait (bounded) until it has caught up with what the nodes logged before.
      let start = Date()
      while Date().timeIntervalSince(start) < 60, process.isRunning,
        !String(decoding: process.standardErrorSoFar, as: UTF8.self).contains("Following")
      {
        try await Task.sleep(for: .milliseconds(200))
      }
      let truthFile = directory + "/truth.jsonl"
      let traffic = try await Lab.lab([
        "traffic", "--count", "5", "--kinds", "host-clusterip,udp", "--check", "--out", truthFile,
      ])
      #expect(traffic.status == 0, "\(traffic.stdout)\(traffic.stderr)")
      let deadline = Date().addingTimeInterval(90)
      while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(500)) }
      if process.isRunning { process.signal(SIGINT) }
      let result = try await process.wait()
      #expect(result.exitStatus == 0, "\(result.stderrText)")

      let printed = try result.stdoutText.split(separator: "\n").compactMap {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
      let truth = try String(contentsOfFile: truthFile, encoding: .utf8).split(separator: "\n").compactMap {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
      #expect(truth.count == 10)
      let keys = Set(printed.map(GroundTruth.key))
      let unseen = truth.filter { !keys.contains(GroundTruth.key($0)) }.map(GroundTruth.key)
      #expect(unseen.isEmpty, "not printed by --follow: \(unseen)")
      // Only what happened after it started: no connection of the suite's earlier capture.
      let earlier = Set(try await Self.capture().truth.map(GroundTruth.key))
      #expect(printed.filter { earlier.contains(GroundTruth.key($0)) }.isEmpty)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }
}
