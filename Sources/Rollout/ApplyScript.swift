import Foundation
public import SVCTraceCore

/// Renders a ``NodePlan`` to ONE node-side POSIX sh script that applies the whole plan and, on any
/// failing step, restores the node by itself; and parses the script's framed reply.
///
/// Why node-side: a controller that dies (SIGKILL, dropped connection, Ctrl-C, `--timeout`) must never
/// leave a node half-changed. The script therefore
/// - reaches the node on standard input of a small bootstrap command (``bootstrap(nonce:byteCount:)``)
///   that stores it in a fresh `/tmp/svctrace-apply.NONCE` directory and checks its length before running
///   it: a truncated transfer runs nothing. File contents travel inside the script as base64
///   (`base64 -d`, coreutils), so they arrive byte-exact whatever they contain;
/// - runs detached from the SSH channel (`setsid`, standard streams on the node-side log
///   `/tmp/svctrace-apply.NONCE/log`) and ignores HUP, PIPE and INT, so the channel's death cannot stop it;
///   only the final framed reply is printed, and the directory is removed once the reply was written
///   out whole (when the channel died first, `result` and `log` stay, for a day at most, so that a
///   controller interrupted while waiting can still collect the reply);
/// - before the first change backs up what it touches (each location's `*-save` mangle section,
///   `table inet svctrace`, the files with `cp -p`: contents, modes and owners), writes the journal
///   `STATE/apply.pending` (a self-contained undo script) and arms the `--for` expiry;
/// - records `started <step>` in `STATE/apply.progress` before each step, so the undo touches exactly
///   what was (or may have been) changed;
/// - on a failing step runs the journal (reverse order), compares the node with the backups and
///   reports `check same` only when that comparison passed.
///
/// A script killed itself (reboot, `kill -9`) leaves the journal; ``recovery(settings:)``, run first by
/// every probe (`install`, `remove`, `verify`), waits for a live script and rolls a dead one's journal back.
///
/// Reply grammar (one line each, `NONCE` is the controller's random nonce):
/// ```
/// SVCTRACE-APPLY v1 NONCE
/// step INDEX (ok|changed|failed) DETAIL      (zero or more, INDEX = position in ``Step`` list)
/// rollback (ok|failed) DETAIL                (only after a failure)
/// check (same|differs) DETAIL                (only after a failure)
/// end NONCE
/// ```
/// Anything else is a garbled reply and an error naming the node.
public enum ApplyScript {
  /// One step of the rendered script, as the controller reports it.
  public struct Step: Sendable, Hashable {
    /// Report name (`write /etc/rsyslog.d/10-svctrace.conf`, `rules iptables-nft mangle IPv4`).
    public var name: String
    /// The operation of the error when the step fails (`validate rsyslog config (rsyslogd -N1)`).
    public var operation: String
    /// The error kind when the step fails.
    public var kind: RolloutError.Kind
    /// Progress key written before the step runs (the undo reads it).
    var key: String
    /// Shell commands, all of which must succeed.
    var commands: [String]
  }

  /// The rendered script and the names of its steps.
  public struct Rendered: Sendable {
    public var script: String
    public var steps: [Step]
    public var nonce: String
  }

  /// The version of the reply format (`SVCTRACE-APPLY v1`).
  public static let version = "v1"

  static func q(_ value: String) throws(ShellQuoteError) -> String { try ShellQuote.quote(value) }

  /// Node path of the apply journal (an undo script) while an apply runs.
  public static func journalPath(_ settings: RolloutSettings) -> String { settings.stateDirectory + "/apply.pending" }
  /// Node path of the journal of a running remove (a copy of the removal script).
  public static func removeJournalPath(_ settings: RolloutSettings) -> String {
    settings.stateDirectory + "/remove.pending"
  }
  static func backupPath(_ settings: RolloutSettings) -> String { settings.stateDirectory + "/apply.backup" }
  static func progressPath(_ settings: RolloutSettings) -> String { settings.stateDirectory + "/apply.progress" }

  /// A random nonce for one run (hex).
  public static func makeNonce() -> String {
    (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }
      .joined()
  }

  /// The bytes as base64 in a quoted heredoc (`base64 -d <<'SVCTRACE_B64'`); `_` is not in the base64
  /// alphabet, so no encoded line can end the heredoc early.
  static func heredoc(_ bytes: [UInt8], then rest: String = "") -> String {
    let encoded = Data(bytes).base64EncodedString()
    var lines: [String] = []
    var index = encoded.startIndex
    while index < encoded.endIndex {
      let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
      lines.append(String(encoded[index..<end]))
      index = end
    }
    return "base64 -d <<'SVCTRACE_B64'" + (rest.isEmpty ? "" : " " + rest) + "\n" + lines.map { $0 + "\n" }.joined()
      + "SVCTRACE_B64"
  }

  /// The command that receives the script on standard input, checks its length, runs it detached from the
  /// channel and prints its reply. Exit 97 = the script did not arrive whole (nothing ran).
  public static func bootstrap(nonce: String, byteCount: Int) -> String {
    let dir = "/tmp/svctrace-apply." + nonce
    return [
      "umask 077",
      "find /tmp -maxdepth 1 -name 'svctrace-apply.*' -mtime +1 -exec rm -rf {} + 2>/dev/null",
      "t=\(dir); mkdir \"$t\" || exit 97",
      "cat > \"$t/script\" || { rm -rf \"$t\"; exit 97; }",
      "if [ \"$(wc -c < \"$t/script\")\" -ne \(byteCount) ]; then rm -rf \"$t\"; echo 'svctrace: the script arrived truncated; nothing was run' >&2; exit 97; fi",
      "if command -v setsid >/dev/null 2>&1; then",
      "  setsid /bin/sh \"$t/script\" \"$t\" </dev/null >>\"$t/log\" 2>&1 &",
      "  wait $!",
      "else",
      "  ( trap '' HUP PIPE INT; exec /bin/sh \"$t/script\" \"$t\" </dev/null >>\"$t/log\" 2>&1 )",
      "fi",
      collectBody(dir: dir, waitTenths: 0),
    ].joined(separator: "\n")
  }

