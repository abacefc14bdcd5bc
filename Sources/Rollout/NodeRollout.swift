public import Foundation
public import SVCTraceCore

/// A file svctrace owns on a node, with its current and desired contents.
public struct FileChange: Sendable, Hashable {
  public var path: String
  /// Current contents; `nil` = absent.
  public var current: [UInt8]?
  /// Desired contents; `nil` = must be absent.
  public var desired: [UInt8]?
  /// File mode for a new file.
  public var mode: UInt32

  /// `true` when the file must be written or removed.
  public var changes: Bool { current != desired }

  /// A unified diff of the change (`/dev/null` for an absent side); empty when unchanged.
  public var diff: String {
    guard changes else { return "" }
    return LineDiff.unified(
      old: current.map { String(decoding: $0, as: UTF8.self) } ?? "",
      new: desired.map { String(decoding: $0, as: UTF8.self) } ?? "",
      oldName: current == nil ? "/dev/null" : "a" + path, newName: desired == nil ? "/dev/null" : "b" + path)
  }
}

/// Rule lines that an install adds or removes in one netfilter location.
public struct RuleChange: Sendable, Hashable {
  /// Where (`iptables-nft mangle IPv4`, `nft table inet svctrace`).
  public var location: String
  public var removed: [String]
  public var added: [String]
}

/// What `install` would change on one node, computed from the node's current state.
public struct NodePlan: Sendable {
  public var host: HostID
  public var settings: RolloutSettings
  public var probe: NodeProbe
  public var dataplane: Dataplane
  public var scope: TraceScope
  /// Desired and current svctrace iptables state per (backend, family) that needs handling.
  public var iptables: [IptablesTarget]
  /// Desired `table inet svctrace` (nftables mode) or `nil` (table must be absent).
  public var nftDesired: String?
  /// Current `table inet svctrace` listing, `nil` when absent.
  public var nftCurrent: String?
  /// svctrace's files (drop-in, logrotate, state, remove script).
  public var files: [FileChange]
  /// Rule lines added/removed, for `--diff`.
  public var ruleChanges: [RuleChange]
  /// `true` when rsyslog must be (re)started.
  public var restartRsyslog: Bool
  /// Expiry to schedule (`--for`), in seconds.
  public var expirySeconds: Int64?
  /// The state recorded on the node.
  public var nodeState: NodeState

  /// `true` when applying would change anything.
  public var hasChanges: Bool {
    !ruleChanges.isEmpty || files.contains(where: \.changes) || restartRsyslog || expirySeconds != nil
  }

  /// Human-readable summary lines (`rules: +3 -1 in iptables-nft mangle IPv4`, `file changed: …`).
  public var summary: [String] {
    var lines = ruleChanges.map { "rules: +\($0.added.count) -\($0.removed.count) in \($0.location)" }
    lines += files.filter(\.changes).map {
      $0.desired == nil ? "remove \($0.path)" : ($0.current == nil ? "create \($0.path)" : "update \($0.path)")
    }
    if restartRsyslog { lines.append("restart rsyslog") }
    if let seconds = expirySeconds { lines.append("schedule expiry in \(seconds)s") }
    return lines
  }

  /// The `--diff` text: unified diffs of files, then rule lines added/removed.
  public var diffText: String {
    var out = files.map(\.diff).filter { !$0.isEmpty }.joined()
    for change in ruleChanges {
      out += "--- rules \(change.location)\n"
      out += change.removed.map { "-" + $0 + "\n" }.joined() + change.added.map { "+" + $0 + "\n" }.joined()
    }
    return out
  }
}

/// One iptables location (backend × family) with svctrace's current and desired state.
public struct IptablesTarget: Sendable, Hashable {
  public var backend: Dataplane.Backend
  public var family: IPFamily
  public var current: IptablesRuleState
  public var desired: IptablesRuleState

