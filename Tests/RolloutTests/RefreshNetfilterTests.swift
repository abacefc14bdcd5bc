import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// A Service created after install is logged with no command run: real netfilter (iptables-nft,
/// iptables-legacy, nftables) in scratch namespaces, svctrace installed with its node-side refresh,
/// then kube-proxy gets a rule for a new address; once the refresh covered it (bounded poll), a
/// connection to it from pod B is counted by svctrace's LOG rules, once before and once after DNAT.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct RefreshNetfilterTests {
  struct Case: Sendable, CustomTestStringConvertible {
    var id: Int
    var kind: FakeKubeProxy
    /// `--service-cidr 10.96.0.0/12` given: the refresh adds load-balancer/external IPs only.
    var withCIDR: Bool
    /// The new Service address (10.112.0.0/16 is routed to the node from pod B by the test).
    var address: String
    var testDescription: String {
      "\(kind.rawValue), \(withCIDR ? "service CIDR given" : "no service CIDR"), new \(address)"
    }
  }

  static let cases = [
    Case(id: 31, kind: .iptablesNFT, withCIDR: true, address: "10.112.0.50"),
    Case(id: 32, kind: .iptablesLegacy, withCIDR: true, address: "10.112.0.50"),
    Case(id: 33, kind: .nftables, withCIDR: false, address: "10.112.0.50"),
    Case(id: 34, kind: .iptablesNFT, withCIDR: false, address: "10.96.0.40"),
    Case(id: 35, kind: .nftables, withCIDR: true, address: "10.112.0.50"),
  ]

  /// kube-proxy's rule for the new Service (a load-balancer IP, or a ClusterIP for 10.96.x), and its removal.
  static func kubeProxyRule(_ test: Case) -> (add: String, delete: String) {
    let loadBalancer = !test.address.hasPrefix("10.96.")
    switch test.kind {
    case .iptablesNFT, .iptablesLegacy:
      let binary = test.kind == .iptablesNFT ? "iptables-nft" : "iptables-legacy"
      let spec =
        "KUBE-SERVICES -d \(test.address)/32 -p tcp -m comment --comment "
        + (loadBalancer ? "'default/web:http loadbalancer IP'" : "'default/new:http cluster IP'")
        + " -m tcp --dport 80 -j " + (loadBalancer ? "KUBE-EXT-WEB" : "KUBE-SVC-WEB")
      return ("\(binary) -t nat -I \(spec)", "\(binary) -t nat -D \(spec)")
    case .nftables:
      let verdict = loadBalancer ? "external-web" : "service-web"
      return (
        "nft add element ip kube-proxy service-ips '{ \(test.address) . tcp . 80 : goto \(verdict) }'",
        "nft delete element ip kube-proxy service-ips '{ \(test.address) . tcp . 80 }'"
      )
    }
  }

  /// Whether svctrace's refresh-owned rules log `address` now.
  static func covered(_ scratch: ScratchNode, _ test: Case) async throws -> Bool {
    let command =
      switch test.kind {
      case .iptablesNFT: "iptables-nft-save -t mangle"
      case .iptablesLegacy: "iptables-legacy-save -t mangle"
      case .nftables: "nft list set inet svctrace extra4"
      }
    let text = try await scratch.check("ip netns exec \(scratch.node) \(command)").stdoutText
    return test.kind == .nftables
      ? NFTText.elements(of: "extra4", in: text).contains(test.address)
      : text.contains("-A SVCT-PRE-X -d \(test.address)/32 -p tcp ")
  }

  @Test(arguments: cases)
  func aServiceCreatedAfterInstallIsLogged(test: Case) async throws {
    let scratch = try await ScratchNode.make(id: test.id, kind: test.kind)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings()
      settings.refreshInterval = 1
      if test.withCIDR { settings.serviceCIDRs = [try CIDR("10.96.0.0/12")] }
      let before = try await scratch.snapshot()

      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(report.steps.contains { $0.name == "start the refresh" && $0.outcome == .changed })
      // Its first round ran as install finished.
      let first = RefreshStatus(
        parsing: (try? String(contentsOfFile: settings.refreshStatusPath, encoding: .utf8)) ?? "")
      #expect(first.lastOK != nil && first.error.isEmpty, "\(first)")
      try await scratch.check("ip -n \(scratch.podB) route add 10.112.0.0/16 via 10.244.2.1")

      // Nothing is run after this point but kube-proxy's own change and the refresh on the node.
      let rule = Self.kubeProxyRule(test)
      try await scratch.check("ip netns exec \(scratch.node) \(rule.add)")
      var isCovered = false
      for _ in 0..<300 where !isCovered {
        isCovered = try await Self.covered(scratch, test)
        if !isCovered { try await Task.sleep(for: .milliseconds(100)) }
      }
      let status = try? String(contentsOfFile: settings.refreshStatusPath, encoding: .utf8)
      try #require(isCovered, "the refresh did not cover \(test.address); status: \(status ?? "none")")

      let start = try await scratch.logCounters()
      try await scratch.connect(from: scratch.podB, to: test.address, port: 80)
      let end = try await scratch.logCounters()
      #expect(
        (end.pre - start.pre, end.post - start.post) == (1, 1),
        "PRE/POST counted \(end.pre - start.pre)/\(end.post - start.post)")

      // What verify reads: the refresh runs and is fresh, the scope covers every Service address.
      let probe = try await NodeProber.probe(session, settings: settings)
      #expect(probe.refresh.running == "loop")
      #expect(probe.refresh.error.isEmpty, "\(probe.refresh.error)")
      let checks = Verifier.scopeChecks(probe, dataplane: try probe.dataplane.get(), settings: settings)
      #expect(checks.first { $0.name == "scope" }?.status == .pass, "\(checks)")
      #expect(checks.first { $0.name == "refresh" }?.status == .pass, "\(checks)")

      // A second install learns the new address into its own rules and keeps what the refresh
      // added; a third changes nothing.
      let second = await NodeRollout.install(session, settings: settings)
      #expect(second.failure == nil)
      #expect(try await Self.covered(scratch, test))
      session.clearLog()
      let third = await NodeRollout.install(session, settings: settings)
      #expect(third.failure == nil)
      #expect(!third.changed, "third install changed: \(third.steps)")
      #expect(session.commandLog.count == 1)

      // Remove stops the refresh and leaves the node as it was (kube-proxy's new rule aside).
      let pid = try #require(
        Int32(
          (try String(contentsOfFile: settings.refreshPidPath, encoding: .utf8)).trimmingCharacters(
            in: .whitespacesAndNewlines)))
      let removed = await NodeRollout.remove(session, settings: settings)
      #expect(removed.failure == nil, "\(String(describing: removed.failure))")
      var gone = false
      for _ in 0..<50 where !gone {
        gone = kill(pid, 0) != 0
        if !gone { try await Task.sleep(for: .milliseconds(100)) }
      }
      #expect(gone, "the refresh loop (pid \(pid)) still runs after remove")
      try await scratch.check("ip netns exec \(scratch.node) \(rule.delete)")
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
    } cleanup: {
      await scratch.tearDown()
    }
  }

  /// An install that fails after the refresh was started rolls back without leaving it running.
  @Test func aFailedInstallStopsTheRefresh() async throws {
    let scratch = try await ScratchNode.make(id: 36, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings(validate: "false")
      settings.refreshInterval = 1
      let before = try await scratch.snapshot()
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure != nil)
      #expect(report.steps.contains { $0.name == "start the refresh" && $0.outcome == .changed })
      #expect(report.steps.contains { $0.outcome == .rolledBack }, "\(report.steps)")
      let running = try await scratch.check(
        "for p in /proc/[0-9]*; do grep -q 'svctrace-refres[h]' $p/cmdline 2>/dev/null && "
          + "grep -qF \(ShellQuote.quote(settings.refreshScriptPath)) $p/cmdline 2>/dev/null && echo $p; done; true"
      ).stdoutText
      #expect(running.isEmpty, "a refresh still runs: \(running)")
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
    } cleanup: {
      await scratch.tearDown()
    }
  }

  /// A reinstall that changes the refresh (another interval) and then fails puts the running
  /// refresh back: its old script, running again.
  @Test func aFailedReinstallRestoresTheRunningRefresh() async throws {
    let scratch = try await ScratchNode.make(id: 37, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings()
      settings.refreshInterval = 1
      #expect(await NodeRollout.install(session, settings: settings).failure == nil)
      let script = try String(contentsOfFile: settings.refreshScriptPath, encoding: .utf8)

      var changed = settings
      changed.refreshInterval = 2
      let plan = try await NodeRollout.plan(session, settings: changed)
      guard case .start(_, 2)? = plan.refreshAction else {
        Issue.record("no refresh restart planned: \(String(describing: plan.refreshAction))")
        return
      }
      let steps = try ApplyScript.render(plan, nonce: "0").steps
      let report = await NodeRollout.applyOnNode(plan, session: session, failAt: steps.count - 1)
      #expect(report.failure != nil)
      #expect(report.steps.contains { $0.outcome == .rolledBack }, "\(report.steps)")
      #expect(try String(contentsOfFile: settings.refreshScriptPath, encoding: .utf8) == script)
      let probe = try await NodeProber.probe(session, settings: settings)
      #expect(probe.refresh.running == "loop")
      #expect(try NodeRollout.plan(probe: probe, settings: settings).hasChanges == false)
      #expect(await NodeRollout.remove(session, settings: settings).failure == nil)
    } cleanup: {
      await scratch.tearDown()
    }
  }
}