  /// After an interrupted `run` (Ctrl-C, `--timeout`): waits for the node-side script of `nonce` and prints
  /// its reply; without a reply, rolls back a journal left behind.
  public static func collect(nonce: String, settings: RolloutSettings) throws(ShellQuoteError) -> String {
    let dir = "/tmp/svctrace-apply." + nonce
    return try recovery(settings: settings) + "\n" + collectBody(dir: dir, waitTenths: 900) + "\n"
      + "svct_recover >/dev/null 2>&1 </dev/null\nexit 1"
  }

  static func collectBody(dir: String, waitTenths: Int) -> String {
    // The directory goes once its reply was written out whole (`cat` succeeded): on the normal path the
    // bootstrap removes it, so no cleanup exec is needed. When the channel died first (the controller was
    // interrupted), `cat` fails on the broken pipe and `result` stays for `collect`, which removes the
    // directory after printing it; the next run removes directories older than a day.
    [
      "t=\(dir); i=0",
      "while [ ! -f \"$t/result\" ] && [ $i -lt \(waitTenths) ]; do sleep 0.1; i=$((i+1)); done",
      "if [ -f \"$t/result\" ]; then",
      "  cat \"$t/result\" && rm -rf \"$t\"",
      "  exit 0",
      "fi",
    ].joined(separator: "\n")
  }

  /// Shell function `svct_recover` (defined, not called): waits (bounded) for a live apply/remove script,
  /// then rolls back a leftover apply journal or finishes a leftover remove.
  public static func recovery(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    let dir = try q(settings.stateDirectory)
    return try [
      "svct_recover() {",
      "  for j in \(q(journalPath(settings))) \(q(removeJournalPath(settings))); do",
      "    [ -f \"$j\" ] || continue",
      "    pid=$(sed -n '1s/^svct_pid=\\([0-9]*\\)$/\\1/p' \"$j\")",
      "    i=0",
      "    while [ -n \"$pid\" ] && [ $i -lt 600 ] && grep -q svctrace-apply /proc/\"$pid\"/cmdline 2>/dev/null; do sleep 0.1; i=$((i+1)); done",
      "    [ -n \"$pid\" ] && grep -q svctrace-apply /proc/\"$pid\"/cmdline 2>/dev/null && kill -9 \"$pid\"",
      "    [ -f \"$j\" ] || continue",
      "    case \"$j\" in",
      "      */apply.pending) /bin/sh \"$j\" undo ;;",
      "      *) /bin/sh \"$j\"; rm -f \"$j\"; rmdir \(dir) 2>/dev/null ;;",
      "    esac",
      "  done",
      "  return 0",
      "}",
    ].joined(separator: "\n")
  }

  /// The probe's first lines: recover an interrupted apply or remove, output discarded, immune to HUP/PIPE.
  public static func probePrelude(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    try recovery(settings: settings) + "\n( trap '' HUP PIPE INT; svct_recover ) >/dev/null 2>&1 </dev/null"
  }

  /// `svct_clear` (``NodeScripts/clearFunction``) and the helpers that read a location's mangle
  /// table and svctrace's nft table for the comparison after a rollback.
  static let clearFunction = [
    NodeScripts.clearFunction,
    "svct_mangle() { \"$1\" 2>/dev/null | sed -n '/^\\*mangle/,/^COMMIT/p' | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; }",
    "svct_nft() { nft list table inet svctrace 2>/dev/null | sed 's/counter packets [0-9]* bytes [0-9]*/counter/'; }",
  ].joined(separator: "\n")

  // MARK: Rendering

