import Foundation
public import SVCTraceCore

/// One verification check on one node: its group, verdict, the evidence, and what to do.
public struct CheckResult: Sendable, Hashable, Codable {
  /// pass < warn < fail.
  public enum Status: String, Sendable, Hashable, Codable, Comparable {
    case pass, warn, fail

    private var rank: Int { self == .pass ? 0 : self == .warn ? 1 : 2 }
    public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
  }

  /// `access`, `dataplane`, `rsyslog`, `logrotate`, `disk`, `clock`, `expiry`, `canary`.
  public var group: String
  public var name: String
  public var status: Status
  /// What was observed, for the reader to judge.
  public var evidence: String
  /// What to do about a warn or fail.
  public var fix: String?

  public init(group: String, name: String, status: Status, evidence: String, fix: String? = nil) {
    self.group = group
    self.name = name
    self.status = status
    self.evidence = evidence
    self.fix = fix
  }
}

/// Thresholds and switches for ``Verifier``.
public struct VerifyOptions: Sendable {
  /// Warn when the node clock is off by more than this, beyond the measurement's own bound.
  public var maxClockOffsetMicros: Int64 = 1_000_000
  /// Warn when the log's filesystem fills up in fewer hours than this at the current rate.
  public var minHoursUntilFull: Double = 24
  /// Warn when the log file was last written longer ago than this (seconds) while it has lines.
  public var maxLogAgeSeconds: Int64 = 24 * 3600
  /// Run the end-to-end canary.
  public var canary = false
  /// The Service to probe (`VIP:PORT`); `nil` = pick a TCP ClusterIP from kube-proxy's rules.
  public var canaryService: String?
  /// How long to wait for the canary's lines.
  public var canaryWait: Duration = .seconds(6)

  public init() {}
}

/// The per-node checks of `svctrace verify`: is everything `install` put in place still there,
/// unchanged, positioned to fire — and does the pipeline packet → kernel log → file work?
public enum Verifier {
  /// The check groups, in report order.
  public static let groups = [
    "access", "dataplane", "rsyslog", "logrotate", "disk", "loss", "clock", "expiry", "canary",
  ]

  /// Runs every check on one node in ONE exec (two with a canary whose Service must first be
  /// learned from the node's rules): the probe, `rsyslogd -N1`, the log file's metadata,
  /// `logrotate -d`, the disk figures and an NTP-style clock sample all come back in one
  /// ``NodeReply``; the checks are pure functions of it (``checks(reply:probe:settings:options:clock:canary:)``).
  /// Never throws: a failing command becomes a failing check, a failed or garbled exchange the
  /// failing check `access/probe`.
  ///
  /// - Parameter loss: the node's lost lines since the last check, from the store (`nil`: no
  ///   store, no `loss` check); the script then also gathers the evidence of a cause.
  public static func check(
    _ session: any RemoteSession, settings: RolloutSettings, options: VerifyOptions, becomeNote: String,
    loss: LostLines? = nil
  ) async -> [CheckResult] {
    let results = [CheckResult(group: "access", name: "login", status: .pass, evidence: becomeNote)]
    func probeFailed(_ error: any Error) -> [CheckResult] {
      // Privilege escalation is learned on the first command: its refusal surfaces here.
      if let remote = error as? RemoteError, remote.kind == .become {
        return results + [
          CheckResult(
            group: "access", name: "become", status: .fail, evidence: "\(error)",
            fix: "Fix sudo for the login user, or give the become password (-K).")
        ]
      }
      return results + [
        CheckResult(
          group: "access", name: "probe", status: .fail, evidence: "\(error)",
          fix: "Check the node with `svctrace ping`.")
      ]
    }
    // With --canary-service the canary rides in the same script; otherwise its target comes from
    // the probe, and it takes a second exec.
    var canary: CanaryPlan?
    var canaryResult: CheckResult?
    if options.canary && options.canaryService != nil {
      switch canaryPlan(options: options, probe: nil, settings: settings) {
      case .run(let plan): canary = plan
      case .result(let result): canaryResult = result
      }
    }
    let probe: NodeProbe
    var checks: [CheckResult]
    do {
      let script = try Self.script(settings: settings, canary: canary, lossEvidence: loss != nil)
      let (reply, sent, received) = try await session.exchange(
        script, timeout: .seconds(180) + options.canaryWait, operation: "verify")
      probe = try NodeProber.parse(host: session.host, reply: reply, settings: settings)
      checks = try Self.checks(
        reply: reply, probe: probe, settings: settings, options: options,
        clock: ClockOffset(reply: reply, sentMicros: sent, receivedMicros: received), canary: canary)
      if let loss {
        checks.append(
          lossCheck(
            loss, evidence: reply.section(lossEvidenceSection), disk: reply.section(diskSection),
            rsyslogActive: probe.rsyslogActive))
      }
    } catch {
      return probeFailed(error)
    }
    if options.canary && canary == nil && canaryResult == nil {
      switch canaryPlan(options: options, probe: probe, settings: settings) {
      case .result(let result): canaryResult = result
      case .run(let plan):
        do {
          var script = NodeReply.Script()
          script.section("canary", try canaryBody(plan, settings: settings))
          let (reply, _, _) = try await session.exchange(
            script, timeout: .seconds(60) + options.canaryWait, operation: "verify (canary)")
          canaryResult = canaryCheck(plan, section: reply.section("canary"), settings: settings)
        } catch {
          canaryResult = CheckResult(
            group: "canary", name: "pipeline", status: .fail, evidence: "\(error)",
            fix: "Check the node with `svctrace ping`.")
        }
      }
    }
    if let canaryResult { checks.append(canaryResult) }
    return results + checks
  }

