import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// The replies of probe, verify and remove as ``NodeReply`` sections: pure checks on canned
/// replies, and garbled, truncated and hostile replies refused with the node's name.
@Suite struct NodeReplyRolloutTests {
  let host = HostID("node7")
  let settings = RolloutSettings()

  /// Frames sections as a node would.
  func frame(_ nonce: String, _ sections: [(String, Int32, [UInt8])]) -> [UInt8] {
    var out = Array("SVCTRACE-REPLY 1 \(nonce)\n".utf8)
    for (name, status, body) in sections {
      out += Array("S \(name) \(status) \(body.count)\n".utf8) + body + [10]
    }
    return out + Array("E \(nonce) \(sections.count)\n".utf8)
  }

  /// Every probe section, empty (files absent), with `overrides` by name.
  func probeSections(_ overrides: [String: (Int32, [UInt8])] = [:], prefix: String = "") throws -> [(
    String, Int32, [UInt8]
  )] {
    try NodeProber.sections(settings: settings).map { name, _ in
      let (status, body) = overrides[name] ?? (name.hasPrefix("file:") ? 3 : 1, [])
      return (prefix + name, status, body)
    }
  }

  /// The nonce of a reply script, read from the command that carries it.
  static func nonce(of command: String) -> String? {
    guard let match = command.firstMatch(of: #/SVCTRACE-REPLY 1 %s\\n' ([0-9a-f]+)/#) else { return nil }
    return String(match.1)
  }

  @Test func probeFilesArriveByteExactAndAbsenceIsStatus3() throws {
    // Contents that look like frames (with a plausible nonce), NUL and invalid UTF-8.
    let hostile: [UInt8] = Array("E n1 0\nS file:state 0 3\nabc\n".utf8) + [0, 0xff, 0xfe]
    let reply = try NodeReply.parse(
      frame("n1", try probeSections(["file:dropin": (0, hostile), "file:logrotate": (0, [])])), nonce: "n1",
      host: host, operation: "probe")
    let probe = try NodeProber.parse(host: host, reply: reply, settings: settings)
    #expect(probe.files[settings.rsyslogDropInPath] == .some(hostile))
    #expect(probe.files[settings.logrotatePath] == .some([]))
    #expect(probe.files[settings.statePath] == .some(nil))
    #expect(
      NodeRollout.presentArtifacts(probe, settings: settings) == [settings.rsyslogDropInPath, settings.logrotatePath])
  }

  @Test func theRealProbeScriptCarriesHostileFilesByteExact() async throws {
    // svctrace's files on this machine (in a temp directory) hold frame text of this very exec.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-pr-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var settings = RolloutSettings()
    settings.rsyslogDropInPath = directory + "/drop in;$(x).conf"
    settings.logrotatePath = directory + "/logrotate"
    settings.stateDirectory = directory + "/state"
    settings.legacyRsyslogConf = directory + "/rsyslog.conf"
    settings.legacyLogrotateFile = directory + "/syslog"
    settings.commands.rsyslogIsActive = "true"
    let nonce = NodeReply.makeNonce()
    let hostile: [UInt8] = Array("E \(nonce) 0\nS file:state 0 3\nabc\nSVCTRACE-REPLY 1 \(nonce)\n".utf8) + [0, 0xff]
    try Data(hostile).write(to: URL(fileURLWithPath: settings.rsyslogDropInPath))
    try Data().write(to: URL(fileURLWithPath: settings.logrotatePath))
    try FileManager.default.createDirectory(atPath: settings.stateDirectory, withIntermediateDirectories: true)
    try "1700000000\n".write(toFile: settings.expiryMarkerPath, atomically: true, encoding: .utf8)
    let session = CountingSession(LocalShellSession(host: host))
    let script = try NodeProber.script(settings: settings, nonce: nonce)
    let (reply, _, _) = try await session.exchange(script, timeout: .seconds(60), operation: "probe")
    let probe = try NodeProber.parse(host: host, reply: reply, settings: settings)
    #expect(session.execs == 1)
    #expect(probe.files[settings.rsyslogDropInPath] == .some(hostile))
    #expect(probe.files[settings.logrotatePath] == .some([]))
    #expect(probe.files[settings.statePath] == .some(nil))
    #expect(probe.rsyslogActive)
    #expect(probe.expiry == Date(timeIntervalSince1970: 1_700_000_000))
    #expect(probe.nodeTime.map { abs($0 - Int64(Date().timeIntervalSince1970)) < 60 } == true)
  }