  /// Renders the plan. `failAt` (tests only) appends `false` to the step of that index, after its commands.
  public static func render(_ plan: NodePlan, nonce: String, failAt: Int? = nil) throws(ShellQuoteError) -> Rendered {
    let settings = plan.settings
    let dir = try q(settings.stateDirectory)
    let changedFiles = plan.files.filter(\.changes)
    func fileIndex(_ path: String) throws(ShellQuoteError) -> Int? { changedFiles.firstIndex { $0.path == path } }
    let touchedIptables = plan.iptables.filter(\.changes)
    let touchesNFT = NFTText.normalize(plan.nftCurrent ?? "") != NFTText.normalize(plan.nftDesired ?? "")
    let method = NodeRollout.expiryMethod(settings.expiryMethod, probe: plan.probe)

    // The undo (journal) script.
    var undo = try [
      "# svctrace apply journal \(version): undoes an interrupted or failed `svctrace install` on this node.",
      "# Run by the apply script on failure and by the next probe when the apply script died.",
      "trap '' HUP PIPE INT",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
      "D=\(dir); B=\(q(backupPath(settings))); P=\(q(progressPath(settings))); J=\(q(journalPath(settings)))",
      "started() { grep -qx \"started $1\" \"$P\" 2>/dev/null; }",
      "rc=0; differs=''",
      clearFunction,
    ]
    // First: a refresh started (or stopped) by this run must not rewrite rules being restored. One
    // that ran before is started again at the end, once its script and the rules are back.
    var restartRefresh: String?
    if let action = plan.refreshAction {
      undo += try ["if started refresh; then", "  ( \(RefreshScript.stop(settings: settings)) )", "fi"]
      if let running = plan.probe.refresh.running {
        let method: RefreshMethod = running == "systemd" ? .systemd : .loop
        var interval = settings.refreshInterval ?? 15
        if case .start(_, let started) = action { interval = started }
        restartRefresh = try
          "if started refresh; then ( \(RefreshScript.start(settings: settings, method: method, interval: interval)) ) || rc=1; fi"
      }
    }
    if plan.expirySeconds != nil {
      undo += try [
        "if started expiry-armed; then",
        "  ( \(NodeScripts.cancelExpiry(settings: settings, guarded: false)) )",
        "  if [ -f \"$B/expiry\" ]; then",
        "    old=$(cat \"$B/expiry\"); rem=$(( old - $(date +%s) ))",
        "    if [ \"$rem\" -gt 0 ]; then ( \(NodeScripts.scheduleExpiry(settings: settings, secondsExpression: "$rem", method: method)) ) || rc=1",
        "    else rm -f \(q(settings.expiryMarkerPath)); fi",
        "  else rm -f \(q(settings.expiryMarkerPath)); fi",
        "fi",
      ]
    }
    for (index, file) in changedFiles.enumerated().reversed() {
      let path = try q(file.path)
      undo += try [
        "if started file-\(index); then",
        "  if [ -f \"$B/f\(index).absent\" ]; then rm -f \(path) || rc=1",
        "  elif [ -f \"$B/f\(index)\" ]; then cp -p \"$B/f\(index)\" \(q(file.path + ".svctrace-tmp")) && mv -f \(q(file.path + ".svctrace-tmp")) \(path) || rc=1; fi",
        "fi",
      ]
    }
    if touchesNFT {
      undo += [
        "if started nft; then",
        "  if [ -f \"$B/nft.table\" ]; then",
        "    { printf 'table inet svctrace\\ndelete table inet svctrace\\n'; cat \"$B/nft.table\"; } > \"$B/nft.restore\" && nft -f \"$B/nft.restore\" || rc=1",
        "  elif nft list table inet svctrace >/dev/null 2>&1; then nft delete table inet svctrace || rc=1; fi",
        "fi",
      ]
    }
    for (index, target) in touchedIptables.enumerated().reversed() {
      guard let binary = target.backend.binary(target.family) else { continue }
      undo += [
        "if started rules-\(index); then",
        "  svct_clear \(binary)-save \(binary)-restore || rc=1",
      ]
      if !target.current.isEmpty {
        undo.append(
          "  "
            + heredoc(
              Array(target.current.restoreFragment(from: IptablesRuleState()).utf8),
              then: "| \(binary)-restore --noflush || rc=1"))
      }
      if target.backend == .iptablesNFT {
        let name = target.family == .ipv4 ? "ip" : "ip6"
        let existed = plan.probe.nftMangleBaseChains(target.family)
        let created = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].filter { !existed.contains($0) }
        try undo.append(
          NodeScripts.dropCreatedNFTObjects(
            createdBaseChains: [name: created],
            createdTables: plan.probe.nftMangleTableExists(target.family) ? [] : [name]))
      }
      undo.append("fi")
    }
    let logContext = try logContextCommands(plan)
    if !logContext.undo.isEmpty {
      undo += ["if started log-context; then"] + logContext.undo.map { "  " + $0 } + ["fi"]
    }
    if plan.restartRsyslog && plan.probe.rsyslogActive {
      undo.append("if started rsyslog-restart; then \(settings.commands.rsyslogRestart) || rc=1; fi")
    }
    if let restartRefresh { undo.append(restartRefresh) }
    // Compare with the backups: "as before" only when every touched thing matches.
    for (index, target) in touchedIptables.enumerated() {
      guard let binary = target.backend.binary(target.family) else { continue }
      undo.append(
        "if [ -f \"$B/i\(index).before\" ]; then svct_mangle \(binary)-save > \"$B/i\(index).after\"; "
          + "cmp -s \"$B/i\(index).before\" \"$B/i\(index).after\" || differs=\"$differs \(target.location.replacingOccurrences(of: " ", with: "_"))\"; fi"
      )
    }
    if touchesNFT {
      undo.append(
        "if [ -f \"$B/nft.before\" ]; then svct_nft > \"$B/nft.after\"; cmp -s \"$B/nft.before\" \"$B/nft.after\" || differs=\"$differs nft_table\"; fi"
      )
    }
    for (index, file) in changedFiles.enumerated() {
      let path = try q(file.path)
      undo += [
        "if [ -f \"$B/f\(index).absent\" ]; then [ -e \(path) ] && differs=\"$differs file-\(index)\"",
        "elif [ -f \"$B/f\(index)\" ]; then { cmp -s \"$B/f\(index)\" \(path) && [ \"$(stat -c '%a %u %g' \(path))\" = \"$(stat -c '%a %u %g' \"$B/f\(index)\")\" ]; } || differs=\"$differs file-\(index)\"; fi",
      ]
    }
    undo += [
      "rm -f \"$J\"",
      "rm -rf \"$B\" \"$P\"",
      "[ \"${created_lock:-0}\" = 1 ] && rm -f \"$D/lock\"",
      "[ \"$created_dir\" = 1 ] && { rmdir \"$D\" 2>/dev/null; [ -e \"$D\" ] && differs=\"$differs state-directory\"; }",
      "if [ -z \"$differs\" ]; then echo 'check same rules, nft table and files compared with the backups'; else echo \"check differs$differs\"; fi",
      "exit $rc",
    ]