  /// `true` when the location needs a restore.
  public var changes: Bool { current.lines != desired.lines }
  /// `iptables-nft mangle IPv4`.
  public var location: String { "\(backend.rawValue) mangle \(family == .ipv4 ? "IPv4" : "IPv6")" }
}

/// The outcome of one step of apply or remove.
public struct StepResult: Sendable, Hashable {
  /// How a step ended.
  public enum Outcome: String, Sendable, Hashable {
    case ok, changed, failed
    case rolledBack = "rolled back"
  }

  public var name: String
  public var outcome: Outcome
  public var detail: String

  public init(name: String, outcome: Outcome, detail: String = "") {
    self.name = name
    self.outcome = outcome
    self.detail = detail
  }
}

/// What apply or remove did on one node.
public struct NodeChangeReport: Sendable {
  public var host: HostID
  /// `true` when the node was modified (and kept modified).
  public var changed: Bool
  /// The failure, when the node was rolled back (or, for remove, left partly removed).
  public var failure: RolloutError?
  public var steps: [StepResult]

  /// `true` when no step failed.
  public var succeeded: Bool { failure == nil }
}

/// Install, plan, apply with rollback, remove.
public enum NodeRollout {
  // MARK: Plan

  /// Computes what `install` would change on the node. Read-only.
  /// - Throws: ``RolloutError`` for an unsupported dataplane, ``RemoteError`` for session failures.
  public static func plan(_ session: any RemoteSession, settings: RolloutSettings) async throws -> NodePlan {
    let probe = try await NodeProber.probe(session, settings: settings)
    return try plan(probe: probe, settings: settings)
  }

  /// Computes the plan from a probe (pure).
  /// - Throws: ``RolloutError`` when the dataplane cannot be traced.
  public static func plan(probe: NodeProbe, settings: RolloutSettings) throws(RolloutError) -> NodePlan {
    let dataplane = try probe.dataplane.get()
    let scope = TraceScope.make(settings: settings, dataplane: dataplane)

    // iptables: the chosen backend gets the rendered rules; svctrace rules in the other backend are removed.
    var targets: [IptablesTarget] = []
    for backend in [Dataplane.Backend.iptablesNFT, .iptablesLegacy] {
      for family in IPFamily.allCases {
        let current = IptablesRuleState(table: probe.mangle(backend, family))
        let desired =
          backend == dataplane.backend
          ? Renderer.iptablesRules(scope: scope, family: family, maxRate: settings.maxRate) : IptablesRuleState()
        if current.isEmpty && desired.isEmpty { continue }
        targets.append(IptablesTarget(backend: backend, family: family, current: current, desired: desired))
      }
    }
    var ruleChanges: [RuleChange] = []
    for target in targets where target.changes {
      let edits = LineDiff.edits(target.current.lines, target.desired.lines)
      ruleChanges.append(
        RuleChange(
          location: target.location,
          removed: edits.compactMap { if case .removed(let line) = $0 { line } else { nil } },
          added: edits.compactMap { if case .added(let line) = $0 { line } else { nil } }))
    }
    let nftDesired = dataplane.backend == .nftables ? Renderer.nftTable(scope: scope, maxRate: settings.maxRate) : nil
    let nftCurrent = probe.svctraceTable
    if NFTText.normalize(nftCurrent ?? "") != NFTText.normalize(nftDesired ?? "") {
      let edits = LineDiff.edits(NFTText.normalize(nftCurrent ?? ""), NFTText.normalize(nftDesired ?? ""))
      ruleChanges.append(
        RuleChange(
          location: "nft table inet svctrace",
          removed: edits.compactMap { if case .removed(let line) = $0 { line } else { nil } },
          added: edits.compactMap { if case .added(let line) = $0 { line } else { nil } }))
    }

    let nodeState = makeNodeState(probe: probe, dataplane: dataplane, scope: scope, settings: settings)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let stateBytes = ((try? encoder.encode(nodeState)).map { [UInt8]($0) } ?? []) + [10]
    func current(_ path: String) -> [UInt8]? { probe.files[path] ?? nil }
    let removeScript: String
    do {
      removeScript = try NodeScripts.removeScript(settings: settings, state: nodeState)
    } catch {
      throw RolloutError(host: probe.host, operation: "plan", kind: .unexpectedOutput, reason: error.description)
    }
    let files = [
      FileChange(
        path: settings.statePath, current: current(settings.statePath), desired: stateBytes, mode: 0o644),
      FileChange(
        path: settings.removeScriptPath, current: current(settings.removeScriptPath),
        desired: Array(removeScript.utf8), mode: 0o755),
      FileChange(
        path: settings.rsyslogDropInPath, current: current(settings.rsyslogDropInPath),
        desired: Array(
          Renderer.rsyslogDropIn(
            logPath: settings.logPath, rotateSize: settings.rotateSize, logrotatePath: settings.logrotatePath
          ).utf8), mode: 0o644),
      FileChange(
        path: settings.logrotatePath, current: current(settings.logrotatePath),
        desired: Array(
          Renderer.logrotate(
            logPath: settings.logPath, size: settings.rotateSize, rotate: settings.rotateCount,
            hasRsyslogRotate: probe.hasRsyslogRotate
          ).utf8), mode: 0o644),
    ]
    let dropInChanges = files.contains { $0.path == settings.rsyslogDropInPath && $0.changes }
    return NodePlan(
      host: probe.host, settings: settings, probe: probe, dataplane: dataplane, scope: scope, iptables: targets,
      nftDesired: nftDesired, nftCurrent: nftCurrent, files: files, ruleChanges: ruleChanges,
      restartRsyslog: dropInChanges || !probe.rsyslogActive,
      expirySeconds: settings.captureDuration.map { $0.components.seconds }, nodeState: nodeState)
  }