  /// The names of the sections ``script(settings:canary:)`` adds after the probe's.
  static let validateSection = "rsyslog-validate"
  static let logStatSection = "log-stat"
  static let logrotateSection = "logrotate-debug"
  static let diskSection = "disk"
  static let canarySection = "canary"

  /// The one script of `verify`: the probe prelude (recovery of an interrupted apply), the clock's
  /// start, the probe's sections, `rsyslogd -N1`, the log file's metadata, `logrotate -d`, the disk
  /// figures, the canary when its target is known, the clock's end.
  public static func script(
    settings: RolloutSettings, canary: CanaryPlan?, lossEvidence: Bool = false, nonce: String = NodeReply.makeNonce()
  ) throws(ShellQuoteError) -> NodeReply.Script {
    var script = NodeReply.Script(nonce: nonce)
    try script.prelude(ApplyScript.probePrelude(settings: settings))
    script.prelude(NodeProber.haveFunction)
    script.clockSection(ClockOffset.startSection)
    try NodeProber.addSections(to: &script, settings: settings)
    // stderr is the evidence: it becomes the section's body, stdout is dropped.
    script.section(validateSection, "( \(settings.commands.rsyslogValidate) ) 2>&1 >/dev/null")
    if let log = try? ShellQuote.quote(settings.logPath),
      let directory = try? ShellQuote.quote((settings.logPath as NSString).deletingLastPathComponent)
    {
      script.section(
        logStatSection, "if [ -e \(log) ]; then stat -c '%U %a %s %Y' \(log); date +%s; else echo absent; fi")
      // Free bytes; bytes of the log and its rotations; the oldest line's age gives the rate.
      script.section(
        diskSection,
        """
        df -Pk \(directory) | awk 'NR==2 {print $4 * 1024, $5}'; \
        cat \(log) \(log).[0-9]* 2>/dev/null | wc -c; \
        head -c 32 \(log).1 2>/dev/null || head -c 32 \(log) 2>/dev/null; echo; date +%s
        """)
    }
    let rotate = try ShellQuote.quote(settings.logrotatePath)
    script.section(
      logrotateSection, "[ -f \(rotate) ] || exit 0\n( \(settings.commands.logrotateDebug) \(rotate) ) 2>&1 >/dev/null")
    if lossEvidence { script.section(lossEvidenceSection, lossEvidenceScript) }
    if let canary { try script.section(canarySection, canaryBody(canary, settings: settings)) }
    script.clockSection(ClockOffset.endSection)
    return script
  }

  /// Every check but `access/login` from a verify reply (pure).
  /// - Throws: ``RemoteError`` of kind `.protocolError` naming the node when a section the script
  ///   sends is missing.
  public static func checks(
    reply: NodeReply, probe: NodeProbe, settings: RolloutSettings, options: VerifyOptions, clock: ClockOffset?,
    canary: CanaryPlan?
  ) throws(RemoteError) -> [CheckResult] {
    var required = [validateSection, logrotateSection]
    if (try? ShellQuote.quote(settings.logPath)) != nil { required += [logStatSection, diskSection] }
    if canary != nil { required.append(canarySection) }
    for name in required where reply.section(name) == nil {
      throw RemoteError(
        host: probe.host, operation: "verify", kind: .protocolError,
        message: "the node's reply is garbled: no section \(name)")
    }
    var results = dataplaneChecks(probe, settings: settings)
    results += rsyslogChecks(probe: probe, reply: reply, settings: settings, options: options)
    results += logrotateChecks(probe: probe, reply: reply, settings: settings)
    results += diskChecks(reply.section(diskSection), settings: settings, options: options)
    results += clockChecks(clock, options: options)
    results += expiryChecks(probe)
    if let canary { results.append(canaryCheck(canary, section: reply.section(canarySection), settings: settings)) }
    return results
  }

