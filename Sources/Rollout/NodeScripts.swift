public import SVCTraceCore

/// What install recorded on the node (`state.json`): what existed before, so remove deletes exactly what svctrace added.
public struct NodeState: Codable, Sendable, Hashable {
  public var version: Int = 1
  /// Backend the rules were written with.
  public var backend: String
  /// iptables-nft base chains in `table ip|ip6 mangle` that did not exist before install, by family (`ip`, `ip6`).
  public var createdBaseChains: [String: [String]]
  /// iptables-nft `mangle` tables (`ip`, `ip6`) that did not exist before install.
  public var createdTables: [String]
  /// Where the trace scope's Service CIDRs came from at the last install (absent in older files).
  public var scope: ServiceCIDRs?

  public init(
    backend: String, createdBaseChains: [String: [String]], createdTables: [String], scope: ServiceCIDRs? = nil
  ) {
    self.backend = backend
    self.createdBaseChains = createdBaseChains
    self.createdTables = createdTables
    self.scope = scope
  }
}

/// Shell scripts svctrace runs on (or leaves on) a node. Every value is quoted.
public enum NodeScripts {
  /// Shell function `svct_clear SAVE RESTORE`: deletes svctrace's chains (`SVCT-*`) and its tagged
  /// jumps (`--comment svctrace`) from one iptables location's mangle table, found at run time so
  /// that rules of an older install go too; never creates a table. Used by `remove.sh` and by the
  /// apply script's undo.
  static let clearFunction = [
    "svct_clear() {",
    "  command -v \"$1\" >/dev/null 2>&1 || return 0",
    "  dump=$(\"$1\" 2>/dev/null | sed -n '/^\\*mangle/,/^COMMIT/p')",
    "  chains=$(printf '%s\\n' \"$dump\" | sed -n 's/^:\\(SVCT-[^ ]*\\) .*/\\1/p')",
    "  jumps=$(printf '%s\\n' \"$dump\" | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*--comment svctrace( |$)')",
    "  [ -z \"$chains$jumps\" ] && return 0",
    "  { echo '*mangle'",
    "    for c in $chains; do echo \":$c - [0:0]\"; done",
    "    [ -n \"$jumps\" ] && printf '%s\\n' \"$jumps\" | sed 's/^-A /-D /'",
    "    for c in $chains; do echo \"-X $c\"; done",
    "    echo COMMIT; } | \"$2\" --noflush",
    "}",
  ].joined(separator: "\n")

  /// The generic removal script written to `remove.sh` at install and run by `remove` and by the expiry.
  ///
  /// It finds svctrace's rules at run time (chains `SVCT-*` and built-in rules tagged
  /// `--comment svctrace`, in every iptables backend present), so it also removes rules of an older
  /// install; deletes the nft base chains/tables recorded in `state` when they are empty again;
  /// deletes `table inet svctrace`; removes the drop-in (restarting rsyslog) and the logrotate file;
  /// cancels the expiry; removes its own state. Log files are left alone.
  public static func removeScript(settings: RolloutSettings, state: NodeState?) throws(ShellQuoteError) -> String {
    try removeScript(settings: settings, objects: .recorded(state))
  }

  /// Where the removal script learns which iptables-nft base chains and tables install created.
  enum CreatedObjects {
    /// Known when the script is rendered (`remove.sh`, written at install).
    case recorded(NodeState?)
    /// Read on the node, when the script runs, from `$svct_st`: the node's `state.json` with
    /// blanks removed (``stateVariable(settings:)``). Families and chains come from a fixed
    /// vocabulary, so a `grep` per candidate decides; no JSON parser is needed on the node.
    case fromNodeState
  }

  /// A shell line that sets `svct_st` to the node's `state.json` without blanks and single quotes.
  static func stateVariable(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    try "svct_st=$(tr -d ' \\t\\r\\n' < \(ShellQuote.quote(settings.statePath)) 2>/dev/null | sed \"s/'//g\")"
  }