    // The steps.
    var steps: [Step] = []
    func writeCommands(_ file: FileChange) throws(ShellQuoteError) -> [String] {
      let path = try q(file.path)
      let temp = try q(file.path + ".svctrace-tmp")
      guard let desired = file.desired else { return ["rm -f \(path)"] }
      return [
        heredoc(desired, then: "> \(temp)"),
        "if [ -e \(path) ]; then chown --reference=\(path) \(temp) && chmod --reference=\(path) \(temp); "
          + "else chmod \(String(file.mode, radix: 8)) \(temp); fi",
        "mv -f \(temp) \(path)",
      ]
    }
    for file in changedFiles
    where [settings.statePath, settings.removeScriptPath, settings.refreshScriptPath].contains(file.path) {
      try steps.append(
        Step(
          name: "write \(file.path)", operation: "write \(file.path)", kind: .file,
          key: "file-\(fileIndex(file.path) ?? 0)", commands: writeCommands(file)))
    }
    for (index, target) in touchedIptables.enumerated() {
      guard let binary = target.backend.binary(target.family) else { continue }
      let fragment = target.desired.restoreFragment(from: target.current)
      steps.append(
        Step(
          name: "rules \(target.location)", operation: "load svctrace rules (\(binary)-restore --noflush)",
          kind: .commandFailed, key: "rules-\(index)",
          commands: [heredoc(Array(fragment.utf8), then: "| \(binary)-restore --noflush")]))
    }
    if touchesNFT {
      let command: String
      let operation: String
      if let table = plan.nftDesired {
        command = heredoc(
          Array(Renderer.nftApplyFile(table: table).utf8), then: "> \"$T/nft\" && nft -f \"$T/nft\"")
        operation = "load nft table inet svctrace"
      } else {
        command = "nft delete table inet svctrace"
        operation = "delete nft table inet svctrace"
      }
      steps.append(
        Step(
          name: "nft table inet svctrace", operation: operation, kind: .commandFailed, key: "nft", commands: [command]))
    }
    if let action = plan.refreshAction {
      let command: String
      switch action {
      case .start(let method, let interval):
        command = try "( \(RefreshScript.start(settings: settings, method: method, interval: interval)) )"
      case .stop:
        command = try "( \(RefreshScript.stop(settings: settings)) )"
      }
      let name = if case .stop = action { "stop the refresh" } else { "start the refresh" }
      steps.append(
        Step(name: name, operation: name, kind: .commandFailed, key: "refresh", commands: [command]))
    }
    if let dropIn = changedFiles.first(where: { $0.path == settings.rsyslogDropInPath }) {
      try steps.append(
        Step(
          name: "write \(dropIn.path)", operation: "write \(dropIn.path)", kind: .file,
          key: "file-\(fileIndex(dropIn.path) ?? 0)", commands: writeCommands(dropIn)))
    }
    if !logContext.apply.isEmpty {
      steps.append(
        Step(
          name: "SELinux context of \(settings.logPath)", operation: "label the log file (restorecon)", kind: .file,
          key: "log-context", commands: logContext.apply))
    }
    if plan.restartRsyslog {
      steps.append(
        Step(
          name: "rsyslogd -N1", operation: "validate rsyslog config (rsyslogd -N1)", kind: .commandFailed,
          key: "rsyslog-validate", commands: [settings.commands.rsyslogValidate]))
      steps.append(
        Step(
          name: "restart rsyslog", operation: "restart rsyslog", kind: .commandFailed, key: "rsyslog-restart",
          commands: [settings.commands.rsyslogRestart, settings.commands.rsyslogIsActive]))
    }
    if let rotate = changedFiles.first(where: { $0.path == settings.logrotatePath }) {
      try steps.append(
        Step(
          name: "write \(rotate.path)", operation: "write \(rotate.path)", kind: .file,
          key: "file-\(fileIndex(rotate.path) ?? 0)", commands: writeCommands(rotate)))
      if rotate.desired != nil {
        try steps.append(
          Step(
            name: "logrotate -d", operation: "check logrotate file (logrotate -d)", kind: .commandFailed,
            key: "logrotate-check", commands: [settings.commands.logrotateDebug + " " + q(rotate.path)]))
      }
    }
    if let seconds = plan.expirySeconds {
      try steps.append(
        Step(
          name: "expiry", operation: "schedule capture expiry (\(method.rawValue))", kind: .commandFailed,
          key: "expiry",
          commands: ["( \(NodeScripts.scheduleExpiry(settings: settings, seconds: seconds, method: method)) )"]))
    }