  /// `exit status N: last line of stderr` for a section whose body is a command's stderr.
  static func failureSummary(_ section: NodeReply.Section) -> String {
    CommandResult(exitStatus: section.status, stderr: section.body).failureSummary
  }

  // MARK: Dataplane

  static func dataplaneChecks(_ probe: NodeProbe, settings: RolloutSettings) -> [CheckResult] {
    var results: [CheckResult] = []
    let dataplane: Dataplane
    switch probe.dataplane {
    case .success(let detected):
      dataplane = detected
      results.append(
        CheckResult(
          group: "dataplane", name: "detected", status: .pass,
          evidence:
            "kube-proxy \(detected.mode.rawValue) mode on \(detected.backend.rawValue); \(detected.services.count) Service addresses"
        ))
    case .failure(let error):
      results.append(
        CheckResult(
          group: "dataplane", name: "detected", status: .fail, evidence: error.reason,
          fix: "svctrace cannot trace this node's dataplane."))
      return results
    }
    do {
      let plan = try NodeRollout.plan(probe: probe, settings: settings)
      if plan.ruleChanges.isEmpty {
        results.append(
          CheckResult(
            group: "dataplane", name: "rules", status: .pass,
            evidence: "svctrace's rules are present and complete in \(dataplane.backend.rawValue)"))
      } else {
        let evidence = plan.ruleChanges.map { change in
          "\(change.location): \(change.added.count) missing, \(change.removed.count) unexpected\n"
            + (change.added.prefix(4).map { "  missing: " + $0 }
            + change.removed.prefix(4).map { "  unexpected: " + $0 }).joined(separator: "\n")
        }.joined(separator: "\n")
        let nothingThere = plan.ruleChanges.allSatisfy { $0.removed.isEmpty }
        results.append(
          CheckResult(
            group: "dataplane", name: "rules", status: .fail,
            evidence: (nothingThere
              ? "svctrace's rules are missing (lost to a reboot or a flush?)\n" : "svctrace's rules drifted\n")
              + evidence,
            fix: "Run `svctrace install` for this node to restore them."))
      }
    } catch {
      results.append(CheckResult(group: "dataplane", name: "rules", status: .fail, evidence: "\(error)"))
    }
    results += scopeChecks(probe, dataplane: dataplane, settings: settings)
    // Position and duplicates: svctrace's jump must be the first rule of each hooked chain, once.
    if dataplane.backend != .nftables {
      for family in dataplane.families {
        let table = probe.mangle(dataplane.backend, family)
        var problems: [String] = []
        for chain in ["PREROUTING", "OUTPUT", "POSTROUTING", "INPUT"] {
          let rules = table.rules(of: chain)
          let ours = rules.filter { $0.contains("--comment svctrace") }
          if ours.count > 1 { problems.append("\(chain): \(ours.count) svctrace jumps (duplicated)") }
          if let first = rules.first, !ours.isEmpty, !first.contains("--comment svctrace") {
            problems.append("\(chain): svctrace's jump is not first (first rule: \(first))")
          }
        }
        if !problems.isEmpty {
          results.append(
            CheckResult(
              group: "dataplane", name: "position \(family == .ipv4 ? "IPv4" : "IPv6")", status: .fail,
              evidence: problems.joined(separator: "\n"),
              fix: "Run `svctrace install` to put the jumps back at position 1."))
        }
      }
    }
    // Rules in the other backend never see kube-proxy's DNAT in order: report them.
    for backend in [Dataplane.Backend.iptablesNFT, .iptablesLegacy] where backend != dataplane.backend {
      for family in IPFamily.allCases where !IptablesRuleState(table: probe.mangle(backend, family)).isEmpty {
        results.append(
          CheckResult(
            group: "dataplane", name: "backend", status: .fail,
            evidence: "svctrace rules found in \(backend.rawValue) but kube-proxy uses \(dataplane.backend.rawValue)",
            fix: "Run `svctrace remove` then `svctrace install`."))
      }
    }
    let legacy = NodeRollout.legacyRules(probe) + probe.legacyConfigLines
    if !legacy.isEmpty {
      results.append(
        CheckResult(
          group: "dataplane", name: "old script", status: .warn,
          evidence: "leftovers of the old add_iptables_log.sh:\n" + legacy.prefix(8).joined(separator: "\n"),
          fix:
            "Run `svctrace remove --legacy` (then `svctrace install`): its rules miss pod traffic and its logrotate line names the wrong file."
        ))
    }
    return results
  }

