import Foundation
import SVCTraceTestSupport
import Testing

/// Services created after install (issue 15: "0 of 30"): `install` with no scope flag learns the
/// cluster's Service CIDR (node1 is the control plane: ServiceCIDR objects, kube-apiserver's
/// manifest), so a ClusterIP Service added later is logged at once; a load-balancer IP added later
/// is outside that CIDR and is covered by the node-side refresh (every 15 s) within 60 s, with no
/// svctrace command run in between. Then 30 connections to each are traced right, and `verify`
/// passes (its `dataplane/scope` check would fail while an address is not logged).
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct AfterInstallTests {
  static let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
  static let lateClusterIP = "late-web"
  static let lateLoadBalancer = "late-lb"
  static let lateIngress = "192.0.2.70"
  /// The node that announces the late ingress IP (MetalLB L2 style).
  static let announcer = "node2"

  @Test func servicesCreatedAfterInstallAreTracedWithNoCommandRun() async throws {
    let install = try await Lab.installFresh(["--json"])
    #expect(install.stdout.contains("10.96.0.0/12"), "install did not learn the Service CIDR: \(install.stdout)")
    try await withCleanup {
      // Created after install: nothing of svctrace runs between these and the traffic.
      let added = [
        [
          "service", "add", Self.lateClusterIP, "--cluster-ip", "10.97.0.40", "--selector", "app=web",
        ],
        [
          "service", "add", Self.lateLoadBalancer, "--type", "LoadBalancer", "--cluster-ip", "10.97.0.41",
          "--node-port", "30091", "--lb-ip", "\(Self.lateIngress)@2", "--selector", "app=web",
        ],
      ]
      for arguments in added {
        let run = try await Lab.lab(arguments)
        try #require(run.status == 0, "lab \(arguments.joined(separator: " ")): \(run.stdout)\(run.stderr)")
      }
      let created = ContinuousClock.now

      // The refresh on the announcing node must cover the new ingress IP within 60 s.
      var covered = false
      while !covered && ContinuousClock.now - created < .seconds(60) {
        // svctrace's own rules on the node: the refresh-owned chains (iptables) or set (nftables).
        let rules = try await Lab.onNode(
          Self.announcer, "iptables-save -t mangle 2>/dev/null; nft list table inet svctrace 2>/dev/null")
        covered = rules.stdout.contains(Self.lateIngress)
        if !covered { try await Task.sleep(for: .seconds(1)) }
      }
      print("AfterInstall: \(Self.lateIngress) covered by the refresh after \(ContinuousClock.now - created)")
      try #require(covered, "the refresh did not cover \(Self.lateIngress) within 60 s of its creation")

      let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-late-\(UUID())").path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let truthFile = directory + "/truth.jsonl"
      let traffic = try await Lab.lab([
        "traffic", "--kinds", "pod-clusterip,lb", "--service", "default/\(Self.lateClusterIP)", "--service",
        "default/\(Self.lateLoadBalancer)",
        "--count", "30", "--check", "--out", truthFile,
      ])
      try #require(traffic.status == 0, "traffic: \(traffic.stdout)\(traffic.stderr)")
      try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously

      let store = directory + "/store.sqlite"
      let collect = try await Lab.svctrace(["collect", "--store", store] + Self.fleet)
      try #require(collect.status == 0, "collect: \(collect.stdout)\(collect.stderr)")
      let byClient = try await GroundTruth.tracedByClient(store: store)
      let truth = try GroundTruth.lines(truthFile)
      for kind in ["pod-clusterip", "lb"] {
        let connections = truth.filter { $0["kind"] as? String == kind }
        #expect(connections.count >= 30, "\(kind): only \(connections.count) connections made")
        let outcome = GroundTruth.compare(connections, with: byClient, mismatch: ServiceKindsTests.mismatch)
        print(
          "AfterInstall: \(kind) to a Service created after install: \(outcome.right) of \(connections.count) "
            + "traced right, \(outcome.missing.count) missing, \(outcome.wrong.count) wrong")
        #expect(outcome.missing.isEmpty, "\(kind): missing: \(outcome.missing.prefix(8))")
        #expect(outcome.wrong.isEmpty, "\(kind): wrong: \(outcome.wrong.prefix(8))")
      }

      let verify = try await Lab.svctrace(["verify"] + Self.fleet)
      #expect(verify.status == 0, "verify after the refresh: \(verify.stdout)\(verify.stderr)")
    } cleanup: {
      for name in [Self.lateClusterIP, Self.lateLoadBalancer] { _ = try? await Lab.lab(["service", "rm", name]) }
      _ = try? await Lab.svctrace(["remove"] + Self.fleet)
    }
  }
}
