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
  /// Where the scope's Service CIDRs came from (or that none was found).
  public var scopeSource: ServiceCIDRs
  /// Start (or restart) or stop the node-side refresh; `nil` when it is as it should be.
  public var refreshAction: RefreshAction?

  /// What apply does with the node-side refresh (``RefreshScript``).
  public enum RefreshAction: Sendable, Hashable {
    /// Stop any refresh, start one with this method every `interval` seconds.
    case start(method: RefreshMethod, interval: Int)
    /// Stop it (the refresh was turned off, or the scope is narrowed to `--services`).
    case stop
  }

  /// `true` when applying would change anything.
  public var hasChanges: Bool {
    !ruleChanges.isEmpty || files.contains(where: \.changes) || restartRsyslog || expirySeconds != nil
      || refreshAction != nil
  }

  /// Human-readable summary lines (`rules: +3 -1 in iptables-nft mangle IPv4`, `file changed: …`).
  public var summary: [String] {
    var lines = ruleChanges.map { "rules: +\($0.added.count) -\($0.removed.count) in \($0.location)" }
    lines += files.filter(\.changes).map {
      $0.desired == nil ? "remove \($0.path)" : ($0.current == nil ? "create \($0.path)" : "update \($0.path)")
    }
    if restartRsyslog { lines.append("restart rsyslog") }
    if let seconds = expirySeconds { lines.append("schedule expiry in \(seconds)s") }
    switch refreshAction {
    case .start(let method, let interval)?: lines.append("start the refresh (\(method.rawValue), every \(interval) s)")
    case .stop?: lines.append("stop the refresh")
    case nil: break
    }
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
    let scopeSource = scopeCIDRs(probe: probe, settings: settings)
    var effective = settings
    if effective.serviceCIDRs == nil && !scopeSource.cidrs.isEmpty { effective.serviceCIDRs = scopeSource.cidrs }
    let refresh = settings.refreshInterval != nil && settings.services.isEmpty
    // With the refresh, addresses outside the CIDRs live only in its own chains or sets: the main
    // rules then depend on no Service, so neither a Service created later nor one deleted makes
    // `verify` see drift.
    let scope = TraceScope.make(settings: effective, dataplane: dataplane, learnedHosts: !refresh)

    // iptables: the chosen backend gets the rendered rules; svctrace rules in the other backend are removed.
    var targets: [IptablesTarget] = []
    for backend in [Dataplane.Backend.iptablesNFT, .iptablesLegacy] {
      for family in IPFamily.allCases {
        let current = IptablesRuleState(table: probe.mangle(backend, family))
        var desired =
          backend == dataplane.backend
          ? Renderer.iptablesRules(scope: scope, family: family, maxRate: settings.maxRate, refresh: refresh)
          : IptablesRuleState()
        // The refresh-owned chains keep what the refresh put there: install neither empties nor reports them.
        for chain in [RefreshScript.preChain, RefreshScript.postChain]
        where desired.chains.contains(chain) && current.chains.contains(chain) {
          desired.rules[chain] = current.rules[chain] ?? []
        }
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
    let nftCurrent = probe.svctraceTable
    var extras: [IPFamily: [String]] = [:]
    for family in IPFamily.allCases {
      extras[family] = NFTText.elements(of: RefreshScript.nftSet(family), in: nftCurrent ?? "")
    }
    let nftDesired =
      dataplane.backend == .nftables
      ? Renderer.nftTable(scope: scope, maxRate: settings.maxRate, refresh: refresh, extras: extras) : nil
    if NFTText.normalize(nftCurrent ?? "") != NFTText.normalize(nftDesired ?? "") {
      let edits = LineDiff.edits(NFTText.normalize(nftCurrent ?? ""), NFTText.normalize(nftDesired ?? ""))
      ruleChanges.append(
        RuleChange(
          location: "nft table inet svctrace",
          removed: edits.compactMap { if case .removed(let line) = $0 { line } else { nil } },
          added: edits.compactMap { if case .added(let line) = $0 { line } else { nil } }))
    }

    var nodeState = makeNodeState(probe: probe, dataplane: dataplane, scope: scope, settings: settings)
    nodeState.scope = scopeSource
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let stateBytes = ((try? encoder.encode(nodeState)).map { [UInt8]($0) } ?? []) + [10]
    func current(_ path: String) -> [UInt8]? { probe.files[path] ?? nil }
    let removeScript: String
    let refreshScript: String?
    do {
      removeScript = try NodeScripts.removeScript(settings: settings, state: nodeState)
      refreshScript =
        refresh
        ? try RefreshScript.render(
          settings: settings, backend: dataplane.backend, families: scope.families,
          includeClusterIPs: effective.serviceCIDRs == nil) : nil
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
        path: settings.refreshScriptPath, current: current(settings.refreshScriptPath),
        desired: refreshScript.map { Array($0.utf8) }, mode: 0o755),
      FileChange(
        path: settings.rsyslogDropInPath, current: current(settings.rsyslogDropInPath),
        desired: Array(desiredDropIn(probe: probe, settings: settings).utf8), mode: 0o644),
      FileChange(
        path: settings.logrotatePath, current: current(settings.logrotatePath),
        desired: Array(
          Renderer.logrotate(
            logPath: settings.logPath, size: settings.rotateSize, rotate: settings.rotateCount,
            hasRsyslogRotate: probe.hasRsyslogRotate
          ).utf8), mode: 0o644),
    ]
    let dropInChanges = files.contains { $0.path == settings.rsyslogDropInPath && $0.changes }
    var refreshAction: NodePlan.RefreshAction?
    if refresh, let interval = settings.refreshInterval {
      let scriptChanges = files.contains { $0.path == settings.refreshScriptPath && $0.changes }
      if scriptChanges || probe.refresh.running == nil {
        refreshAction = .start(method: refreshMethod(settings.refreshMethod, probe: probe), interval: interval)
      }
    } else if probe.refresh.running != nil {
      refreshAction = .stop
    }
    return NodePlan(
      host: probe.host, settings: settings, probe: probe, dataplane: dataplane, scope: scope, iptables: targets,
      nftDesired: nftDesired, nftCurrent: nftCurrent, files: files, ruleChanges: ruleChanges,
      restartRsyslog: dropInChanges || !probe.rsyslogActive,
      expirySeconds: settings.captureDuration.map { $0.components.seconds }, nodeState: nodeState,
      scopeSource: scopeSource, refreshAction: refreshAction)
  }

  /// The Service CIDRs the node's scope is built on: the user's (`--service-cidr`), else the fleet's
  /// resolution (``RolloutSettings/clusterServiceCIDRs``), else the stronger of what this node's own
  /// probe finds and what the last install recorded in `state.json` (a worker knows no CIDR itself:
  /// `verify` and a single-node install use the recorded one), else none (learned hosts).
  public static func scopeCIDRs(probe: NodeProbe, settings: RolloutSettings) -> ServiceCIDRs {
    if let given = settings.serviceCIDRs { return ServiceCIDRs(source: .settings, cidrs: given) }
    if let cluster = settings.clusterServiceCIDRs { return cluster }
    let own: ServiceCIDRs
    switch ServiceCIDRResolver.resolve([(probe.host, probe.serviceCIDRFacts)]) {
    case .success(let resolved): own = resolved
    case .failure: own = ServiceCIDRs(source: .learnedHosts, cidrs: [])
    }
    if let recorded = probe.recordedScope(settings), recorded.source != .settings, recorded.source < own.source {
      return recorded
    }
    return own
  }

  /// The cluster's Service CIDRs from every probed node (``ServiceCIDRResolver``): what `install` sets as
  /// ``RolloutSettings/clusterServiceCIDRs`` before planning each node.
  public static func resolveClusterScope(_ probes: [NodeProbe]) -> Result<ServiceCIDRs, ServiceCIDRConflict> {
    ServiceCIDRResolver.resolve(probes.map { ($0.host, $0.serviceCIDRFacts) })
  }

  /// Picks the refresh mechanism the node offers.
  static func refreshMethod(_ requested: RefreshMethod, probe: NodeProbe) -> RefreshMethod {
    guard requested == .automatic else { return requested }
    return probe.hasSystemd ? .systemd : .loop
  }

  /// The drop-in this node needs: its text depends on the kernel input the node's rsyslog has
  /// (``RsyslogInputs/lineSource``); Debian-style nodes (no imjournal) get the historical text.
  public static func desiredDropIn(probe: NodeProbe, settings: RolloutSettings) -> String {
    Renderer.rsyslogDropIn(
      logPath: settings.logPath, rotateSize: settings.rotateSize, logrotatePath: settings.logrotatePath,
      source: probe.rsyslogInputs.lineSource)
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
  /// All of it runs as ONE node-side script (``ApplyScript``) that backs up, journals and rolls back
  /// by itself, so a controller that dies mid-way never leaves the node half-changed.
  /// Nothing runs when the plan has no changes.
  public static func apply(_ plan: NodePlan, session: any RemoteSession) async -> NodeChangeReport {
    guard plan.hasChanges else {
      return NodeChangeReport(
        host: plan.host, changed: false, failure: nil,
        steps: [StepResult(name: "plan", outcome: .ok, detail: "no changes")])
    }
    return await applyOnNode(plan, session: session)
  }

  /// Picks the expiry mechanism the node offers.
  static func expiryMethod(_ requested: ExpiryMethod, probe: NodeProbe) -> ExpiryMethod {
    guard requested == .automatic else { return requested }
    if probe.hasSystemd { return .systemd }
    if probe.hasAt { return .at }
    return .sleeper
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
  ///
  /// One exec: a detached node-side script (``ApplyScript/renderRemove(settings:purgeLogs:legacy:nonce:)``)
  /// reports what was present, removes, and reports what is still there, in one ``NodeReply``.
  public static func remove(
    _ session: any RemoteSession, settings: RolloutSettings, purgeLogs: Bool = false, legacy: Bool = false
  ) async -> NodeChangeReport {
    let host = session.host
    var steps: [StepResult] = []
    do {
      let nonce = NodeReply.makeNonce()
      let script = try ApplyScript.renderRemove(
        settings: settings, purgeLogs: purgeLogs, legacy: legacy, nonce: nonce)
      let (output, lost) = try await runNodeScript(script, nonce: nonce, session: session, settings: settings)
      guard let output else {
        throw RolloutError(host: host, operation: "remove svctrace", kind: .commandFailed, reason: lost ?? "no reply")
      }
      let reply = try NodeReply.parse(output, nonce: nonce, host: host, operation: "remove svctrace")
      return try removeReport(
        reply: reply, host: host, settings: settings, purgeLogs: purgeLogs, legacy: legacy, steps: &steps)
    } catch {
      let failure = asRolloutError(error, host: host, operation: "remove svctrace")
      steps.append(StepResult(name: failure.operation, outcome: .failed, detail: failure.reason))
      return NodeChangeReport(host: host, changed: true, failure: failure, steps: steps)
    }
  }

  /// What a remove reply says (pure): the steps that changed something, or the first failure.
  static func removeReport(
    reply: NodeReply, host: HostID, settings: RolloutSettings, purgeLogs: Bool, legacy: Bool,
    steps: inout [StepResult]
  ) throws -> NodeChangeReport {
    func section(_ name: String) throws(RemoteError) -> NodeReply.Section {
      guard let section = reply.section(name) else {
        throw RemoteError(
          host: host, operation: "remove svctrace", kind: .protocolError,
          message: "the node's reply is garbled: no section \(name)")
      }
      return section
    }
    /// The last lines of a step's output, on one line.
    func detail(_ section: NodeReply.Section) -> String {
      let lines = section.text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " ")
      let printable = String(lines.map { ($0.asciiValue.map { $0 >= 32 && $0 < 127 } ?? false) ? $0 : " " })
      return String(printable.trimmingCharacters(in: .whitespaces).prefix(300))
    }
    let before = try NodeProber.parse(
      host: host, reply: reply, settings: settings, prefix: "before/", presenceOnly: !legacy)
    let present = presentArtifacts(before, settings: settings)
    var changed = false
    let removal = try section(ApplyScript.removeSection)
    guard removal.status == 0 else {
      let text = detail(removal)
      throw RolloutError(
        host: host, operation: "remove svctrace", kind: .commandFailed,
        reason: "exit status \(removal.status)" + (text.isEmpty ? "" : ": " + text))
    }
    if !present.isEmpty {
      changed = true
      steps.append(StepResult(name: "remove", outcome: .changed, detail: present.joined(separator: ", ")))
    }
    if legacy {
      let result = try section(ApplyScript.legacySection)
      let text = detail(result)
      switch result.status {
      case 0: break
      case 2:
        throw RolloutError(
          host: host, operation: "validate rsyslog config", kind: .commandFailed,
          reason: "failed" + (text.isEmpty ? "" : ": " + text))
      case 3:
        throw RolloutError(
          host: host, operation: "restart rsyslog", kind: .commandFailed,
          reason: "failed" + (text.isEmpty ? "" : ": " + text))
      default:
        throw RolloutError(
          host: host, operation: "remove old script leftovers", kind: .commandFailed,
          reason: "exit status \(result.status)" + (text.isEmpty ? "" : ": " + text))
      }
      if !before.legacyConfigLines.isEmpty || !legacyRules(before).isEmpty {
        changed = true
        steps.append(StepResult(name: "remove old script leftovers", outcome: .changed))
      }
      if result.text.contains("rsyslog-conf-changed") {
        steps.append(StepResult(name: "restart rsyslog", outcome: .changed))
      }
    }
    if purgeLogs {
      let purge = try section(ApplyScript.purgeSection)
      guard purge.status == 0 else {
        throw RolloutError(
          host: host, operation: "purge logs", kind: .commandFailed, reason: "exit status \(purge.status)")
      }
      if purge.text.hasPrefix("1") {
        changed = true
        steps.append(StepResult(name: "purge logs", outcome: .changed))
      }
    }
    let after = try NodeProber.parse(host: host, reply: reply, settings: settings, prefix: "after/", presenceOnly: true)
    let left = presentArtifacts(after, settings: settings)
    if !left.isEmpty {
      throw RolloutError(
        host: host, operation: "remove svctrace", kind: .commandFailed,
        reason: "still present after removal: " + left.joined(separator: ", "))
    }
    return NodeChangeReport(host: host, changed: changed, failure: nil, steps: steps)
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
    for path in [
      settings.rsyslogDropInPath, settings.logrotatePath, settings.statePath, settings.removeScriptPath,
      settings.refreshScriptPath,
    ]
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