  // MARK: Scope

  /// Where the scope came from; whether it still covers every Service address kube-proxy forwards
  /// (`scope stale: N Service addresses not logged`); whether the node-side refresh runs and is fresh.
  static func scopeChecks(_ probe: NodeProbe, dataplane: Dataplane, settings: RolloutSettings) -> [CheckResult] {
    let source = probe.recordedScope(settings) ?? NodeRollout.scopeCIDRs(probe: probe, settings: settings)
    var results: [CheckResult] = []
    guard settings.services.isEmpty else {
      results.append(
        CheckResult(
          group: "dataplane", name: "scope", status: .pass,
          evidence: "narrowed to \(settings.services.count) Service addresses (--services)"))
      return results
    }
    let interval = settings.refreshInterval
    let status = probe.refresh
    var refreshNote = ""
    // Nothing installed (no state file): the rules and files checks already say so.
    let isInstalled = (probe.files[settings.statePath] ?? nil) != nil
    if let interval, isInstalled {
      let age = probe.nodeTime.flatMap { now in status.lastOK.map { now - $0 } }
      if status.running == nil {
        refreshNote = "the refresh is not running"
        results.append(
          CheckResult(
            group: "dataplane", name: "refresh", status: .fail,
            evidence: "the refresh (\(settings.refreshScriptPath), every \(interval) s) is not running"
              + (status.error.isEmpty ? "" : "; its last error: \(status.error)"),
            fix: "Run `svctrace install` to start it again."))
      } else if status.lastRun == nil {
        results.append(
          CheckResult(
            group: "dataplane", name: "refresh", status: .pass,
            evidence: "the refresh runs (\(status.running ?? "")) every \(interval) s; its first round is due"))
      } else if let age, age <= Int64(3 * interval + 10) {
        results.append(
          CheckResult(
            group: "dataplane", name: "refresh", status: .pass,
            evidence: "the refresh runs (\(status.running ?? "")) every \(interval) s; last good round \(age) s ago, "
              + "\(status.addresses ?? 0) Service addresses"))
      } else {
        refreshNote =
          status.error.isEmpty ? "the refresh has not succeeded lately" : "the refresh fails: \(status.error)"
        results.append(
          CheckResult(
            group: "dataplane", name: "refresh", status: .warn,
            evidence: "the refresh runs (\(status.running ?? "")) but its last good round was "
              + (age.map { "\($0) s ago" } ?? "never") + (status.error.isEmpty ? "" : "; last error: \(status.error)"),
            fix: status.error.isEmpty
              ? "See \(settings.refreshStatusPath); run `sh \(settings.refreshScriptPath)` by hand to see it fail."
              : "Fix what the error names; the refresh retries every \(interval) s."))
      }
    }
    let installed = ScopeCoverage.installed(probe, backend: dataplane.backend)
    // Not installed: the rules check says so. (Installed with nothing in scope yet — no CIDR and
    // no refresh round so far — is stale, and says so below.)
    guard isInstalled else {
      results.insert(CheckResult(group: "dataplane", name: "scope", status: .pass, evidence: source.summary), at: 0)
      return results
    }
    let coverage = ScopeCoverage(services: dataplane.services, covered: installed)
    if coverage.missing.isEmpty {
      results.insert(
        CheckResult(
          group: "dataplane", name: "scope", status: .pass,
          evidence: source.summary + "; all \(Set(dataplane.services.map(\.address.address)).count) Service "
            + "addresses kube-proxy forwards are logged"), at: 0)
    } else {
      let examples = coverage.missing.prefix(3).map(\.description).joined(separator: ", ")
      results.insert(
        CheckResult(
          group: "dataplane", name: "scope", status: .fail,
          evidence: "scope stale: \(coverage.missing.count) Service addresses not logged (e.g. \(examples)); "
            + source.summary,
          fix: refreshNote.isEmpty
            ? "Run `svctrace install` (with a Service CIDR, --service-cidr, new ClusterIPs are covered at once)."
            : "\(refreshNote.prefix(1).uppercased() + refreshNote.dropFirst()); run `svctrace install`."), at: 0)
    }
    return results
  }

  // MARK: rsyslog

