import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// The node-side apply script on real netfilter in scratch namespaces: a failure injected at every step
/// leaves the node byte-identical (rules of all four iptables, `nft list ruleset`, files, modes, owners);
/// a killed script is rolled back by the next probe; contents arrive byte-exact.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct ApplyScriptTests {
  /// Rules, files, and every file's mode and owner under the node's temp directory.
  private func state(_ scratch: ScratchNode) async throws -> String {
    let modes = try await scratch.check(
      "cd \(ShellQuote.quote(scratch.directory.path)) && find . -printf '%p %m %U %G\\n' | sort"
    ).stdoutText
    return try await scratch.snapshot() + "\n--- modes\n" + modes
  }

  /// A pre-existing drop-in with awkward bytes and mode 0640, which install replaces.
  private let oldDropIn: [UInt8] =
    Array("# old 'q' \"d\" \\ $HOME $(id) `x`\nEOF\nSVCTRACE_B64\n".utf8) + [0xff, 0x00, 10]

  @Test(arguments: [(11, FakeKubeProxy.iptablesNFT), (12, .iptablesLegacy), (13, .nftables)])
  func failureAtEveryStepLeavesTheNodeAsItWas(id: Int, kind: FakeKubeProxy) async throws {
    let scratch = try await ScratchNode.make(id: id, kind: kind)
    try await withCleanup {
      let session = scratch.session()
      var settings = scratch.settings(restart: "true")
      settings.captureDuration = .seconds(600)
      if kind == .iptablesLegacy { settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")] }
      try Data(oldDropIn).write(to: URL(fileURLWithPath: settings.rsyslogDropInPath))
      try await scratch.check("chmod 640 \(ShellQuote.quote(settings.rsyslogDropInPath))")
      let before = try await state(scratch)

      let plan = try await NodeRollout.plan(session, settings: settings)
      let steps = try ApplyScript.render(plan, nonce: "x").steps
      let stepCount = steps.count
      #expect(stepCount >= 8, "steps: \(steps.map(\.name))")
      for step in 0..<stepCount {
        let report = await NodeRollout.applyOnNode(plan, session: session, failAt: step)
        let failure = try #require(report.failure, "step \(step) did not fail")
        #expect(failure.reason.contains("left as it was (checked)"), "step \(step): \(failure)")
        #expect(report.steps.last?.outcome == .rolledBack, "step \(step): \(report.steps)")
        let after = try await state(scratch)
        #expect(
          after == before,
          "failure at step \(step) (\(report.steps.map(\.name))):\n\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))"
        )
        #expect(try await NodeRollout.expiry(session, settings: settings) == nil)
      }

      // Without a fault the same plan installs; the drop-in arrives byte-exact, mode kept from the old file.
      var awkward = plan
      let dropIn = try #require(awkward.files.firstIndex { $0.path == settings.rsyslogDropInPath })
      let bytes: [UInt8] =
        Array("# 'single' \"double\" \\back\\slash $PATH ${x} $(id) `id`\n\tEOF\n".utf8) + [0x80, 10]
      awkward.files[dropIn].desired = bytes
      let report = await NodeRollout.apply(awkward, session: session)
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: settings.rsyslogDropInPath))) == bytes)
      #expect(
        try await scratch.check("stat -c %a \(ShellQuote.quote(settings.rsyslogDropInPath))").stdoutText == "640\n")
      #expect(try await NodeRollout.expiry(session, settings: settings) != nil)
      #expect(!FileManager.default.fileExists(atPath: ApplyScript.journalPath(settings)))
      #expect(await NodeRollout.remove(session, settings: settings).failure == nil)
    } cleanup: {
      await scratch.tearDown()
    }
  }

  @Test func aKilledScriptIsRolledBackByTheNextProbe() async throws {
    let scratch = try await ScratchNode.make(id: 14, kind: .iptablesNFT)
    try await withCleanup {
      let session = scratch.session()
      // Validation blocks until released, so the script is caught after the rules and the drop-in.
      let gate = scratch.directory.path + "/gate"
      let settings = scratch.settings(validate: "while [ ! -e \(try ShellQuote.quote(gate)) ]; do sleep 0.1; done")
      let before = try await state(scratch)
      let plan = try await NodeRollout.plan(session, settings: settings)
      let apply = Task { await NodeRollout.apply(plan, session: session) }
      // Wait until the script sits in the validate step, then kill -9 it (and its step).
      var pid = ""
      for _ in 0..<100 where pid.isEmpty {
        try await Task.sleep(for: .milliseconds(100))
        let progress = (try? String(contentsOfFile: ApplyScript.progressPath(settings), encoding: .utf8)) ?? ""
        if progress.contains("started rsyslog-validate") {
          // This node's script, by the pid its journal records (other tests and other runs on this
          // machine may have apply scripts of their own running).
          let journal = (try? String(contentsOfFile: ApplyScript.journalPath(settings), encoding: .utf8)) ?? ""
          pid = journal.split(separator: "\n").first.map { String($0.dropFirst("svct_pid=".count)) } ?? ""
          if pid.isEmpty || !pid.allSatisfy(\.isNumber) { pid = "" }
        }
      }
      try #require(!pid.isEmpty, "the apply script never reached the validate step")
      try await shell("kill -9 \(pid); pkill -9 -P \(pid) || true")
      _ = await apply.value
      #expect(FileManager.default.fileExists(atPath: ApplyScript.journalPath(settings)))
      #expect(try await state(scratch) != before)

      // The refresh was started before the validate step; the kill left it running.
      #expect(plan.refreshAction != nil)
      let refreshes =
        "for p in /proc/[0-9]*; do grep -q 'svctrace-refres[h]' $p/cmdline 2>/dev/null && "
        + "grep -qF \(try ShellQuote.quote(settings.refreshScriptPath)) $p/cmdline 2>/dev/null && echo $p; done; true"
      #expect(!(try await shell(refreshes).stdoutText.isEmpty), "the refresh was not running before the rollback")

      // The next probe rolls the journal back, the refresh included.
      _ = try await NodeProber.probe(session, settings: settings)
      let after = try await state(scratch)
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
      #expect(try await shell(refreshes).stdoutText.isEmpty, "a refresh still runs after the rollback")
    } cleanup: {
      await scratch.tearDown()
    }
  }
}