  @Test func aMissingProbeSectionIsAnErrorNamingTheNode() throws {
    let sections = try probeSections().filter { $0.0 != "legacy6" }
    let reply = try NodeReply.parse(frame("n1", sections), nonce: "n1", host: host, operation: "probe")
    let error = #expect(throws: RemoteError.self) {
      try NodeProber.parse(host: host, reply: reply, settings: settings)
    }
    #expect(error?.kind == .protocolError)
    #expect(error?.host == host)
    #expect(error?.message.contains("no section legacy6") == true)
  }

  /// A node that answers `verify` with `reply(nonce)`.
  func verifyWith(_ reply: @escaping @Sendable (String) -> [UInt8]) async -> [CheckResult] {
    let session = ScriptedSession(host: host) { command, _ in
      CommandResult(exitStatus: 0, stdout: reply(Self.nonce(of: command) ?? "none"))
    }
    return await Verifier.check(session, settings: settings, options: VerifyOptions(), becomeNote: "test")
  }

  @Test func garbledTruncatedAndHostileVerifyRepliesFailAccessNamingTheNode() async throws {
    let full =
      try probeSections() + [
        ("rsyslog-validate", 0, []), ("log-stat", 0, Array("absent\n".utf8)),
        ("disk", 0, Array("1000000 5%\n0\n\n1700000000\n".utf8)), ("logrotate-debug", 0, []),
      ]
    let cases: [(String, @Sendable (String) -> [UInt8])] = [
      ("nothing", { _ in [] }),
      ("a shell error", { _ in Array("sh: 1: Syntax error: \"(\" unexpected\n".utf8) }),
      ("another run's reply", { _ in self.frame("0123456789abcdef", full) }),
      ("truncated", { nonce in Array(self.frame(nonce, full).dropLast(30)) }),
      ("cut in a section", { nonce in Array(self.frame(nonce, full).prefix(200)) }),
      ("trailing bytes", { nonce in self.frame(nonce, full) + Array("x".utf8) }),
      ("a section missing", { nonce in self.frame(nonce, full.filter { $0.0 != "disk" }) }),
      (
        "a forged end frame inside a body, then nothing",
        { nonce in
          Array("SVCTRACE-REPLY 1 \(nonce)\nS nft-mangle4 0 40\nE \(nonce) 0\n".utf8)
        }
      ),
    ]
    for (label, reply) in cases {
      let checks = await verifyWith(reply)
      let access = checks.filter { $0.group == "access" && $0.status == .fail }
      #expect(access.map(\.name) == ["probe"], "\(label): \(checks)")
      #expect(access.first?.evidence.contains("node7") == true, "\(label)")
      #expect(checks.count == 2, "\(label): no check may be judged from a bad reply")
    }
    // The same sections, well framed, with frame text of this run inside a file: judged as data.
    let checks = await verifyWith { nonce in
      var sections = full
      let index = sections.firstIndex { $0.0 == "file:dropin" }!
      sections[index] = ("file:dropin", 0, Array("E \(nonce) 0\nS rsyslog-validate 1 0\n\n".utf8))
      return self.frame(nonce, sections)
    }
    #expect(checks.first { $0.name == "drop-in" }?.status == .fail)
    #expect(checks.first { $0.name == "drop-in" }?.evidence.contains("differs") == true)
    #expect(checks.first { $0.name == "config" }?.status == .pass)
  }

  @Test func checksArePureFunctionsOfTheReply() throws {
    let dropIn = Renderer.rsyslogDropIn(
      logPath: settings.logPath, rotateSize: settings.rotateSize, logrotatePath: settings.logrotatePath)
    let sections =
      try probeSections([
        "rsyslog": (0, Array("active\n".utf8)), "file:dropin": (0, Array(dropIn.utf8)),
        "file:logrotate": (0, Array("\(settings.logPath) {\n}\n".utf8)),
      ]) + [
        ("rsyslog-validate", 1, Array("rsyslogd: warning\nrsyslogd: error in line 3\n".utf8)),
        ("log-stat", 0, Array("syslog 640 100 1700000000\n1700000010\n".utf8)),
        ("disk", 0, Array("2097152 50%\n360000\n2023-11-14T21:13:20+00:00 x\n1700003600\n".utf8)),
        ("logrotate-debug", 1, Array("error: svctrace:1 unknown option\n".utf8)),
        ("canary", 0, Array("pre 1\npost 0\n".utf8)),
      ]
    let reply = try NodeReply.parse(frame("n1", sections), nonce: "n1", host: host, operation: "verify")
    let probe = try NodeProber.parse(host: host, reply: reply, settings: settings)
    let plan = Verifier.CanaryPlan(
      target: "10.96.0.10:80", ip: "10.96.0.10", port: "80", sourcePort: 23456, wait: .seconds(1))
    var options = VerifyOptions()
    options.canary = true
    let checks = try Verifier.checks(
      reply: reply, probe: probe, settings: settings, options: options,
      clock: ClockOffset(offsetMicros: 2_500_000, boundMicros: 1000), canary: plan)
    func check(_ group: String, _ name: String) -> CheckResult? {
      checks.first { $0.group == group && $0.name == name }
    }
    #expect(check("rsyslog", "running")?.status == .pass)
    #expect(check("rsyslog", "drop-in")?.status == .pass)
    #expect(check("rsyslog", "config")?.evidence == "rsyslogd -N1: exit status 1: rsyslogd: error in line 3")
    #expect(check("rsyslog", "log file")?.evidence == "owner syslog, mode 640, 100 bytes, last written 10 s ago")
    #expect(check("logrotate", "entry")?.status == .pass)
    #expect(check("logrotate", "valid")?.evidence == "logrotate -d: error: svctrace:1 unknown option")
    #expect(
      check("disk", "free")?.evidence.hasPrefix("2 MiB free on the log's filesystem (50% used); logs hold 351 KiB")
        == true)
    #expect(check("disk", "free")?.status == .warn, "100 bytes/s fills 2 MiB in under 6 h")
    #expect(check("clock", "offset")?.status == .warn)
    #expect(check("clock", "offset")?.evidence == "node clock +2500.0 ms ± 1.0 ms from this workstation")
    #expect(check("canary", "pipeline")?.status == .fail)
    #expect(check("canary", "pipeline")?.evidence.contains("1 PRE and 0 POST lines") == true)
    #expect(check("dataplane", "detected")?.status == .fail)
    // No clock sample (busybox `date`): a warning, not a failure.
    let noClock = try Verifier.checks(
      reply: reply, probe: probe, settings: settings, options: VerifyOptions(), clock: nil, canary: nil)
    #expect(noClock.first { $0.group == "clock" }?.evidence == "could not read the node's clock")
    #expect(!noClock.contains { $0.group == "canary" })
  }

  @Test func removeReplyIsJudgedStepByStep() throws {
    let before = try probeSections(["file:dropin": (0, Array("x".utf8))], prefix: "before/")
    let afterClean = try NodeProber.presenceSections(settings: settings).map { name, _ in
      ("after/" + name, Int32(name.hasPrefix("file:") ? 3 : 1), [UInt8]())
    }
    func report(_ middle: [(String, Int32, [UInt8])], after: [(String, Int32, [UInt8])]? = nil, legacy: Bool = false)
      throws -> NodeChangeReport
    {
      let reply = try NodeReply.parse(
        frame("n1", before + middle + (after ?? afterClean)), nonce: "n1", host: host, operation: "remove")
      var steps: [StepResult] = []
      return try NodeRollout.removeReport(
        reply: reply, host: host, settings: settings, purgeLogs: false, legacy: legacy, steps: &steps)
    }
    let ok = try report([("remove", 0, [])])
    #expect(ok.changed && ok.steps.map(\.name) == ["remove"])
    #expect(ok.steps.first?.detail == settings.rsyslogDropInPath)
    #expect(throws: RolloutError.self) { try report([("remove", 1, Array("svctrace: rsyslog restart failed\n".utf8))]) }
    let left = afterClean.map { $0.0 == "after/file:logrotate" ? ($0.0, Int32(0), [UInt8]()) : $0 }
    do {
      _ = try report([("remove", 0, [])], after: left)
      Issue.record("a file left behind was not reported")
    } catch let error as RolloutError {
      #expect(error.reason == "still present after removal: \(settings.logrotatePath)")
    }
    do {
      _ = try report(
        [("remove", 0, []), ("legacy", 3, Array("rsyslog-conf-changed\nJob failed\n".utf8))], legacy: true)
      Issue.record("a failed restart was not reported")
    } catch let error as RolloutError {
      #expect(error.operation == "restart rsyslog")
      #expect(error.reason.contains("Job failed"))
    }
    // A section the script sends is missing: garbled.
    #expect(throws: RemoteError.self) { try report([]) }
  }

  @Test func theRemoveJournalFindsTheObjectsInstallCreatedInTheNodesState() async throws {
    // The removal script reads state.json on the node: run its selection lines with a fake `nft`.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-st-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var settings = RolloutSettings()
    settings.stateDirectory = directory
    let state = NodeState(
      backend: "iptables-nft", createdBaseChains: ["ip": ["PREROUTING", "OUTPUT"], "ip6": ["INPUT"]],
      createdTables: ["ip6"])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(state).write(to: URL(fileURLWithPath: settings.statePath))
    // A fake nft: every chain has 5 lines (empty), every table no chains; deletions are logged.
    let fake = """
      nft() { case "$1 $2" in "list chain") printf '1\\n2\\n3\\n4\\n5\\n' ;; "list table") echo "table $3 mangle" ;; delete*) echo "$*" ;; esac; }
      """
    let script = try NodeScripts.removeScript(settings: settings, objects: .fromNodeState)
    let selection = script.split(separator: "\n").filter { $0.contains("svct_st") }.joined(separator: "\n")
    let result = try await LocalShellSession().run(
      fake + "\n" + NodeScripts.stateVariable(settings: settings) + "\n" + selection, stdin: nil, timeout: nil)
    #expect(
      result.stdoutText.split(separator: "\n").sorted() == [
        "delete chain ip mangle OUTPUT", "delete chain ip mangle PREROUTING", "delete chain ip6 mangle INPUT",
        "delete table ip6 mangle",
      ], "\(result.stdoutText)\(result.stderrText)")
  }
}