  static func rsyslogChecks(
    probe: NodeProbe, reply: NodeReply, settings: RolloutSettings, options: VerifyOptions
  ) -> [CheckResult] {
    var results: [CheckResult] = []
    results.append(
      probe.rsyslogActive
        ? CheckResult(group: "rsyslog", name: "running", status: .pass, evidence: "rsyslog is active")
        : CheckResult(
          group: "rsyslog", name: "running", status: .fail, evidence: "rsyslog is not running",
          fix: "Start it: `systemctl start rsyslog` (then check `systemctl status rsyslog`)."))
    let desired = NodeRollout.desiredDropIn(probe: probe, settings: settings)
    switch probe.files[settings.rsyslogDropInPath] ?? nil {
    case nil:
      results.append(
        CheckResult(
          group: "rsyslog", name: "drop-in", status: .fail, evidence: "\(settings.rsyslogDropInPath) is missing",
          fix: "Run `svctrace install`."))
    case let current? where current != Array(desired.utf8):
      let diff = LineDiff.unified(
        old: String(decoding: current, as: UTF8.self), new: desired, oldName: "node", newName: "svctrace")
      results.append(
        CheckResult(
          group: "rsyslog", name: "drop-in", status: .fail,
          evidence: "\(settings.rsyslogDropInPath) differs from what install writes:\n"
            + diff.split(separator: "\n").prefix(12).joined(separator: "\n"),
          fix: "Run `svctrace install` to rewrite it (local edits are lost)."))
    default:
      results.append(
        CheckResult(
          group: "rsyslog", name: "drop-in", status: .pass,
          evidence: "\(settings.rsyslogDropInPath) is as install writes it"))
    }
    results.append(kernelInputCheck(probe: probe, desiredDropIn: desired, settings: settings))
    if let validate = reply.section(validateSection) {
      results.append(
        validate.status == 0
          ? CheckResult(group: "rsyslog", name: "config", status: .pass, evidence: "rsyslogd -N1: valid")
          : CheckResult(
            group: "rsyslog", name: "config", status: .fail, evidence: "rsyslogd -N1: " + failureSummary(validate),
            fix: "Fix the rsyslog configuration it names."))
    }
    guard (try? ShellQuote.quote(settings.logPath)) != nil else {
      return results + [unquotable(group: "rsyslog", name: "log file", value: settings.logPath)]
    }
    if let stat = reply.section(logStatSection), stat.status == 0 {
      let fields = stat.text.split(whereSeparator: \.isWhitespace).map(String.init)
      if fields.first == "absent" {
        results.append(
          CheckResult(
            group: "rsyslog", name: "log file", status: .warn,
            evidence: "\(settings.logPath) does not exist yet (no Service traffic logged since install?)",
            fix: "Send a request to a Service, or run `svctrace verify --canary`."))
      } else if fields.count >= 5, let size = Int64(fields[2]), let mtime = Int64(fields[3]), let now = Int64(fields[4])
      {
        let age = now - mtime
        let owner = "owner \(fields[0]), mode \(fields[1]), \(size) bytes, last written \(age) s ago"
        if fields[0] != "root" && fields[0] != "syslog" {
          results.append(
            CheckResult(
              group: "rsyslog", name: "log file", status: .warn, evidence: owner,
              fix: "rsyslog writes as root (syslog on Ubuntu); fix the owner."))
        } else if size > 0 && age > options.maxLogAgeSeconds {
          results.append(
            CheckResult(
              group: "rsyslog", name: "log file", status: .warn, evidence: owner + " (stale)",
              fix: "Check that rsyslog still writes it: `svctrace verify --canary`."))
        } else {
          results.append(CheckResult(group: "rsyslog", name: "log file", status: .pass, evidence: owner))
        }
      }
    }
    return results
  }

