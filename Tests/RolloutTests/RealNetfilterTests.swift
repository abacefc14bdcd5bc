import Foundation
import Rollout
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// Install / trace / remove against real netfilter in scratch network namespaces (root only).
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct RealNetfilterTests {
  /// One connection of the ground-truth matrix.
  struct Flow: CustomStringConvertible, Sendable {
    enum Client: Sendable { case node, podA, podB }
    var name: String
    var from: Client
    var address: String
    var port: Int
    var udp = false
    var isService: Bool
    var description: String { name }
  }

  static let flows: [Flow] = [
    Flow(name: "host → ClusterIP (OUTPUT→POSTROUTING)", from: .node, address: "10.96.0.10", port: 80, isService: true),
    Flow(name: "pod → ClusterIP, unmarked", from: .podB, address: "10.96.0.10", port: 80, isService: true),
    Flow(name: "hairpin pod → own Service", from: .podA, address: "10.96.0.10", port: 80, isService: true),
    Flow(name: "external → NodePort", from: .podB, address: "10.244.2.1", port: 30080, isService: true),
    Flow(name: "pod → UDP ClusterIP", from: .podB, address: "10.96.0.30", port: 53, udp: true, isService: true),
    Flow(
      name: "pod → hostNetwork endpoint (PREROUTING→INPUT)", from: .podB, address: "10.96.0.20", port: 80,
      isService: true),
    Flow(
      name: "host → own hostNetwork endpoint (OUTPUT→lo→INPUT)", from: .node, address: "10.96.0.20", port: 80,
      isService: true),
    Flow(name: "pod → pod direct (no Service)", from: .podB, address: "10.244.1.2", port: 8080, isService: false),
    Flow(name: "host → pod direct (no Service)", from: .node, address: "10.244.1.2", port: 8080, isService: false),
    Flow(
      name: "pod → node port 9090 direct (no Service)", from: .podB, address: "10.244.1.1", port: 9090, isService: false
    ),
  ]

  @Test(arguments: [(1, FakeKubeProxy.iptablesNFT), (2, .iptablesLegacy), (3, .nftables)])
  func installTraceIdempotentRemove(id: Int, kind: FakeKubeProxy) async throws {
    let scratch = try await ScratchNode.make(id: id, kind: kind)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings()
      if kind == .iptablesLegacy { settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")] }
      let before = try await scratch.snapshot()

      // Detect.
      let dataplane = try await detectDataplane(session, settings: settings)
      let expected: Dataplane.Backend =
        switch kind {
        case .iptablesNFT: .iptablesNFT
        case .iptablesLegacy: .iptablesLegacy
        case .nftables: .nftables
        }
      #expect(dataplane.backend == expected)
      #expect(
        dataplane.services.map(\.address.description) == [
          "10.96.0.10:80/tcp", "10.96.0.20:80/tcp", "10.96.0.30:53/udp",
        ])
      #expect(dataplane.nodePorts.map(\.port) == [30080])

      // Install.
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(report.changed)
      let ruleset = try await scratch.check(
        "ip netns exec \(scratch.node) sh -c 'iptables-nft-save -t mangle; iptables-legacy-save; nft list ruleset'"
      ).stdoutText
      if kind == .nftables {
        #expect(ruleset.contains("table inet svctrace"))
        #expect(!ruleset.contains("SVCT-PRE"))
      } else {
        #expect(
          ruleset.contains("-A PREROUTING ! -i lo -m conntrack --ctstate NEW -m comment --comment svctrace -j SVCT-PRE")
        )
        #expect(!ruleset.contains("table inet svctrace"))
      }

      // Traffic: each Service connection is logged exactly once before and once after DNAT; other traffic never.
      for flow in Self.flows {
        let start = try await scratch.logCounters()
        let client = flow.from == .node ? scratch.node : (flow.from == .podA ? scratch.podA : scratch.podB)
        try await scratch.connect(from: client, to: flow.address, port: flow.port, udp: flow.udp)
        let end = try await scratch.logCounters()
        let delta = (end.pre - start.pre, end.post - start.post)
        let want = flow.isService ? (1, 1) : (0, 0)
        #expect(delta == want, "\(kind) \(flow.name): PRE/POST matched \(delta), expected \(want)")
      }

      // Idempotent: a second install changes nothing and runs only the read-only probe.
      session.clearLog()
      let second = await NodeRollout.install(session, settings: settings)
      #expect(second.failure == nil)
      #expect(!second.changed, "second install changed: \(second.steps)")
      #expect(session.commandLog.count == 1, "commands: \(session.commandLog.map { String($0.prefix(60)) })")

      // Remove: netfilter and files exactly as before install.
      let removed = await NodeRollout.remove(session, settings: settings)
      #expect(removed.failure == nil, "\(String(describing: removed.failure))")
      #expect(removed.changed)
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func driftIsRepaired() async throws {
    let scratch = try await ScratchNode.make(id: 4, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      let settings = scratch.settings()
      #expect(await NodeRollout.install(session, settings: settings).failure == nil)

      // A "reboot" loses the jumps; someone edits the drop-in.
      try await scratch.check(
        "ip netns exec \(scratch.node) iptables-nft -t mangle -D PREROUTING ! -i lo -m conntrack --ctstate NEW -m comment --comment svctrace -j SVCT-PRE"
      )
      try "# edited\n".write(toFile: settings.rsyslogDropInPath, atomically: true, encoding: .utf8)
      // kube-proxy-like prepend above our OUTPUT jump.
      try await scratch.check(
        "ip netns exec \(scratch.node) iptables-nft -t mangle -I OUTPUT 1 -j RETURN -m comment --comment other")

      let plan = try await NodeRollout.plan(session, settings: settings)
      #expect(plan.hasChanges)
      #expect(plan.files.first { $0.path == settings.rsyslogDropInPath }?.diff.contains("-# edited") == true)
      #expect(plan.ruleChanges.flatMap(\.added).contains { $0.hasPrefix("-A PREROUTING") })
      #expect(plan.ruleChanges.flatMap(\.removed).contains { $0.contains("# at position 2") })

      let repair = await NodeRollout.install(session, settings: settings)
      #expect(repair.failure == nil)
      #expect(repair.changed)
      let output = try await scratch.check("ip netns exec \(scratch.node) iptables-nft -t mangle -S OUTPUT").stdoutText
      #expect(output.split(separator: "\n").dropFirst().first?.contains("svctrace") == true, "\(output)")
      let start = try await scratch.logCounters()
      try await scratch.connect(from: scratch.podB, to: "10.96.0.10", port: 80)
      let end = try await scratch.logCounters()
      #expect(end.pre - start.pre == 1 && end.post - start.post == 1)
      #expect(await NodeRollout.install(session, settings: settings).changed == false)
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test(arguments: ["rsyslog validation fails", "logrotate path unwritable", "rsyslog restart fails"])
  func failingStepLeavesNodeAsBefore(fault: String) async throws {
    let scratch = try await ScratchNode.make(id: 5, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings(
        validate: fault == "rsyslog validation fails" ? "false" : "true",
        restart: fault == "rsyslog restart fails" ? "false" : "true")
      if fault == "logrotate path unwritable" {
        settings.logrotatePath = scratch.directory.path + "/missing-dir/svctrace"
      }
      let before = try await scratch.snapshot()
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure != nil)
      #expect(!report.changed)
      #expect(report.steps.contains { $0.outcome == .rolledBack })
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func timeBoxedCaptureExpiresOnTheNode() async throws {
    let scratch = try await ScratchNode.make(id: 6, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      let before = try await scratch.snapshot()
      var settings = scratch.settings()
      settings.captureDuration = .seconds(120)
      let started = Date()
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure == nil)
      let expiry = try #require(try await NodeRollout.expiry(session, settings: settings))
      // 120 s after the moment the install ran (whole seconds on the node).
      #expect(expiry >= started.addingTimeInterval(119) && expiry <= Date().addingTimeInterval(121), "\(expiry)")
      let pid = try String(contentsOfFile: settings.expiryPidPath, encoding: .utf8)
        .trimmingCharacters(in: .whitespacesAndNewlines)
      #expect(try await shell("kill -0 \(pid)").succeeded)

      // The node-side script the expiry runs removes everything on its own.
      let run = try await session.run("SVCTRACE_EXPIRY=1 /bin/sh " + ShellQuote.quote(settings.removeScriptPath))
      #expect(run.succeeded, "\(run.stderrText)")
      try await shell("kill -TERM -- -\(pid) 2>/dev/null || kill \(pid)")
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func removeCancelsTheSleeper() async throws {
    let scratch = try await ScratchNode.make(id: 7, kind: .iptablesLegacy)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings()
      settings.captureDuration = .seconds(600)
      #expect(await NodeRollout.install(session, settings: settings).failure == nil)
      let pid = try String(contentsOfFile: settings.expiryPidPath, encoding: .utf8)
        .trimmingCharacters(in: .whitespacesAndNewlines)
      #expect(try await shell("kill -0 \(pid)").succeeded)
      let removed = await NodeRollout.remove(session, settings: settings)
      #expect(removed.failure == nil)
      // Bounded wait for the sleeper to be gone.
      var alive = true
      for _ in 0..<30 where alive {
        alive = try await shell("kill -0 \(pid) 2>/dev/null").succeeded
        if alive { try await Task.sleep(for: .milliseconds(100)) }
      }
      #expect(!alive)
      #expect(try await NodeRollout.expiry(session, settings: settings) == nil)
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func hostilePathsAreQuotedEverywhere() async throws {
    let scratch = try await ScratchNode.make(id: 8, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings()
      // Bypasses RolloutSettings validation on purpose: only quoting stands between these and the shell.
      let hostile = "/st ate;$(touch svtro-injected)`touch svtro-injected2`'q\"d\nx"
      settings.stateDirectory = scratch.directory.path + hostile
      settings.rsyslogDropInPath = scratch.directory.path + "/rsyslog.d/10 svc;$(id).conf"
      settings.captureDuration = .seconds(300)
      let before = try await scratch.snapshot()
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(FileManager.default.fileExists(atPath: settings.statePath))
      #expect(FileManager.default.fileExists(atPath: settings.rsyslogDropInPath))
      #expect(try await NodeRollout.expiry(session, settings: settings) != nil)
      let removed = await NodeRollout.remove(session, settings: settings)
      #expect(removed.failure == nil, "\(String(describing: removed.failure))")
      for name in ["svtro-injected", "svtro-injected2"] {
        #expect(!FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/" + name))
        #expect(!FileManager.default.fileExists(atPath: "/" + name))
      }
      #expect(try await scratch.snapshot() == before)
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func verifyChecksNameTheProblem() async throws {
    let scratch = try await ScratchNode.make(id: 9, kind: .iptablesLegacy)
    try await withCleanup {
      let session = scratch.session()
      let settings = scratch.settings()
      #expect(await NodeRollout.install(session, settings: settings).failure == nil)
      let healthy = await Verifier.check(session, settings: settings, options: VerifyOptions(), becomeNote: "scratch")
      let failing = healthy.filter { $0.status == .fail }
      #expect(failing.isEmpty, "\(failing)")
      #expect(Set(healthy.map(\.group)) == ["access", "dataplane", "rsyslog", "logrotate", "disk", "clock", "expiry"])

      // Flush the INPUT jump and move the OUTPUT jump down: exactly those two problems are reported.
      try await scratch.check(
        "ip netns exec \(scratch.node) sh -c 'iptables-legacy -t mangle -D INPUT ! -i lo -m conntrack --ctstate NEW -m conntrack --ctstate DNAT -m comment --comment svctrace -j SVCT-POST && iptables-legacy -t mangle -I OUTPUT 1 -m comment --comment other -j RETURN'"
      )
      try "# edited\n".write(toFile: settings.rsyslogDropInPath, atomically: true, encoding: .utf8)
      let broken = await Verifier.check(session, settings: settings, options: VerifyOptions(), becomeNote: "scratch")
      let names = Set(broken.filter { $0.status == .fail }.map(\.name))
      #expect(names == ["rules", "position IPv4", "drop-in"], "\(broken.filter { $0.status != .pass })")
      #expect(broken.first { $0.name == "rules" }?.evidence.contains("INPUT") == true)
      #expect(broken.first { $0.name == "position IPv4" }?.evidence.contains("OUTPUT") == true)
      #expect(broken.allSatisfy { $0.status == .pass || $0.fix?.isEmpty == false })
    } cleanup: {
      await scratch.tearDown()
    }
  }
}