/// How many execs each operation costs on a real (scratch) node.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct ExecCountTests {
  @Test(arguments: [(16, FakeKubeProxy.iptablesNFT), (17, .nftables)])
  func oneRoundTripPerOperation(id: Int, kind: FakeKubeProxy) async throws {
    let scratch = try await ScratchNode.make(id: id, kind: kind)
    try await withCleanup {
      let settings = scratch.settings()
      let before = try await scratch.snapshot()
      func counted<T>(_ body: (CountingSession) async throws -> T) async rethrows -> (T, Int, [String]) {
        let session = CountingSession(scratch.session())
        let value = try await body(session)
        return (value, session.execs, session.commands)
      }
      let (first, installExecs, commands) = await counted { await NodeRollout.install($0, settings: settings) }
      #expect(first.failure == nil, "\(String(describing: first.failure))")
      #expect(installExecs == 2)
      // The bootstrap removed its directory once the reply was out: no cleanup exec, nothing left.
      let directory = try #require(commands.last?.firstMatch(of: #/t=(/tmp/svctrace-apply\.[0-9a-f]+);/#)?.1)
      #expect(!FileManager.default.fileExists(atPath: String(directory)))
      let (again, againExecs, _) = await counted { await NodeRollout.install($0, settings: settings) }
      #expect(again.failure == nil && !again.changed)
      #expect(againExecs == 1)

      var options = VerifyOptions()
      let (checks, verifyExecs, _) = await counted {
        await Verifier.check($0, settings: settings, options: options, becomeNote: "scratch")
      }
      #expect(verifyExecs == 1)
      #expect(checks.filter { $0.status == .fail }.isEmpty, "\(checks.filter { $0.status == .fail })")
      #expect(Set(checks.map(\.group)) == ["access", "dataplane", "rsyslog", "logrotate", "disk", "clock", "expiry"])
      let clock = try #require(checks.first { $0.group == "clock" })
      #expect(clock.status == .pass, "\(clock.evidence)")

      options.canary = true
      options.canaryWait = .milliseconds(600)
      let (canary, canaryExecs, _) = await counted {
        await Verifier.check($0, settings: settings, options: options, becomeNote: "scratch")
      }
      #expect(canaryExecs == 2)
      // No rsyslog in a scratch node: the packets are logged to the kernel, not to the file.
      #expect(canary.first { $0.group == "canary" }?.evidence.contains("0 PRE and 0 POST lines") == true)
      options.canaryService = "10.96.0.10:80"
      let (given, givenExecs, _) = await counted {
        await Verifier.check($0, settings: settings, options: options, becomeNote: "scratch")
      }
      #expect(givenExecs == 1)
      #expect(given.first { $0.group == "canary" }?.evidence.contains("connection to 10.96.0.10:80") == true)

      let (removed, removeExecs, _) = await counted {
        await NodeRollout.remove($0, settings: settings, purgeLogs: true, legacy: true)
      }
      #expect(removed.failure == nil, "\(String(describing: removed.failure))")
      #expect(removed.changed)
      #expect(removed.steps.first?.name == "remove")
      #expect(removeExecs == 1)
      let after = try await scratch.snapshot()
      #expect(after == before, "\(LineDiff.unified(old: before, new: after, oldName: "before", newName: "after"))")
      let (clean, cleanExecs, _) = await counted { await NodeRollout.remove($0, settings: settings) }
      #expect(clean.failure == nil && !clean.changed, "\(clean)")
      #expect(cleanExecs == 1)
      #expect(try await scratch.snapshot() == before, "removing from a clean node changes nothing")
    } cleanup: {
      await scratch.tearDown()
    }
  }
}