  /// `rsyslog/kernel input`: which input brings kernel messages to rsyslog, and whether svctrace's
  /// lines can be rate-limited (imjournal) or doubled (imjournal beside imklog/imkmsg) with the
  /// drop-in the node has. Warns when imjournal is loaded and the node's drop-in does not take
  /// svctrace's lines from one kernel input only (an install from before this check, an edit).
  static func kernelInputCheck(probe: NodeProbe, desiredDropIn: String, settings: RolloutSettings) -> CheckResult {
    let inputs = probe.rsyslogInputs
    let loaded =
      inputs.loaded.isEmpty ? "none of imjournal, imklog, imkmsg, imuxsock" : inputs.loaded.joined(separator: ", ")
    var evidence = "rsyslog loads \(loaded)"
    if !inputs.evidence.isEmpty {
      evidence += "\n" + inputs.evidence.prefix(4).map { "  " + $0 }.joined(separator: "\n")
    }
    let platform = probe.platform
    if !platform.osID.isEmpty || platform.selinux != .absent || platform.firewalld {
      var facts: [String] = []
      if !platform.osID.isEmpty { facts.append(platform.osID + (platform.isRHELFamily ? " (RHEL family)" : "")) }
      if platform.selinux != .absent { facts.append("SELinux \(platform.selinux.rawValue)") }
      if platform.firewalld { facts.append("firewalld present (svctrace leaves its table alone)") }
      evidence += "\nnode: " + facts.joined(separator: ", ")
    }
    guard inputs.loads("imjournal") else {
      let via =
        inputs.kernelModule.map { "kernel messages arrive through \($0), once, without a rate limit" }
        ?? "no kernel input module (imklog, imkmsg) is loaded: kernel lines must reach rsyslog another way (a relay); `--canary` checks"
      return CheckResult(group: "rsyslog", name: "kernel input", status: .pass, evidence: evidence + "\n" + via)
    }
    evidence += "\nimjournal's rate limit: " + inputs.imjournalLimitText
    let current = (probe.files[settings.rsyslogDropInPath] ?? nil).map { String(decoding: $0, as: UTF8.self) }
    guard let input = inputs.lineSource.inputName else {
      return CheckResult(group: "rsyslog", name: "kernel input", status: .pass, evidence: evidence)
    }
    let how =
      inputs.lineSource == .ownImklog
      ? "svctrace's drop-in loads imklog and takes its lines from imklog only"
      : "svctrace's drop-in takes its lines from \(input) only"
    let handles =
      current.map {
        $0.contains("($inputname == \"\(input)\")")
          && (inputs.lineSource != .ownImklog || $0.contains(Renderer.imklogLoad))
      } ?? false
    if current == desiredDropIn || handles {
      return CheckResult(
        group: "rsyslog", name: "kernel input", status: .pass,
        evidence: evidence + "\n\(how) (not rate-limited); their copies through imjournal are dropped")
    }
    var risks: [String] = []
    if inputs.imjournalLimited {
      risks.append(
        "svctrace's lines pass imjournal's rate limit (\(inputs.imjournalLimitText)): a busy node loses lines silently")
    }
    if let module = inputs.kernelModule {
      risks.append("they also arrive through \(module): lines can be written twice")
    }
    if risks.isEmpty { risks.append("the drop-in does not select one kernel input") }
    return CheckResult(
      group: "rsyslog", name: "kernel input", status: .warn,
      evidence: evidence + "\n"
        + (current == nil ? "svctrace's drop-in is missing; " : "svctrace's drop-in does not handle imjournal; ")
        + risks.joined(separator: "; "),
      fix: "Run `svctrace install`: its drop-in then \(how.replacingOccurrences(of: "svctrace's drop-in ", with: "")))."
    )
  }

  // MARK: logrotate

  static func logrotateChecks(probe: NodeProbe, reply: NodeReply, settings: RolloutSettings) -> [CheckResult] {
    let path = settings.logrotatePath
    guard let current = probe.files[path] ?? nil else {
      return [
        CheckResult(
          group: "logrotate", name: "entry", status: .fail,
          evidence: "\(path) is missing: \(settings.logPath) will grow without bound", fix: "Run `svctrace install`.")
      ]
    }
    var results: [CheckResult] = []
    let text = String(decoding: current, as: UTF8.self)
    let firstLine = text.split(separator: "\n").first { !$0.hasPrefix("#") && !$0.isEmpty } ?? ""
    if firstLine.split(separator: " ").first.map(String.init) == settings.logPath {
      results.append(
        CheckResult(group: "logrotate", name: "entry", status: .pass, evidence: "\(path) rotates \(settings.logPath)"))
    } else {
      results.append(
        CheckResult(
          group: "logrotate", name: "entry", status: .fail,
          evidence: "\(path) does not name \(settings.logPath) (first line: \(firstLine))",
          fix: "Run `svctrace install` to rewrite it."))
    }
    if let debug = reply.section(logrotateSection) {
      let errors = debug.text.split(separator: "\n").filter { $0.lowercased().contains("error") }
      results.append(
        debug.status == 0 && errors.isEmpty
          ? CheckResult(group: "logrotate", name: "valid", status: .pass, evidence: "logrotate -d: no errors")
          : CheckResult(
            group: "logrotate", name: "valid", status: .fail,
            evidence: "logrotate -d: " + (errors.first.map(String.init) ?? failureSummary(debug)),
            fix: "Fix the error logrotate reports."))
    }
    return results
  }