    // The apply script.
    var script = try [
      "#!/bin/sh",
      "# svctrace apply \(version) for \(plan.host.name.filter { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }):"
        + " rendered by the controller, run detached on the node.",
      "trap '' HUP PIPE INT",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
      "umask 022",
      "T=$1",
      "D=\(dir); B=\(q(backupPath(settings))); P=\(q(progressPath(settings))); J=\(q(journalPath(settings)))",
      recovery(settings: settings),
      clearFunction,
      ": > \"$T/steps\"",
      "emit() { printf '%s\\n' \"$*\" >> \"$T/steps\"; }",
      "detail() { tail -n 3 \"$T/out\" 2>/dev/null | tr -c '[:print:]' ' ' | cut -c1-300; }",
      "finish() {",
      "  { echo \"SVCTRACE-APPLY \(version) \(nonce)\"; cat \"$T/steps\"; echo \"end \(nonce)\"; } > \"$T/result.tmp\"",
      "  mv -f \"$T/result.tmp\" \"$T/result\"",
      "  exit 0",
      "}",
      "fail() {",
      "  emit \"step $1 failed $(detail)\"",
      "  if [ -f \"$J\" ]; then",
      "    /bin/sh \"$J\" undo > \"$T/undo\" 2>&1; urc=$?",
      "    cat \"$T/undo\"",
      "    if [ $urc -eq 0 ]; then emit 'rollback ok'; else emit \"rollback failed $(grep -v '^check ' \"$T/undo\" | tail -n 2 | tr -c '[:print:]' ' ' | cut -c1-300)\"; fi",
      "    c=$(grep '^check ' \"$T/undo\" | tail -n 1 | tr -c '[:print:]' ' ' | cut -c1-300)",
      "    [ -n \"$c\" ] || c='check differs the rollback did not finish'",
      "    emit \"$c\"",
      "  else",
      "    emit 'rollback ok'",
      "    emit 'check same nothing was changed'",
      "  fi",
      "  finish",
      "}",
      "step() { k=$1; key=$2; shift 2; echo \"started $key\" >> \"$P\"; \"$@\" > \"$T/out\" 2>&1; s=$?; cat \"$T/out\"; "
        + "[ $s -eq 0 ] || fail \"$k\"; }",
      "# A journal left by an earlier, interrupted run is rolled back first.",
      "svct_recover",
      // Preparation: state directory, backups, journal. Failures here change nothing lasting.
      "pfail() { rm -rf \"$B\" \"$P\" \"$J.tmp\"; [ \"${created_lock:-0}\" = 1 ] && rm -f \"$D/lock\"; "
        + "[ \"$created_dir\" = 1 ] && rmdir \"$D\" 2>/dev/null; emit \"prepare failed $(detail)\"; finish; }",
      "created_dir=0; [ -d \"$D\" ] || { mkdir -p \"$D\" > \"$T/out\" 2>&1 && created_dir=1 || pfail; }",
      "# The node lock: a refresh round (refresh.sh) never runs while this script changes rules.",
      "# (A lock file this run creates is removed again by a rollback: a failed install leaves no trace.)",
      "created_lock=0; [ -e \"$D/lock\" ] || created_lock=1",
      "if command -v flock >/dev/null 2>&1 && exec 9>>\"$D/lock\"; then flock -w 60 9; fi",
      "{ rm -rf \"$B\" && mkdir \"$B\" && : > \"$P\"; } > \"$T/out\" 2>&1 || pfail",
    ]
    for (index, file) in changedFiles.enumerated() {
      let path = try q(file.path)
      script.append(
        "{ if [ -e \(path) ]; then cp -p \(path) \"$B/f\(index)\"; else : > \"$B/f\(index).absent\"; fi; } > \"$T/out\" 2>&1 || pfail"
      )
    }
    for (index, target) in touchedIptables.enumerated() {
      guard let binary = target.backend.binary(target.family) else { continue }
      script.append("svct_mangle \(binary)-save > \"$B/i\(index).before\" || pfail")
    }
    if touchesNFT {
      script.append("svct_nft > \"$B/nft.before\" || pfail")
      script.append(
        "nft list table inet svctrace > \"$B/nft.table\" 2>/dev/null || rm -f \"$B/nft.table\"")
    }
    if plan.expirySeconds != nil {
      try script.append("[ -f \(q(settings.expiryMarkerPath)) ] && cp -p \(q(settings.expiryMarkerPath)) \"$B/expiry\"")
    }
    let undoText = undo.joined(separator: "\n") + "\n"
    script += [
      "{ echo \"svct_pid=$$\"; echo \"created_dir=$created_dir\"; echo \"created_lock=$created_lock\"; "
        + heredoc(Array(undoText.utf8))
        + "\n} > \"$J.tmp\" 2> \"$T/out\" && mv -f \"$J.tmp\" \"$J\" || pfail"
    ]
    if let seconds = plan.expirySeconds {
      // Armed before the first change (and re-armed, i.e. extended, by the last step).
      script.append("echo started expiry-armed >> \"$P\"")
      try script.append(
        "( \(NodeScripts.scheduleExpiry(settings: settings, seconds: seconds, method: method)) ) > \"$T/out\" 2>&1 || fail prepare"
      )
    }
    for (index, step) in steps.enumerated() {
      var commands = step.commands
      if failAt == index { commands.append("echo 'svctrace: injected failure' >&2; false") }
      script.append("s\(index)() {")
      for command in commands { script.append("  {\n\(command)\n  } || return 1") }
      script.append("}")
      script.append("step \(index) \(step.key) s\(index)")
      let outcome = step.key == "rsyslog-validate" || step.key == "logrotate-check" ? "ok" : "changed"
      script.append("emit 'step \(index) \(outcome)'")
    }
    script += [
      "# Success: the journal goes first (the commit point), then the backups.",
      "rm -f \"$J\"; rm -rf \"$B\" \"$P\"",
    ]
    var refreshes = settings.refreshInterval != nil && settings.services.isEmpty
    if case .stop = plan.refreshAction { refreshes = false }
    if refreshes {
      // A refresh round, now that the journal is gone and the lock released: the status file
      // exists and the refresh-owned rules are filled when install returns — also when this run
      // re-created them (after a reboot or a flush) while the refresh was already running. It
      // waits for a round of the loop or timer that holds the lock (else it would skip).
      try script.append(
        "exec 9>&-; /bin/sh \(q(settings.refreshScriptPath)) --wait </dev/null >/dev/null 2>&1 || true")
    }
    script.append("finish")
    // `fail prepare` would name a step index; map it to the expiry step index for the reply.
    let text =
      script.joined(separator: "\n").replacingOccurrences(
        of: "|| fail prepare", with: "|| fail \(steps.firstIndex { $0.key == "expiry" } ?? 0)") + "\n"
    return Rendered(script: text, steps: steps, nonce: nonce)
  }

  /// Where SELinux is enforcing (``NodePlatform/selinux``): the step that gives svctrace's log file
  /// (and its directory, when the step creates it) the context the policy names for its path, and
  /// that step's undo. Empty elsewhere: nothing is rendered.
  ///
  /// The step creates the directory and an empty file (mode 0640) when they do not exist yet, so
  /// that rsyslog, restarted next, opens a file that is already labelled; then, when `restorecon`
  /// is installed, records the file's current context and runs `restorecon` on the file (and on
  /// the directory it created). The undo puts the recorded context back (`chcon`) and removes
  /// what the step created while it is still empty.
  static func logContextCommands(_ plan: NodePlan) throws(ShellQuoteError) -> (apply: [String], undo: [String]) {
    guard plan.probe.platform.selinux == .enforcing else { return ([], []) }
    let log = try q(plan.settings.logPath)
    let directory = try q((plan.settings.logPath as NSString).deletingLastPathComponent)
    let apply = [
      "if [ ! -d \(directory) ]; then mkdir -p \(directory) && : > \"$B/logdir.created\"; fi",
      "if [ ! -e \(log) ]; then ( umask 027; : > \(log) ) && : > \"$B/log.created\"; fi",
      // One command: each entry of a step is checked on its own.
      [
        "if command -v restorecon >/dev/null 2>&1; then",
        "  stat -c %C \(log) > \"$B/log.context\" 2>/dev/null || rm -f \"$B/log.context\"",
        "  restorecon \(log) && { [ ! -f \"$B/logdir.created\" ] || restorecon \(directory); }",
        "fi",
      ].joined(separator: "\n"),
    ]
    let undo = [
      "if [ -f \"$B/log.created\" ]; then [ -s \(log) ] || rm -f \(log) || rc=1",
      "elif [ -s \"$B/log.context\" ]; then chcon \"$(cat \"$B/log.context\")\" \(log) || rc=1; fi",
      "if [ -f \"$B/logdir.created\" ]; then rmdir \(directory) 2>/dev/null; fi",
    ]
    return (apply, undo)
  }

  // MARK: Reply

  /// The parsed reply of the apply script.
  public struct Reply: Sendable {
    /// Outcome of each step that ran, by index.
    public var steps: [(index: Int, outcome: String, detail: String)]
    /// Failed during preparation (backups/journal), with the detail.
    public var prepareFailure: String?
    /// `ok`/`failed` and detail of the node-side rollback, when one ran.
    public var rollback: (ok: Bool, detail: String)?
    /// `same`/`differs` comparison after rollback.
    public var check: (same: Bool, detail: String)?
  }

  /// Parses the reply strictly (see the grammar above).
  /// - Throws: ``RolloutError`` of kind `.unexpectedOutput` naming the node and the offending line.
  public static func parse(_ output: String, nonce: String, stepCount: Int, host: HostID) throws(RolloutError) -> Reply
  {
    func garbled(_ why: String) -> RolloutError {
      RolloutError(
        host: host, operation: "read the apply script's reply", kind: .unexpectedOutput,
        reason: "garbled reply (\(why))")
    }
    var lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if lines.last == "" { lines.removeLast() }
    guard lines.first == "SVCTRACE-APPLY \(version) \(nonce)" else {
      throw garbled(
        "expected `SVCTRACE-APPLY \(version) \(nonce)`, got \(String((lines.first ?? "").prefix(80)).debugDescription)")
    }
    guard lines.count >= 2, lines.last == "end \(nonce)" else { throw garbled("missing `end \(nonce)`") }
    var reply = Reply(steps: [], prepareFailure: nil, rollback: nil, check: nil)
    for line in lines.dropFirst().dropLast() {
      let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
      switch words.first {
      case "step":
        guard words.count >= 3, let index = Int(words[1]), (0..<stepCount).contains(index),
          ["ok", "changed", "failed"].contains(words[2]), reply.rollback == nil
        else { throw garbled("bad line \(String(line.prefix(80)).debugDescription)") }
        reply.steps.append((index, words[2], words.count > 3 ? words[3] : ""))
      case "prepare":
        guard words.count >= 2, words[1] == "failed", reply.steps.isEmpty else {
          throw garbled("bad line \(String(line.prefix(80)).debugDescription)")
        }
        reply.prepareFailure = words.dropFirst(2).joined(separator: " ")
      case "rollback":
        guard words.count >= 2, ["ok", "failed"].contains(words[1]), reply.rollback == nil else {
          throw garbled("bad line \(String(line.prefix(80)).debugDescription)")
        }
        reply.rollback = (words[1] == "ok", words.dropFirst(2).joined(separator: " "))
      case "check":
        guard words.count >= 2, ["same", "differs"].contains(words[1]), reply.rollback != nil, reply.check == nil
        else { throw garbled("bad line \(String(line.prefix(80)).debugDescription)") }
        reply.check = (words[1] == "same", words.dropFirst(2).joined(separator: " "))
      default:
        throw garbled("unknown line \(String(line.prefix(80)).debugDescription)")
      }
    }
    let failed = reply.steps.filter { $0.outcome == "failed" }
    guard failed.count <= 1, failed.isEmpty || reply.steps.last?.outcome == "failed" else {
      throw garbled("a step follows a failed step")
    }
    if !failed.isEmpty && (reply.rollback == nil || reply.check == nil) {
      throw garbled("a failed step without rollback and check lines")
    }
    if failed.isEmpty && reply.rollback != nil { throw garbled("a rollback without a failed step") }
    return reply
  }
}