  /// Keeps the record of a previous install (what existed before it); otherwise records what is missing now.
  static func makeNodeState(
    probe: NodeProbe, dataplane: Dataplane, scope: TraceScope, settings: RolloutSettings
  ) -> NodeState {
    if let bytes = probe.files[settings.statePath] ?? nil, !bytes.isEmpty,
      let previous = try? JSONDecoder().decode(NodeState.self, from: Data(bytes)),
      previous.backend == dataplane.backend.rawValue
    {
      return previous
    }
    var created: [String: [String]] = [:]
    var tables: [String] = []
    if dataplane.backend == .iptablesNFT {
      for family in scope.families {
        let name = family == .ipv4 ? "ip" : "ip6"
        if !probe.nftMangleTableExists(family) { tables.append(name) }
        let existing = probe.nftMangleBaseChains(family)
        let needed = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].filter { !existing.contains($0) }
        if !needed.isEmpty { created[name] = needed }
      }
    }
    return NodeState(backend: dataplane.backend.rawValue, createdBaseChains: created, createdTables: tables)
  }

  // MARK: Apply

  /// Applies a plan; on any failing step restores the node exactly as the plan found it.
  ///
  /// Order: state files, rules (one `iptables-restore --noflush` per location, or one `nft -f`),
  /// drop-in, `rsyslogd -N1`, rsyslog restart + is-active, logrotate file, `logrotate -d`, expiry.
  /// Nothing runs when the plan has no changes.
  public static func apply(_ plan: NodePlan, session: any RemoteSession) async -> NodeChangeReport {
    var steps: [StepResult] = []
    guard plan.hasChanges else {
      return NodeChangeReport(
        host: plan.host, changed: false, failure: nil,
        steps: [StepResult(name: "plan", outcome: .ok, detail: "no changes")])
    }
    let settings = plan.settings
    let host = plan.host
    var journal = Journal()
    do {
      // State directory and state files.
      let stateDirExisted = try await session.stat(settings.stateDirectory) != nil
      if !stateDirExisted {
        try await session.check(
          "mkdir -p " + ShellQuote.quote(settings.stateDirectory), operation: "create state directory")
        journal.createdStateDirectory = true
      }
      for file in plan.files
      where file.changes && (file.path == settings.statePath || file.path == settings.removeScriptPath) {
        try await write(file, session: session, journal: &journal)
        steps.append(StepResult(name: "write \(file.path)", outcome: .changed))
      }
      // Rules.
      for target in plan.iptables where target.changes {
        journal.touchedIptables.append(target)
        try await restore(
          target.desired, from: target.current, backend: target.backend, family: target.family, session: session)
        steps.append(
          StepResult(name: "rules \(target.location)", outcome: .changed, detail: "iptables-restore --noflush"))
      }
      if NFTText.normalize(plan.nftCurrent ?? "") != NFTText.normalize(plan.nftDesired ?? "") {
        journal.touchedNFT = true
        if let table = plan.nftDesired {
          try await session.check(
            "nft -f -", stdin: Array(Renderer.nftApplyFile(table: table).utf8),
            operation: "load nft table inet svctrace")
        } else {
          try await session.check("nft delete table inet svctrace", operation: "delete nft table inet svctrace")
        }
        steps.append(StepResult(name: "nft table inet svctrace", outcome: .changed, detail: "nft -f"))
      }
      // rsyslog drop-in.
      if let dropIn = plan.files.first(where: { $0.path == settings.rsyslogDropInPath }), dropIn.changes {
        try await write(dropIn, session: session, journal: &journal)
        steps.append(StepResult(name: "write \(dropIn.path)", outcome: .changed))
      }
      if plan.restartRsyslog {
        try await session.check(
          settings.commands.rsyslogValidate, timeout: .seconds(60), operation: "validate rsyslog config (rsyslogd -N1)")
        steps.append(StepResult(name: "rsyslogd -N1", outcome: .ok))
        journal.restartedRsyslog = true
        try await session.check(settings.commands.rsyslogRestart, timeout: .seconds(60), operation: "restart rsyslog")
        try await session.check(settings.commands.rsyslogIsActive, operation: "check rsyslog is active after restart")
        steps.append(StepResult(name: "restart rsyslog", outcome: .changed))
      }
      // logrotate.
      if let rotate = plan.files.first(where: { $0.path == settings.logrotatePath }), rotate.changes {
        try await write(rotate, session: session, journal: &journal)
        try await session.check(
          settings.commands.logrotateDebug + " " + ShellQuote.quote(rotate.path), timeout: .seconds(60),
          operation: "check logrotate file (logrotate -d)")
        steps.append(StepResult(name: "write \(rotate.path)", outcome: .changed, detail: "logrotate -d ok"))
      }
      // Expiry.
      if let seconds = plan.expirySeconds {
        let method = expiryMethod(settings.expiryMethod, probe: plan.probe)
        try await session.check(
          NodeScripts.scheduleExpiry(settings: settings, seconds: seconds, method: method), timeout: .seconds(30),
          operation: "schedule capture expiry (\(method.rawValue))")
        steps.append(StepResult(name: "expiry", outcome: .changed, detail: "\(method.rawValue), in \(seconds)s"))
      }
      return NodeChangeReport(host: host, changed: true, failure: nil, steps: steps)
    } catch {
      let failure =
        error as? RolloutError
        ?? RolloutError(
          host: host, operation: (error as? RemoteError)?.operation ?? "apply", kind: .commandFailed,
          reason: (error as? RemoteError)?.message ?? "\(error)")
      steps.append(StepResult(name: failure.operation, outcome: .failed, detail: failure.reason))
      let rollbackSteps = await rollback(journal, plan: plan, session: session)
      steps += rollbackSteps
      // Say how the rollback went, in the one line the recap shows.
      var reported = failure
      let undone = rollbackSteps.filter { $0.outcome == .rolledBack }.count
      let notUndone = rollbackSteps.filter { $0.outcome == .failed }
      if notUndone.isEmpty {
        reported.reason +=
          undone > 0
          ? "; rolled back (\(undone) step\(undone == 1 ? "" : "s") undone), node as before" : "; nothing was changed"
      } else {
        reported.reason +=
          "; rolled back, but " + notUndone.map { "\($0.name) failed: \($0.detail)" }.joined(separator: "; ")
          + " (rules and files are as before; check the node)"
      }
      return NodeChangeReport(host: host, changed: false, failure: reported, steps: steps)
    }
  }

  /// Picks the expiry mechanism the node offers.
  static func expiryMethod(_ requested: ExpiryMethod, probe: NodeProbe) -> ExpiryMethod {
    guard requested == .automatic else { return requested }
    if probe.hasSystemd { return .systemd }
    if probe.hasAt { return .at }
    return .sleeper
  }

  /// What apply changed so far, to undo it.
  struct Journal {
    var createdStateDirectory = false
    var writtenFiles: [FileChange] = []
    var touchedIptables: [IptablesTarget] = []
    var touchedNFT = false
    var restartedRsyslog = false
  }

  private static func write(_ file: FileChange, session: any RemoteSession, journal: inout Journal) async throws {
    journal.writtenFiles.append(file)
    if let desired = file.desired {
      do {
        try await session.writeFile(file.path, contents: desired, mode: file.mode)
      } catch let error as RemoteError {
        throw RolloutError(host: session.host, operation: "write \(file.path)", kind: .file, reason: error.message)
      }
    } else {
      try await session.check("rm -f " + ShellQuote.quote(file.path), operation: "remove \(file.path)")
    }
  }

  private static func restore(
    _ desired: IptablesRuleState, from current: IptablesRuleState, backend: Dataplane.Backend, family: IPFamily,
    session: any RemoteSession
  ) async throws {
    guard let binary = backend.binary(family) else { return }
    let fragment = desired.restoreFragment(from: current)
    try await session.check(
      binary + "-restore --noflush", stdin: Array(fragment.utf8), timeout: .seconds(60),
      operation: "load svctrace rules (\(binary)-restore --noflush)")
  }

  /// Puts back what the journal says was changed, in reverse order; restarts rsyslog last if it was touched.
  static func rollback(_ journal: Journal, plan: NodePlan, session: any RemoteSession) async -> [StepResult] {
    var steps: [StepResult] = []
    let settings = plan.settings
    for file in journal.writtenFiles.reversed() {
      do {
        if let previous = file.current {
          try await session.writeFile(file.path, contents: previous, mode: file.mode)
        } else {
          try await session.check("rm -f " + ShellQuote.quote(file.path), operation: "remove \(file.path)")
        }
        steps.append(StepResult(name: "restore \(file.path)", outcome: .rolledBack))
      } catch {
        steps.append(StepResult(name: "restore \(file.path)", outcome: .failed, detail: "\(error)"))
      }
    }
    for target in journal.touchedIptables.reversed() {
      guard let binary = target.backend.binary(target.family) else { continue }
      do {
        // Re-read the exact current state, then go back to the snapshot.
        let saved = try await session.check(binary + "-save", operation: "read rules (\(binary)-save)")
        let now = IptablesRuleState(table: IptablesSave(parsing: saved.stdoutText).tables["mangle"] ?? .init())
        var previous = target.current
        previous.jumps = previous.jumps.map { $0 }
        try await restore(previous, from: now, backend: target.backend, family: target.family, session: session)
        if target.backend == .iptablesNFT {
          let name = target.family == .ipv4 ? "ip" : "ip6"
          let existed = plan.probe.nftMangleBaseChains(target.family)
          let created = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].filter { !existed.contains($0) }
          try await session.check(
            NodeScripts.dropCreatedNFTObjects(
              createdBaseChains: [name: created],
              createdTables: plan.probe.nftMangleTableExists(target.family) ? [] : [name]),
            operation: "drop nft base chains created by install")
        }
        steps.append(StepResult(name: "restore rules \(target.location)", outcome: .rolledBack))
      } catch {
        steps.append(StepResult(name: "restore rules \(target.location)", outcome: .failed, detail: "\(error)"))
      }
    }
    if journal.touchedNFT {
      do {
        if let previous = plan.nftCurrent {
          try await session.check(
            "nft -f -", stdin: Array(Renderer.nftApplyFile(table: previous).utf8), operation: "restore nft table")
        } else {
          try await session.check(
            "if nft list table inet svctrace >/dev/null 2>&1; then nft delete table inet svctrace; fi",
            operation: "delete nft table inet svctrace")
        }
        steps.append(StepResult(name: "restore nft table inet svctrace", outcome: .rolledBack))
      } catch {
        steps.append(StepResult(name: "restore nft table inet svctrace", outcome: .failed, detail: "\(error)"))
      }
    }
    if journal.createdStateDirectory {
      _ = try? await session.run("rmdir " + ShellQuote.quote(settings.stateDirectory) + " 2>/dev/null")
    }
    if journal.restartedRsyslog && plan.probe.rsyslogActive {
      do {
        try await session.check(settings.commands.rsyslogRestart, timeout: .seconds(60), operation: "restart rsyslog")
        steps.append(StepResult(name: "restart rsyslog", outcome: .rolledBack))
      } catch {
        steps.append(StepResult(name: "restart rsyslog", outcome: .failed, detail: "\(error)"))
      }
    }
    return steps
  }

  // MARK: Install / remove

  /// Plans and applies on one node; returns a failed report (node untouched) when the dataplane is unsupported.
  public static func install(_ session: any RemoteSession, settings: RolloutSettings) async -> NodeChangeReport {
    do {
      let plan = try await plan(session, settings: settings)
      return await apply(plan, session: session)
    } catch {
      return NodeChangeReport(
        host: session.host, changed: false,
        failure: asRolloutError(error, host: session.host, operation: "plan install"), steps: [])
    }
  }

  /// Removes exactly what svctrace added (rules in any backend, chains, nft objects recorded at install,
  /// `table inet svctrace`, drop-in, logrotate file, expiry, state) and restarts rsyslog if the drop-in
  /// existed. Log files stay unless `purgeLogs`. `legacy` also removes the old script's rules and config lines.
  public static func remove(
    _ session: any RemoteSession, settings: RolloutSettings, purgeLogs: Bool = false, legacy: Bool = false
  ) async -> NodeChangeReport {
    let host = session.host
    var steps: [StepResult] = []
    do {
      let before = try await NodeProber.probe(session, settings: settings)
      var state: NodeState?
      if let bytes = before.files[settings.statePath] ?? nil {
        state = try? JSONDecoder().decode(NodeState.self, from: Data(bytes))
      }
      let present = presentArtifacts(before, settings: settings)
      var changed = false
      if !present.isEmpty {
        let result = try await session.run(
          NodeScripts.removeScript(settings: settings, state: state), stdin: nil, timeout: .seconds(120))
        guard result.succeeded else {
          throw RolloutError(
            host: host, operation: "remove svctrace", kind: .commandFailed, reason: result.failureSummary)
        }
        changed = true
        steps.append(StepResult(name: "remove", outcome: .changed, detail: present.joined(separator: ", ")))
      }
      if legacy {
        let result = try await session.run(
          NodeScripts.removeLegacy(settings: settings), stdin: nil, timeout: .seconds(120))
        guard result.succeeded else {
          throw RolloutError(
            host: host, operation: "remove old script leftovers", kind: .commandFailed,
            reason: result.failureSummary)
        }
        let hadLegacy = !before.legacyConfigLines.isEmpty || !legacyRules(before).isEmpty
        if hadLegacy {
          changed = true
          steps.append(StepResult(name: "remove old script leftovers", outcome: .changed))
        }
        if result.stdoutText.contains("rsyslog-conf-changed") {
          try await session.check(
            settings.commands.rsyslogValidate, timeout: .seconds(60), operation: "validate rsyslog config")
          try await session.check(settings.commands.rsyslogRestart, timeout: .seconds(60), operation: "restart rsyslog")
          steps.append(StepResult(name: "restart rsyslog", outcome: .changed))
        }
      }
      if purgeLogs {
        let log = try ShellQuote.quote(settings.logPath)
        let result = try await session.run(
          "found=0; for f in \(log) \(log).[0-9]* \(log).[0-9]*.gz; do [ -e \"$f\" ] && { rm -f \"$f\"; found=1; }; done; echo $found"
        )
        if result.stdoutText.hasPrefix("1") {
          changed = true
          steps.append(StepResult(name: "purge logs", outcome: .changed))
        }
      }
      let after = try await NodeProber.probe(session, settings: settings)
      let left = presentArtifacts(after, settings: settings)
      if !left.isEmpty {
        throw RolloutError(
          host: host, operation: "remove svctrace", kind: .commandFailed,
          reason: "still present after removal: " + left.joined(separator: ", "))
      }
      return NodeChangeReport(host: host, changed: changed, failure: nil, steps: steps)
    } catch {
      let failure = asRolloutError(error, host: host, operation: "remove svctrace")
      steps.append(StepResult(name: failure.operation, outcome: .failed, detail: failure.reason))
      return NodeChangeReport(host: host, changed: true, failure: failure, steps: steps)
    }
  }

  /// svctrace artifacts present on a node, one short description each.
  public static func presentArtifacts(_ probe: NodeProbe, settings: RolloutSettings) -> [String] {
    var found: [String] = []
    for backend in [Dataplane.Backend.iptablesNFT, .iptablesLegacy] {
      for family in IPFamily.allCases where !IptablesRuleState(table: probe.mangle(backend, family)).isEmpty {
        found.append("\(backend.rawValue) \(family == .ipv4 ? "IPv4" : "IPv6") rules")
      }
    }
    if probe.svctraceTable != nil { found.append("nft table inet svctrace") }
    for path in [settings.rsyslogDropInPath, settings.logrotatePath, settings.statePath, settings.removeScriptPath]
    where (probe.files[path] ?? nil) != nil {
      found.append(path)
    }
    if probe.expiry != nil { found.append("expiry") }
    return found
  }

  /// The old script's nat LOG rules (`domeos` prefixes) in either backend.
  public static func legacyRules(_ probe: NodeProbe) -> [String] {
    var rules: [String] = []
    for backend in [Dataplane.Backend.iptablesNFT, .iptablesLegacy] {
      for chain in ["PREROUTING", "OUTPUT", "POSTROUTING", "INPUT"] {
        for spec in probe.nat(backend, .ipv4).rules(of: chain) where spec.contains("-j LOG") && spec.contains("domeos")
        {
          rules.append("\(backend.rawValue) nat: -A \(chain) \(spec)")
        }
      }
    }
    return rules
  }

  /// The expiry time of a time-boxed capture on the node, `nil` when none is scheduled.
  /// - Throws: ``RemoteError`` when the session fails.
  public static func expiry(_ session: any RemoteSession, settings: RolloutSettings = RolloutSettings()) async throws
    -> Date?
  {
    let result = try await session.run("cat " + ShellQuote.quote(settings.expiryMarkerPath) + " 2>/dev/null")
    return Int64(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)).map {
      Date(timeIntervalSince1970: TimeInterval($0))
    }
  }

  static func asRolloutError(_ error: any Error, host: HostID, operation: String) -> RolloutError {
    if let error = error as? RolloutError { return error }
    if let error = error as? RemoteError {
      return RolloutError(host: host, operation: error.operation, kind: .commandFailed, reason: error.message)
    }
    return RolloutError(host: host, operation: operation, kind: .commandFailed, reason: "\(error)")
  }
}