  /// A failed check for a value no shell word can hold (it contains a NUL byte).
  static func unquotable(group: String, name: String, value: String) -> CheckResult {
    CheckResult(
      group: group, name: name, status: .fail,
      evidence: "\(value.debugDescription) cannot be passed to the node's shell (it contains a NUL byte)",
      fix: "Fix the value (svctrace_log_path, --log-path or --canary-service).")
  }

  // MARK: Disk

  static func diskChecks(_ section: NodeReply.Section?, settings: RolloutSettings, options: VerifyOptions)
    -> [CheckResult]
  {
    guard (try? ShellQuote.quote(settings.logPath)) != nil,
      (try? ShellQuote.quote((settings.logPath as NSString).deletingLastPathComponent)) != nil
    else { return [unquotable(group: "disk", name: "log volume", value: settings.logPath)] }
    guard let section, section.status == 0 else {
      return [CheckResult(group: "disk", name: "free", status: .warn, evidence: "could not read free space")]
    }
    let lines = section.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let dfFields = lines.first?.split(separator: " ") ?? []
    guard let free = dfFields.first.flatMap({ Double($0) }) else {
      return [
        CheckResult(group: "disk", name: "free", status: .warn, evidence: "unexpected df output: \(lines.first ?? "")")
      ]
    }
    let used = dfFields.count > 1 ? String(dfFields[1]) : "?"
    let written = lines.count > 1 ? Double(lines[1].trimmingCharacters(in: .whitespaces)) ?? 0 : 0
    let firstStamp = lines.count > 2 ? lines[2] : ""
    let now = lines.count > 3 ? Double(lines[3]) ?? 0 : 0
    var evidence =
      "\(Int(free / 1_048_576)) MiB free on the log's filesystem (\(used) used); logs hold \(Int(written / 1024)) KiB"
    var status = CheckResult.Status.pass
    var fix: String?
    let stamp = firstStamp.split(separator: " ").first ?? ""
    if let first = TimeFormat.rfc3339(stamp).map({ Double($0) / 1_000_000 }), now > first + 60, written > 0 {
      let rate = written / (now - first)
      let hours = free / rate / 3600
      evidence += String(format: "; growing %.1f KiB/h → full in %.0f h", rate * 3600 / 1024, hours)
      if hours < options.minHoursUntilFull {
        status = hours < 1 ? .fail : .warn
        fix = "Free space, narrow the capture (--services), add --max-rate, or lower the logrotate size cap."
      }
    }
    return [CheckResult(group: "disk", name: "free", status: status, evidence: evidence, fix: fix)]
  }

  // MARK: Clock

  static func clockChecks(_ clock: ClockOffset?, options: VerifyOptions) -> [CheckResult] {
    guard let clock else {
      return [CheckResult(group: "clock", name: "offset", status: .warn, evidence: "could not read the node's clock")]
    }
    let evidence = String(
      format: "node clock %+.1f ms ± %.1f ms from this workstation", Double(clock.offsetMicros) / 1000,
      Double(clock.boundMicros) / 1000)
    if abs(clock.offsetMicros) - clock.boundMicros > options.maxClockOffsetMicros {
      return [
        CheckResult(
          group: "clock", name: "offset", status: .warn, evidence: evidence,
          fix:
            "Fix time sync (chrony/ntpd) on the node: svctrace corrects the offset it measures, but a drifting clock blurs cross-node merges."
        )
      ]
    }
    return [CheckResult(group: "clock", name: "offset", status: .pass, evidence: evidence)]
  }

  // MARK: Expiry

  static func expiryChecks(_ probe: NodeProbe) -> [CheckResult] {
    guard let expiry = probe.expiry else {
      return [
        CheckResult(
          group: "expiry", name: "capture", status: .pass, evidence: "no time limit (remove with `svctrace remove`)")
      ]
    }
    let now = probe.nodeTime.map { Date(timeIntervalSince1970: TimeInterval($0)) } ?? Date()
    let left = expiry.timeIntervalSince(now)
    if left < 0 {
      return [
        CheckResult(
          group: "expiry", name: "capture", status: .warn,
          evidence: "the capture expired \(Int(-left)) s ago but svctrace's files are still there",
          fix: "Run `svctrace remove`.")
      ]
    }
    return [
      CheckResult(
        group: "expiry", name: "capture", status: .pass,
        evidence: String(format: "removes itself in %dh%02dm", Int(left) / 3600, Int(left) % 3600 / 60))
    ]
  }

  // MARK: Canary

  /// What the canary does: connect to `target` from `sourcePort`, then look for both lines.
  public struct CanaryPlan: Sendable, Equatable {
    /// `VIP:PORT` as given or learned.
    public var target: String
    public var ip: String
    public var port: String
    public var sourcePort: Int
    /// How long the node polls the log for the lines.
    public var wait: Duration
  }