// MARK: Remove

extension ApplyScript {
  /// Section names of the remove reply (after `before/` and `after/` probe sections).
  static let removeSection = "remove"
  static let legacySection = "legacy"
  static let purgeSection = "purge"
  /// A section's status when an earlier step failed and it did not run.
  static let skippedStatus: Int32 = 125

  /// The whole of `svctrace remove` as ONE node-side script, run detached through the bootstrap like
  /// the apply script, whose result is a ``NodeReply`` (nonce `nonce`):
  /// - the probe prelude (recovery of an interrupted apply or remove), then the probe's sections as
  ///   `before/NAME` (what was present, the old script's leftovers);
  /// - `remove`: writes the journal `STATE/remove.pending` (the removal script, with the node's
  ///   `state.json` baked in, so that the next probe can finish a killed removal), runs it; body =
  ///   its output, status = its exit status;
  /// - `legacy` (with `legacy`): the old script's leftovers; prints `rsyslog-conf-changed` when
  ///   rsyslog.conf was edited, then validates and restarts rsyslog (status 1 removal, 2 validation,
  ///   3 restart failed);
  /// - `purge` (with `purgeLogs`): prints `1` when log files were deleted, else `0`;
  /// - `after/NAME`: the sections ``NodeRollout/presentArtifacts(_:settings:)`` reads, after.
  /// A step after a failed one does not run (status ``skippedStatus``).
  public static func renderRemove(settings: RolloutSettings, purgeLogs: Bool, legacy: Bool, nonce: String)
    throws(ShellQuoteError) -> String
  {
    let pending = try q(removeJournalPath(settings))
    var reply = NodeReply.Script(nonce: nonce)
    try reply.prelude(probePrelude(settings: settings))
    reply.prelude(NodeProber.haveFunction)
    // `$1` is the run's directory: a failed step leaves `failed` there, and later steps skip.
    reply.prelude("svct_T=$1")
    let skip = "[ -e \"$svct_T/failed\" ] && exit \(skippedStatus)"
    // What is there before: presence only (svctrace's mangle rules, its nft table, files, expiry),
    // not kube-proxy's nat rules — on a large cluster those are megabytes — unless the old
    // script's nat LOG rules are being removed too (`--legacy`).
    if legacy {
      try NodeProber.addSections(to: &reply, settings: settings, prefix: "before/")
    } else {
      for (name, body) in try NodeProber.presenceSections(settings: settings) { reply.section("before/" + name, body) }
    }
    let removal = try NodeScripts.removeScript(settings: settings, objects: .fromNodeState)
    try reply.section(
      removeSection,
      [
        "mkdir -p \(q(settings.stateDirectory)) 2>&1 || { touch \"$svct_T/failed\"; exit 1; }",
        NodeScripts.stateVariable(settings: settings),
        "{ echo \"svct_pid=$$\"; echo \"svct_st='$svct_st'\"; " + heredoc(Array(removal.utf8))
          + "\n} > \(q(removeJournalPath(settings) + ".tmp")) 2>&1 "
          + "&& mv -f \(q(removeJournalPath(settings) + ".tmp")) \(pending) || { touch \"$svct_T/failed\"; exit 1; }",
        "/bin/sh \(pending) 2>&1; s=$?",
        "rm -f \(pending); rmdir \(q(settings.stateDirectory)) 2>/dev/null",
        "[ $s -eq 0 ] || touch \"$svct_T/failed\"",
        "exit $s",
      ].joined(separator: "\n"))
    if legacy {
      try reply.section(
        legacySection,
        [
          skip,
          "svct_o=$( ( \(NodeScripts.removeLegacy(settings: settings)) ) 2>&1 ) || "
            + "{ printf '%s\\n' \"$svct_o\"; touch \"$svct_T/failed\"; exit 1; }",
          "case \"$svct_o\" in *rsyslog-conf-changed*) ;; *) exit 0 ;; esac",
          "echo rsyslog-conf-changed",
          "svct_o=$( ( \(settings.commands.rsyslogValidate) ) 2>&1 ) || "
            + "{ printf '%s\\n' \"$svct_o\"; touch \"$svct_T/failed\"; exit 2; }",
          "svct_o=$( ( \(settings.commands.rsyslogRestart) ) 2>&1 ) || "
            + "{ printf '%s\\n' \"$svct_o\"; touch \"$svct_T/failed\"; exit 3; }",
          "exit 0",
        ].joined(separator: "\n"))
    }
    if purgeLogs {
      let log = try q(settings.logPath)
      reply.section(
        purgeSection,
        skip + "\nfound=0; for f in \(log) \(log).[0-9]* \(log).[0-9]*.gz; do "
          + "[ -e \"$f\" ] && { rm -f \"$f\"; found=1; }; done; echo $found")
    }
    for (name, body) in try NodeProber.presenceSections(settings: settings) { reply.section("after/" + name, body) }
    return [
      "#!/bin/sh",
      "# svctrace remove \(version): rendered by the controller, run detached on the node.",
      "trap '' HUP PIPE INT",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
      "T=$1",
      heredoc(Array(reply.text.utf8), then: "> \"$T/reply\""),
      "/bin/sh \"$T/reply\" \"$T\" > \"$T/result.tmp\" 2>> \"$T/log\"",
      "mv -f \"$T/result.tmp\" \"$T/result\"",
    ].joined(separator: "\n") + "\n"
  }
}