  static func removeScript(settings: RolloutSettings, objects: CreatedObjects) throws(ShellQuoteError) -> String {
    let q = ShellQuote.quote
    var lines = try [
      "#!/bin/sh",
      "# Managed by svctrace: removes everything `svctrace install` added on this node.",
      "# Run by `svctrace remove` and by the capture expiry. Log files are kept.",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
      "status=0",
      clearFunction,
      "# The refresh first: it must not rewrite rules while they are removed.",
      try RefreshScript.stop(settings: settings),
      "svct_ipt() { svct_clear \"$1\" \"$2\" || status=1; }",
      "svct_ipt iptables-nft-save iptables-nft-restore",
      "svct_ipt ip6tables-nft-save ip6tables-nft-restore",
      "svct_ipt iptables-legacy-save iptables-legacy-restore",
      "svct_ipt ip6tables-legacy-save ip6tables-legacy-restore",
      "if command -v nft >/dev/null 2>&1; then",
      "  nft list table inet svctrace >/dev/null 2>&1 && { nft delete table inet svctrace || status=1; }",
    ]
    switch objects {
    case .fromNodeState:
      for family in ["ip", "ip6"] {
        for chain in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
          lines.append(
            "  printf '%s' \"$svct_st\" | grep -q '\"createdBaseChains\":{.*\"\(family)\":\\[[^]]*\"\(chain)\"' && "
              + "[ \"$(nft list chain \(family) mangle \(chain) 2>/dev/null | wc -l)\" -eq 5 ] && "
              + "nft delete chain \(family) mangle \(chain)")
        }
      }
      for family in ["ip", "ip6"] {
        lines.append(
          "  printf '%s' \"$svct_st\" | grep -q '\"createdTables\":\\[[^]]*\"\(family)\"' && "
            + "nft list table \(family) mangle >/dev/null 2>&1 && "
            + "[ \"$(nft list table \(family) mangle | grep -c 'chain ')\" -eq 0 ] && nft delete table \(family) mangle"
        )
      }
    case .recorded(nil): break
    case .recorded(let state?):
      for family in state.createdBaseChains.keys.sorted() {
        for chain in state.createdBaseChains[family] ?? [] {
          try lines.append(
            "  [ \"$(nft list chain \(q(family)) mangle \(q(chain)) 2>/dev/null | wc -l)\" -eq 5 ] && "
              + "nft delete chain \(q(family)) mangle \(q(chain))")
        }
      }
      for family in state.createdTables.sorted() {
        try lines.append(
          "  nft list table \(q(family)) mangle >/dev/null 2>&1 && "
            + "[ \"$(nft list table \(q(family)) mangle | grep -c 'chain ')\" -eq 0 ] && nft delete table \(q(family)) mangle"
        )
      }
    }
    lines += try [
      "fi",
      "if [ -f \(q(settings.rsyslogDropInPath)) ]; then",
      "  rm -f \(q(settings.rsyslogDropInPath)) || status=1",
      "  \(settings.commands.rsyslogRestart) || { echo 'svctrace: rsyslog restart failed' >&2; status=1; }",
      "fi",
      "rm -f \(q(settings.logrotatePath)) || status=1",
      cancelExpiry(settings: settings, guarded: true),
      "rm -f \(q(settings.expiryMarkerPath)) \(q(settings.expiryPidPath)) \(q(settings.expiryAtJobPath)) \(q(settings.statePath)) \(q(settings.removeScriptPath))",
      "rm -f \(q(settings.refreshScriptPath)) \(q(settings.refreshStatusPath)) \(q(settings.refreshStatusPath + ".tmp")) \(q(settings.refreshPidPath)) \(q(settings.lockPath))",
      "rmdir \(q(settings.stateDirectory)) 2>/dev/null",
      "exit $status",
    ]
    return lines.joined(separator: "\n") + "\n"
  }

  /// Stops any scheduled expiry (systemd timer, at job, detached sleeper).
  ///
  /// `guarded`: skip when running *as* the expiry (`SVCTRACE_EXPIRY=1`), which must not kill itself.
  public static func cancelExpiry(settings: RolloutSettings, guarded: Bool) throws(ShellQuoteError) -> String {
    let q = ShellQuote.quote
    let body = try [
      "pid=$(cat \(q(settings.expiryPidPath)) 2>/dev/null)",
      "if [ -n \"$pid\" ] && grep -q svctrace-expiry /proc/\"$pid\"/cmdline 2>/dev/null; then kill -TERM -- -\"$pid\" 2>/dev/null || kill \"$pid\" 2>/dev/null; fi",
      "job=$(cat \(q(settings.expiryAtJobPath)) 2>/dev/null)",
      "[ -n \"$job\" ] && command -v atrm >/dev/null 2>&1 && atrm \"$job\" 2>/dev/null",
      "if [ -S /run/systemd/private ] && command -v systemctl >/dev/null 2>&1; then systemctl stop svctrace-expiry.timer svctrace-expiry.service >/dev/null 2>&1; systemctl reset-failed svctrace-expiry.service svctrace-expiry.timer >/dev/null 2>&1; fi",
      "rm -f \(q(settings.expiryPidPath)) \(q(settings.expiryAtJobPath))",
    ]
    if guarded {
      return "if [ \"${SVCTRACE_EXPIRY:-}\" != 1 ]; then\n" + body.map { "  " + $0 }.joined(separator: "\n") + "\nfi"
    }
    return body.joined(separator: "\n")
  }

  /// Schedules the node-side expiry after `seconds`, replacing any earlier one, and writes the marker.
  public static func scheduleExpiry(settings: RolloutSettings, seconds: Int64, method: ExpiryMethod)
    throws(ShellQuoteError) -> String
  {
    try scheduleExpiry(settings: settings, secondsExpression: String(seconds), method: method)
  }

  /// Same, with the delay given as a shell expression (`$rem`) evaluated on the node.
  static func scheduleExpiry(settings: RolloutSettings, secondsExpression: String, method: ExpiryMethod)
    throws(ShellQuoteError) -> String
  {
    let q = ShellQuote.quote
    let remove = try q(settings.removeScriptPath)
    var lines = try [
      "mkdir -p \(q(settings.stateDirectory)) || exit 1",
      cancelExpiry(settings: settings, guarded: false),
      "svct_s=\(secondsExpression)",
      "expiry=$(( $(date +%s) + svct_s ))",
    ]
    switch method {
    case .systemd, .automatic:
      lines.append(
        "systemd-run --quiet --unit svctrace-expiry --on-active=\"$svct_s\"s --timer-property=AccuracySec=1s "
          + "--setenv=SVCTRACE_EXPIRY=1 /bin/sh \(remove) || exit 1")
    case .at:
      lines.append("minutes=$(( (svct_s + 59) / 60 )); [ \"$minutes\" -ge 1 ] || minutes=1")
      try lines.append(
        "echo \(q("SVCTRACE_EXPIRY=1 /bin/sh " + remove)) | at now + \"$minutes\" minutes 2>&1 "
          + "| sed -n 's/^job \\([0-9]*\\) .*/\\1/p' > \(q(settings.expiryAtJobPath))")
      try lines.append("[ -s \(q(settings.expiryAtJobPath)) ] || exit 1")
    case .sleeper:
      let starter = "command -v setsid >/dev/null 2>&1 && s=setsid || s="
      lines.append(starter)
      lines.append(
        "SVCTRACE_EXPIRY=1 $s nohup sh -c 'sleep \"$1\"; exec /bin/sh \"$2\"' svctrace-expiry \"$svct_s\" \(remove) "
          + "</dev/null >/dev/null 2>&1 9>&- &")
      try lines.append("echo $! > \(q(settings.expiryPidPath)) || exit 1")
    }
    try lines.append("echo \"$expiry\" > \(q(settings.expiryMarkerPath)) || exit 1")
    return lines.joined(separator: "\n") + "\n"
  }

  /// Removes the old script's leftovers: nat LOG rules with `domeos` prefixes (both backends),
  /// its `kern.* /var/log/iptables.log` line and its `/var/log/iptables` logrotate line.
  /// Prints `rsyslog-conf-changed` when rsyslog.conf was edited (rsyslog must restart).
  public static func removeLegacy(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    let q = ShellQuote.quote
    let conf = try q(settings.legacyRsyslogConf)
    let rotate = try q(settings.legacyLogrotateFile)
    return [
      "status=0",
      "svct_legacy() {",
      "  command -v \"$1\" >/dev/null 2>&1 || return 0",
      "  rules=$(\"$1\" 2>/dev/null | sed -n '/^\\*nat/,/^COMMIT/p' | grep -E '^-A (PREROUTING|OUTPUT|POSTROUTING|INPUT) .*-j LOG .*domeos')",
      "  [ -z \"$rules\" ] && return 0",
      "  { echo '*nat'; printf '%s\\n' \"$rules\" | sed 's/^-A /-D /'; echo COMMIT; } | \"$2\" --noflush || status=1",
      "}",
      "svct_legacy iptables-nft-save iptables-nft-restore",
      "svct_legacy iptables-legacy-save iptables-legacy-restore",
      "if grep -q '^[[:space:]]*kern\\.\\*.*/var/log/iptables' \(conf) 2>/dev/null; then",
      "  sed -i '/^[[:space:]]*kern\\.\\*.*\\/var\\/log\\/iptables/d' \(conf) && echo rsyslog-conf-changed || status=1",
      "fi",
      "if grep -q '^[[:space:]]*/var/log/iptables[[:space:]]*$' \(rotate) 2>/dev/null; then",
      "  sed -i '/^[[:space:]]*\\/var\\/log\\/iptables[[:space:]]*$/d' \(rotate) || status=1",
      "fi",
      "exit $status",
    ].joined(separator: "\n") + "\n"
  }

  /// Deletes iptables-nft base chains / tables that did not exist before (after a rollback), when empty.
  static func dropCreatedNFTObjects(createdBaseChains: [String: [String]], createdTables: [String])
    throws(ShellQuoteError) -> String
  {
    let q = ShellQuote.quote
    var lines: [String] = []
    for family in createdBaseChains.keys.sorted() {
      for chain in createdBaseChains[family] ?? [] {
        try lines.append(
          "[ \"$(nft list chain \(q(family)) mangle \(q(chain)) 2>/dev/null | wc -l)\" -eq 5 ] && nft delete chain \(q(family)) mangle \(q(chain))"
        )
      }
    }
    for family in createdTables {
      try lines.append(
        "nft list table \(q(family)) mangle >/dev/null 2>&1 && [ \"$(nft list table \(q(family)) mangle | grep -c 'chain ')\" -eq 0 ] && nft delete table \(q(family)) mangle"
      )
    }
    lines.append("true")
    return lines.joined(separator: "\n")
  }
}