  /// The canary to run, or its result when it cannot run (no target, an unquotable value).
  enum CanaryDecision {
    case run(CanaryPlan)
    case result(CheckResult)
  }

  /// Picks the canary's target: `--canary-service`, else a TCP IPv4 ClusterIP from the probe.
  static func canaryPlan(options: VerifyOptions, probe: NodeProbe?, settings: RolloutSettings) -> CanaryDecision {
    var target = options.canaryService
    if target == nil, let probe, case .success(let dataplane) = probe.dataplane {
      target = dataplane.services.first { $0.isClusterIP && $0.address.proto == .tcp && $0.address.family == .ipv4 }
        .map { "\($0.address.addressText):\($0.address.port)" }
    }
    guard let target, let colon = target.lastIndex(of: ":") else {
      return .result(
        CheckResult(
          group: "canary", name: "pipeline", status: .warn, evidence: "no TCP Service address to probe",
          fix: "Give one with --canary-service VIP:PORT."))
    }
    let ip = String(target[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    let port = String(target[target.index(after: colon)...])
    guard (try? ShellQuote.quote(settings.logPath)) != nil, (try? ShellQuote.quote(ip)) != nil,
      (try? ShellQuote.quote(port)) != nil
    else { return .result(unquotable(group: "canary", name: "pipeline", value: settings.logPath + " " + target)) }
    return .run(
      CanaryPlan(
        target: target, ip: ip, port: port, sourcePort: Int.random(in: 20_000...29_999), wait: options.canaryWait))
  }

  /// The canary's node-side body: open a TCP connection to the Service from a chosen source port,
  /// then poll the log (bounded: `wait`, every 0.3 s) for its PRE and POST lines; prints
  /// `pre N` and `post M`.
  static func canaryBody(_ plan: CanaryPlan, settings: RolloutSettings) throws(ShellQuoteError) -> String {
    let log = try ShellQuote.quote(settings.logPath)
    let quotedIP = try ShellQuote.quote(plan.ip)
    let quotedPort = try ShellQuote.quote(plan.port)
    let sourcePort = plan.sourcePort
    let wait = plan.wait
    let millis = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
    let rounds = max(1, (millis + 299) / 300)
    return """
      { if command -v python3 >/dev/null 2>&1; then \
      python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.settimeout(3); s.bind(("", int(sys.argv[3]))); s.connect((sys.argv[1], int(sys.argv[2]))); s.close()' \(quotedIP) \(quotedPort) \(sourcePort); \
      elif command -v curl >/dev/null 2>&1; then curl -s -o /dev/null -m 3 --local-port \(sourcePort) http://\(quotedIP):\(quotedPort)/; \
      else nc -w 3 -p \(sourcePort) \(quotedIP) \(quotedPort) </dev/null; fi; } >/dev/null 2>&1
      i=0
      while :; do
        pre=$(grep -c 'SVCT:PRE .* SPT=\(sourcePort) ' \(log) 2>/dev/null)
        post=$(grep -c 'SVCT:POST .* SPT=\(sourcePort) ' \(log) 2>/dev/null)
        [ "${pre:-0}" -gt 0 ] && [ "${post:-0}" -gt 0 ] && break
        [ $i -ge \(rounds) ] && break
        sleep 0.3; i=$((i+1))
      done
      echo "pre ${pre:-0}"; echo "post ${post:-0}"
      """
  }

  /// The canary's verdict from its section (pure).
  static func canaryCheck(_ plan: CanaryPlan, section: NodeReply.Section?, settings: RolloutSettings) -> CheckResult {
    var pre = 0
    var post = 0
    for line in (section?.text ?? "").split(separator: "\n") {
      let words = line.split(separator: " ")
      guard words.count == 2, let value = Int(words[1]) else { continue }
      if words[0] == "pre" { pre = value } else if words[0] == "post" { post = value }
    }
    let evidence =
      "connection to \(plan.target) from source port \(plan.sourcePort): \(pre) PRE and \(post) POST lines in \(settings.logPath)"
    if pre > 0 && post > 0 {
      return CheckResult(group: "canary", name: "pipeline", status: .pass, evidence: evidence)
    }
    return CheckResult(
      group: "canary", name: "pipeline", status: .fail, evidence: evidence,
      fix: pre == 0 && post == 0
        ? "Nothing reached the file: check the rules (dataplane), rsyslog and net.netfilter.nf_log_all_netns in containers."
        : "Only one side was logged: the rules are incomplete; run `svctrace install`.")
  }
}