// MARK: Running the scripts

extension NodeRollout {
  /// Sends a rendered script through the bootstrap and returns its reply. When the wait is interrupted
  /// (cancellation, `--timeout`, a failed channel), collects the reply in a task detached from the
  /// caller's cancellation, with its own deadline; `nil` when no reply could be had.
  static func runNodeScript(
    _ script: String, nonce: String, session: any RemoteSession, settings: RolloutSettings
  ) async throws(ShellQuoteError) -> (output: [UInt8]?, error: String?) {
    let bytes = Array(script.utf8)
    do {
      let result = try await session.run(
        ApplyScript.bootstrap(nonce: nonce, byteCount: bytes.count), stdin: bytes, timeout: .seconds(600))
      if result.exitStatus == 97 {
        return (nil, "the script did not arrive whole; nothing was run (\(result.failureSummary))")
      }
      // No cleanup exec: the bootstrap removed the directory once the reply was out.
      return (result.stdout, nil)
    } catch {
      let first = (error as? RemoteError)?.message ?? "\(error)"
      // Shielded from the caller's cancellation: a detached task, bounded by its own timeout.
      let collect = try ApplyScript.collect(nonce: nonce, settings: settings)
      let collected = await Task.detached { () -> CommandResult? in
        try? await session.run(collect, stdin: nil, timeout: .seconds(120))
      }.value
      if let collected, collected.exitStatus == 0, !collected.stdout.isEmpty {
        return (collected.stdout, nil)
      }
      return (
        nil,
        "lost the node-side script's reply (\(first)); the script finishes or rolls back on the node by itself, "
          + "and the next install, remove or verify completes an interrupted rollback"
      )
    }
  }

