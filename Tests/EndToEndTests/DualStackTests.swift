import Foundation
import SVCTraceTestSupport
import Testing

/// Dual-stack Services (issue 15): the lab's `web-dual` has an IPv6 ClusterIP besides its IPv4
/// one, and kube-proxy's IPv6 proxier writes its rules with ip6tables (iptables-nft and
/// iptables-legacy nodes) or into `table ip6 kube-proxy` (nftables nodes). `install` with no scope
/// flags learns both Service CIDRs; `lab traffic --kinds ipv6` (pods and nodes → the IPv6
/// ClusterIP, TCP and UDP, ground truth from the answering pod) → `collect` → `trace`: every
/// connection traced to the IPv6 ClusterIP and port, the node that translated it and the pod.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct DualStackTests {
  @Test func everyIPv6ConnectionIsTracedRightOnEveryBackend() async throws {
    let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
    let cluster = try Lab.cluster()
    try await Lab.installFresh()
    try await withCleanup {
      let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-dual-\(UUID())").path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let truthFile = directory + "/truth.jsonl"
      let traffic = try await Lab.lab(["traffic", "--kinds", "ipv6", "--count", "60", "--check", "--out", truthFile])
      try #require(traffic.status == 0, "traffic: \(traffic.stdout)\(traffic.stderr)")
      try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously

      // The LOG lines of IPv6 connections reached every node's file (the relay attributes them by
      // interface name, as it does IPv4 lines).
      for node in cluster.nodes {
        let lines = try await Lab.onNode(node.name, "grep -c 'SRC=fd00:' /var/log/iptables.log || true")
        let count = Int(lines.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(count > 0, "\(node.name): no IPv6 line in /var/log/iptables.log")
      }

      let store = directory + "/store.sqlite"
      let collect = try await Lab.svctrace(["collect", "--store", store, "--json"] + fleet)
      try #require(collect.status == 0, "collect: \(collect.stdout)\(collect.stderr)")
      let byClient = try await GroundTruth.tracedByClient(store: store)
      let truth = try GroundTruth.lines(truthFile).filter { $0["kind"] as? String == "ipv6" }
      #expect(truth.count >= 60, "only \(truth.count) IPv6 ground-truth connections")
      #expect(Set(truth.compactMap { $0["proto"] as? String }) == ["tcp", "udp"], "IPv6 traffic is not TCP and UDP")

      let backends = Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0.name, $0.backend) })
      var figures: [String] = []
      for backend in Set(backends.values).sorted() {
        let connections = truth.filter { backends[$0["dnat_node"] as? String ?? ""] == backend }
        #expect(!connections.isEmpty, "\(backend): no IPv6 connection translated on it")
        let outcome = GroundTruth.compare(connections, with: byClient, mismatch: ServiceKindsTests.mismatch)
        figures.append(
          "\(backend) \(outcome.right)/\(connections.count) (\(outcome.missing.count) missing, "
            + "\(outcome.wrong.count) wrong)")
        #expect(outcome.missing.isEmpty, "\(backend): missing \(outcome.missing.prefix(8))")
        #expect(outcome.wrong.isEmpty, "\(backend): wrong \(outcome.wrong.prefix(8))")
      }
      print("DualStack: IPv6 ClusterIP connections traced right: \(figures.joined(separator: ", "))")
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }
}