/// A session like the SSH one around Ctrl-C: the apply script's channel breaks once the script has started
/// (the script goes on, as on a node, and its bootstrap's standard output is a broken pipe, as under an
/// sshd whose channel closed), and nothing runs in a cancelled task.
final class InterruptedSession: RemoteSession {
  let base: LocalNetnsSession
  var host: HostID { base.host }
  init(base: LocalNetnsSession) { self.base = base }

  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    if Task.isCancelled {
      throw RemoteError(host: host, operation: "run", kind: .cancelled, message: "cancelled before the channel opened")
    }
    if stdin != nil && command.contains("/tmp/svctrace-apply.") {
      let base = self.base
      // `head -c 0` exits at once: whatever the bootstrap prints meets a closed pipe.
      let broken = "{\n\(command)\n} | head -c 0"
      Task.detached { _ = try? await base.run(broken, stdin: stdin, timeout: timeout) }
      try await Task.sleep(for: .seconds(2))
      throw RemoteError(host: host, operation: "run", kind: .protocolError, message: "channel closed")
    }
    return try await base.run(command, stdin: stdin, timeout: timeout)
  }

  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    try await base.readFile(path, offset: offset, maxLength: maxLength)
  }
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    try await base.writeFile(path, contents: contents, mode: mode)
  }
  func stat(_ path: String) async throws -> RemoteFileStat? { try await base.stat(path) }
  func close() async {}
}

extension ApplyScriptTests {
  /// Ctrl-C while the node-side script runs: the controller's collection runs outside the cancelled task,
  /// with its own deadline, and reports what the node really did.
  @Test func cancellationStillCollectsTheNodesOutcome() async throws {
    let scratch = try await ScratchNode.make(id: 15, kind: .iptablesLegacy)
    try await withCleanup {
      var settings = scratch.settings(validate: "sleep 1")
      settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")]
      let session = InterruptedSession(base: scratch.session())
      let plan = try await NodeRollout.plan(session, settings: settings)
      let apply = Task { await NodeRollout.apply(plan, session: session) }
      try await Task.sleep(for: .milliseconds(500))
      apply.cancel()
      let report = await apply.value
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(report.changed)
      #expect(report.steps.contains { $0.name == "restart rsyslog" && $0.outcome == .changed })
      #expect(!(try await NodeRollout.plan(scratch.session(), settings: settings).hasChanges))
      #expect(await NodeRollout.remove(scratch.session(), settings: settings).failure == nil)
    } cleanup: {
      await scratch.tearDown()
    }
  }
}

/// The reply parser accepts only the framed grammar.
struct ApplyReplyTests {
  let host = HostID("node9")

  @Test func wellFormedRepliesParse() throws {
    let ok = try ApplyScript.parse(
      "SVCTRACE-APPLY v1 n1\nstep 0 changed\nstep 1 ok\nend n1\n", nonce: "n1", stepCount: 2, host: host)
    #expect(ok.steps.map(\.outcome) == ["changed", "ok"])
    #expect(ok.rollback == nil)
    let failed = try ApplyScript.parse(
      "SVCTRACE-APPLY v1 n1\nstep 0 changed\nstep 1 failed boom here\nrollback ok\ncheck same compared\nend n1\n",
      nonce: "n1", stepCount: 2, host: host)
    #expect(failed.steps.last?.detail == "boom here")
    #expect(failed.check?.same == true)
  }

  @Test(arguments: [
    "",
    "SVCTRACE-APPLY v1 other\nend other\n",
    "SVCTRACE-APPLY v2 n1\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nstep 0 changed\n",
    "SVCTRACE-APPLY v1 n1\nstep 5 changed\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nstep 0 weird\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nstep 0 failed x\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nstep 0 failed x\nstep 1 changed\nrollback ok\ncheck same\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nstep 0 changed\nnoise\nend n1\n",
    "SVCTRACE-APPLY v1 n1\nrollback ok\ncheck same\nend n1\n",
  ])
  func garbledRepliesNameTheNode(reply: String) {
    #expect(throws: RolloutError.self) {
      try ApplyScript.parse(reply, nonce: "n1", stepCount: 2, host: host)
    }
    do {
      _ = try ApplyScript.parse(reply, nonce: "n1", stepCount: 2, host: host)
    } catch {
      #expect(error.host == HostID("node9") && error.kind == .unexpectedOutput)
    }
  }
}