  /// Applies a plan through one node-side script (see ``ApplyScript``). `failAt` is for tests only.
  static func applyOnNode(_ plan: NodePlan, session: any RemoteSession, failAt: Int? = nil) async
    -> NodeChangeReport
  {
    let host = plan.host
    let nonce = ApplyScript.makeNonce()
    let rendered: ApplyScript.Rendered
    let output: [UInt8]?
    let lost: String?
    do {
      rendered = try ApplyScript.render(plan, nonce: nonce, failAt: failAt)
      (output, lost) = try await runNodeScript(rendered.script, nonce: nonce, session: session, settings: plan.settings)
    } catch {
      // Only a NUL byte in a value can stop the rendering; settings refuse those, so this is a bug.
      let failure = RolloutError(
        host: host, operation: "render the apply script", kind: .unexpectedOutput,
        reason: "\(error); nothing was changed")
      return NodeChangeReport(
        host: host, changed: false, failure: failure,
        steps: [StepResult(name: "apply", outcome: .failed, detail: failure.reason)])
    }
    guard let output else {
      let failure = RolloutError(host: host, operation: "apply", kind: .commandFailed, reason: lost ?? "no reply")
      return NodeChangeReport(
        host: host, changed: false, failure: failure,
        steps: [StepResult(name: "apply", outcome: .failed, detail: failure.reason)])
    }
    let reply: ApplyScript.Reply
    do {
      reply = try ApplyScript.parse(
        String(decoding: output, as: UTF8.self), nonce: nonce, stepCount: rendered.steps.count, host: host)
    } catch {
      return NodeChangeReport(
        host: host, changed: false, failure: error,
        steps: [StepResult(name: error.operation, outcome: .failed, detail: error.reason)])
    }
    var steps: [StepResult] = []
    if let detail = reply.prepareFailure {
      let failure = RolloutError(
        host: host, operation: "prepare the install (state directory, backups, journal)", kind: .file,
        reason: (detail.isEmpty ? "failed" : detail) + "; nothing was changed")
      return NodeChangeReport(
        host: host, changed: false, failure: failure,
        steps: [StepResult(name: "prepare", outcome: .failed, detail: failure.reason)])
    }
    var failure: RolloutError?
    for entry in reply.steps {
      let step = rendered.steps[entry.index]
      let detail = entry.detail.trimmingCharacters(in: .whitespaces)
      switch entry.outcome {
      case "ok": steps.append(StepResult(name: step.name, outcome: .ok, detail: detail))
      case "changed": steps.append(StepResult(name: step.name, outcome: .changed, detail: detail))
      default:
        steps.append(StepResult(name: step.name, outcome: .failed, detail: detail))
        failure = RolloutError(
          host: host, operation: step.operation, kind: step.kind, reason: detail.isEmpty ? "failed" : detail)
      }
    }
    guard var reported = failure else {
      return NodeChangeReport(host: host, changed: true, failure: nil, steps: steps)
    }
    let rollback = reply.rollback ?? (false, "")
    let check = reply.check ?? (false, "")
    let checkDetail = check.detail.trimmingCharacters(in: .whitespaces)
    if rollback.ok && check.same {
      reported.reason += "; rolled back on the node, left as it was (checked)"
      steps.append(StepResult(name: "roll back", outcome: .rolledBack, detail: checkDetail))
    } else {
      var parts: [String] = []
      if !rollback.ok {
        parts.append("rollback failed" + (rollback.detail.isEmpty ? "" : ": " + rollback.detail))
      }
      if !check.same { parts.append("differs from before: " + checkDetail) }
      reported.reason += "; rolled back, but " + parts.joined(separator: "; ") + " (check the node)"
      if check.same { steps.append(StepResult(name: "roll back", outcome: .rolledBack, detail: checkDetail)) }
      steps.append(StepResult(name: "roll back", outcome: .failed, detail: parts.joined(separator: "; ")))
    }
    return NodeChangeReport(host: host, changed: false, failure: reported, steps: steps)
  }
}
