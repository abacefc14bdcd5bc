import Foundation
public import SVCTraceCore

/// How the node-side refresh is run.
public enum RefreshMethod: String, Sendable, Hashable, Codable {
  /// systemd where PID 1's manager answers, else the loop.
  case automatic
  /// A transient `systemd-run --on-unit-active` timer (`svctrace-refresh.timer`).
  case systemd
  /// A detached `while …; do refresh.sh; sleep N; done` with a pid file.
  case loop
}

/// How a refresh round reads kube-proxy's `KUBE-SERVICES` and svctrace's `SVCT-PRE-X` chains.
public enum RefreshChainReads: Sendable, Hashable {
  /// `iptables -t nat -S KUBE-SERVICES` and `-t mangle -S SVCT-PRE-X`, one chain each; a failure
  /// (the chain is missing, or an old iptables-legacy finds the xtables lock held) falls back to
  /// the whole-table save, which tells a missing chain from an error.
  case oneChain
  /// Whole-table `-save -t mangle` and `-save -t nat` every round: the first version, kept as
  /// the baseline of `svctrace-bench refresh`.
  case wholeTables
}

/// The node-side refresh: a small script (`STATE/refresh.sh`) that svctrace installs and removes,
/// run every ``RolloutSettings/refreshInterval`` seconds, which keeps ONLY a refresh-owned part of
/// svctrace's rules current with the Service addresses kube-proxy forwards now:
///
/// - iptables backends: the chains ``preChain``/``postChain`` (`SVCT-PRE-X`, `SVCT-POST-X`), jumped
///   from the end of `SVCT-PRE`/`SVCT-POST`, rewritten by one `iptables-restore --noflush`;
/// - nftables mode: the sets `extra4`/`extra6` of `table inet svctrace`, referenced by the scope
///   chains, rewritten by one `nft -f` (`flush set` + `add element`, one transaction).
///
/// The one-rule LOG chains (`SVCT-LOG-PRE`/`SVCT-LOG-POST`) and the nft log rules are never
/// rewritten, so their packet counters keep counting. With a Service CIDR the refresh adds only
/// load-balancer and external IPs (the CIDR covers ClusterIPs); without one, every Service address.
/// It skips a round while an install or remove runs (their journals exist, or they hold
/// `STATE/lock`) or another round runs; `refresh.sh --wait` (install's own round) waits for that
/// round instead, so the status is current when install returns. Each round writes
/// `STATE/refresh.status` (``RefreshStatus``) for `verify`.
public enum RefreshScript {
  /// The refresh-owned iptables chains.
  public static let preChain = "SVCT-PRE-X"
  public static let postChain = "SVCT-POST-X"
  /// The refresh-owned nft sets, by family.
  public static func nftSet(_ family: IPFamily) -> String { family == .ipv4 ? "extra4" : "extra6" }
  /// The systemd unit (timer and service) name.
  public static let unit = "svctrace-refresh"

  static func q(_ value: String) throws(ShellQuoteError) -> String { try ShellQuote.quote(value) }

  /// The awk program that prints the Service addresses in an `iptables-save` dump's nat `KUBE-SERVICES`
  /// rules, the way ``NodeProber/learnFromNat(_:family:)`` reads them: `-d ADDR[/32|/128]` (not
  /// negated), `-p tcp|udp|sctp`, `--dport N`, a jump to `KUBE-SVC-`/`SVL-`/`EXT-`/`XLB-`/`FW-`. With
  /// `want=external`, only load-balancer and external IPs (kube-proxy's comment, else the target).
  /// Variables: `want` (`all`|`external`), `fam` (`4`|`6`).
  public static let iptablesAwk = #"""
    /^\*/ { nat = ($0 == "*nat"); next }
    !nat || $1 != "-A" || $2 != "KUBE-SERVICES" { next }
    {
      d = ""; p = ""; port = ""; t = ""; c = ""
      for (i = 3; i <= NF; i++) {
        w = $i
        if (w == "-d") { d = (i > 3 && $(i - 1) == "!") ? "" : $(i + 1) }
        else if (w == "-p") { p = $(i + 1) }
        else if (w == "--dport") { port = $(i + 1) }
        else if (w == "-j" || w == "-g") { t = $(i + 1) }
        else if (w == "--comment") {
          j = i + 1; c = $j
          if (c ~ /^"/) { while ((c == "\"" || c !~ /"$/) && j < NF) { j++; c = c " " $j } ; c = substr(c, 2, length(c) - 2) }
          i = j
        }
      }
      if (p != "tcp" && p != "udp" && p != "sctp") next
      if (port !~ /^[0-9]+$/ || port + 0 > 65535) next
      if (t !~ /^KUBE-(SVC|SVL|EXT|XLB|FW)-/) next
      n = split(d, a, "/")
      if (n < 1 || n > 2 || a[1] == "") next
      if (fam == 4) { if (a[1] !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ || (n == 2 && a[2] != "32")) next }
      else { if (a[1] !~ /:/ || a[1] ~ /\./ || (n == 2 && a[2] != "128")) next }
      if (c ~ / cluster IP$/) cluster = 1
      else if (c ~ / external IP$/ || c ~ / loadbalancer IP$/) cluster = 0
      else cluster = (t ~ /^KUBE-SV[CL]-/)
      if (want == "all" || !cluster) print a[1]
    }
    """#

  /// The awk program that prints the Service addresses of kube-proxy's nft `service-ips` map (from
  /// `nft list map ip[6] kube-proxy service-ips` or the whole table), the way
  /// ``NFTText/kubeProxyServices(_:family:)`` reads them; `want=external` keeps only those whose
  /// verdict goes to an `external-` or `firewall-` chain. Variables: `want`, `fam`.
  public static let nftAwk = #"""
    /map service-ips \{/ { inmap = 1 }
    inmap && !inel && /elements = \{/ { inel = 1; sub(/.*elements = \{/, "") }
    inel { buf = buf " " $0; if ($0 ~ /\}/) { inel = 0; inmap = 0 } }
    END {
      sub(/\}.*/, "", buf)
      n = split(buf, el, ",")
      for (k = 1; k <= n; k++) {
        e = el[k]
        gsub(/ comment "[^"]*"/, "", e)
        gsub(/^[ \t]+|[ \t]+$/, "", e)
        x = index(e, " : ")
        if (x == 0) continue
        key = substr(e, 1, x - 1); verdict = substr(e, x + 3)
        if (index(verdict, " : ") > 0) continue
        m = split(key, kw, " "); w = 0
        for (j = 1; j <= m; j++) if (kw[j] != ".") { w++; words[w] = kw[j] }
        if (w != 3) continue
        addr = words[1]; p = words[2]; port = words[3]
        if (p != "tcp" && p != "udp" && p != "sctp") continue
        if (port !~ /^[0-9]+$/ || port + 0 > 65535) continue
        if (fam == 4) { if (addr !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/) continue }
        else if (addr !~ /:/ || addr ~ /\./) continue
        v = split(verdict, vw, " ")
        cluster = !(vw[v] ~ /^external-/ || vw[v] ~ /^firewall-/)
        if (want == "all" || !cluster) print addr
      }
    }
    """#

  /// The awk program that prints the first word of each element of the first `elements = { … }` in its input.
  static let elementsAwk = #"""
    !inel && /elements = \{/ { inel = 1; sub(/.*elements = \{/, "") }
    inel { buf = buf " " $0; if ($0 ~ /\}/) inel = 0 }
    END {
      sub(/\}.*/, "", buf); n = split(buf, el, ",")
      for (k = 1; k <= n; k++) { e = el[k]; gsub(/^[ \t]+|[ \t]+$/, "", e); split(e, f, " "); if (f[1] != "") print f[1] }
    }
    """#

  /// `refresh.sh` for a node: its backend, families and whether ClusterIPs are added (no Service
  /// CIDR); `reads` is how an iptables round reads the chains (see ``RefreshChainReads``).
  public static func render(
    settings: RolloutSettings, backend: Dataplane.Backend, families: [IPFamily], includeClusterIPs: Bool,
    reads: RefreshChainReads = .oneChain
  ) throws(ShellQuoteError) -> String {
    let dir = try q(settings.stateDirectory)
    var lines = try [
      "#!/bin/sh",
      "# Managed by svctrace (svctrace install; removed by svctrace remove). Keeps the refresh-owned part of",
      "# svctrace's rules (\(backend == .nftables ? "sets extra4/extra6 of table inet svctrace" : "chains \(preChain)/\(postChain)"))"
        + " current with the Service addresses kube-proxy forwards now",
      "# (\(includeClusterIPs ? "every Service address: no Service CIDR is known" : "load-balancer and external IPs: the Service CIDR covers ClusterIPs")),"
        + " every \(settings.refreshInterval ?? 0) s. Status: \(settings.refreshStatusPath).",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH",
      "D=\(dir); S=\(q(settings.refreshStatusPath))",
      "want=\(includeClusterIPs ? "all" : "external")",
      "[ -f \(q(settings.statePath)) ] || exit 0",
      "# An install or remove runs (or was interrupted and awaits its rollback): leave the rules to it.",
      "[ -e \(q(ApplyScript.journalPath(settings))) ] && exit 0",
      "[ -e \(q(ApplyScript.removeJournalPath(settings))) ] && exit 0",
      "# A round already running (the loop's, the timer's): skip; with --wait (install's own round), wait for it.",
      "if command -v flock >/dev/null 2>&1; then",
      "  exec 9>>\(q(settings.lockPath)) || exit 0",
      "  if [ \"${1:-}\" = --wait ]; then flock -w 30 9 || exit 0; else flock -n 9 || exit 0; fi",
      "fi",
      "svct_ipt_awk=\(q(iptablesAwk))",
      "svct_nft_awk=\(q(nftAwk))",
      "svct_el_awk=\(q(elementsAwk))",
      "now=$(date +%s); err=''; total=0",
      "last_ok=$(sed -n 's/^last-ok //p' \"$S\" 2>/dev/null)",
    ]
    switch backend {
    case .iptablesNFT, .iptablesLegacy:
      let suffix = backend == .iptablesNFT ? "nft" : "legacy"
      lines += [
        "svct_fam() {",
        "  if [ \"$1\" = 4 ]; then b=iptables-\(suffix); len=32; else b=ip6tables-\(suffix); len=128; fi",
        "  command -v \"$b-save\" >/dev/null 2>&1 || return 0",
      ]
      if reads == .oneChain {
        // One chain each instead of whole tables: on a node with 5000 Services iptables-nft lists
        // `KUBE-SERVICES` from a partial cache in 0.06 s of CPU where `-save -t nat` takes 3.1 s
        // (`svctrace-bench refresh`); legacy saves faster but the shell and awk still walk every rule.
        lines += [
          "  if mangle=$(\"$b\" -t mangle -S \(preChain) 2>/dev/null); then :; else",
          "    mangle=$(\"$b-save\" -t mangle 2>&1) || { err=\"$b-save -t mangle: $(printf '%s' \"$mangle\" | tail -n 1)\"; return 1; }",
          "    printf '%s\\n' \"$mangle\" | grep -q '^:\(preChain) ' || return 0",
          "  fi",
          "  if nat=$(\"$b\" -t nat -S KUBE-SERVICES 2>/dev/null); then nat=$(printf '*nat\\n%s' \"$nat\"); else",
          "    nat=$(\"$b-save\" -t nat 2>&1) || { err=\"$b-save -t nat: $(printf '%s' \"$nat\" | tail -n 1)\"; return 1; }",
          "  fi",
        ]
      } else {
        lines += [
          "  mangle=$(\"$b-save\" -t mangle 2>&1) || { err=\"$b-save -t mangle: $(printf '%s' \"$mangle\" | tail -n 1)\"; return 1; }",
          "  printf '%s\\n' \"$mangle\" | grep -q '^:\(preChain) ' || return 0",
          "  nat=$(\"$b-save\" -t nat 2>&1) || { err=\"$b-save -t nat: $(printf '%s' \"$nat\" | tail -n 1)\"; return 1; }",
        ]
      }
      lines += [
        "  new=$(printf '%s\\n' \"$nat\" | awk -v want=\"$want\" -v fam=\"$1\" \"$svct_ipt_awk\" | sort -u)",
        "  cur=$(printf '%s\\n' \"$mangle\" | sed -n 's/^-A \(preChain) -d \\([^/ ]*\\)\\/[0-9]* -p tcp .*/\\1/p' | sort -u)",
        "  total=$((total + $(printf '%s\\n' \"$new\" | grep -c .)))",
        "  [ \"$new\" = \"$cur\" ] && return 0",
        "  # Wait (5 s at most) for the xtables lock kube-proxy takes, where this iptables knows -w.",
        "  w=''; \"$b-restore\" --help 2>&1 | grep -q -- '--wait' && w='-w 5'",
        "  out=$( { echo '*mangle'; echo ':\(preChain) - [0:0]'; echo ':\(postChain) - [0:0]'",
        "    for a in $new; do for p in tcp udp sctp; do",
        "      echo \"-A \(preChain) -d $a/$len -p $p -m comment --comment \(svctraceComment) -g SVCT-LOG-PRE\"",
        "      echo \"-A \(postChain) -p $p -m conntrack --ctorigdst $a -m comment --comment \(svctraceComment) -g SVCT-LOG-POST\"",
        "    done; done",
        "    echo COMMIT; } | \"$b-restore\" $w --noflush 2>&1) || { err=\"$b-restore: $(printf '%s' \"$out\" | tail -n 1)\"; return 1; }",
        "}",
      ]
      for family in families {
        lines.append("svct_fam \(family == .ipv4 ? 4 : 6)")
      }
    case .nftables:
      lines += [
        "command -v nft >/dev/null 2>&1 || { err='nft not found'; }",
        "tx=''",
        "svct_fam() {",
        "  if [ \"$1\" = 4 ]; then t=ip; else t=ip6; fi",
        "  cur=$(nft list set inet svctrace extra$1 2>/dev/null) || return 0",
        "  cur=$(printf '%s\\n' \"$cur\" | awk \"$svct_el_awk\" | sort -u)",
        "  new=$(nft list map $t kube-proxy service-ips 2>/dev/null | awk -v want=\"$want\" -v fam=\"$1\" \"$svct_nft_awk\" | sort -u)",
        "  total=$((total + $(printf '%s\\n' \"$new\" | grep -c .)))",
        "  [ \"$new\" = \"$cur\" ] && return 0",
        "  tx=\"${tx}flush set inet svctrace extra$1",
        "\"",
        "  [ -n \"$new\" ] && tx=\"${tx}add element inet svctrace extra$1 { $(printf '%s\\n' \"$new\" | awk 'NR > 1 { printf \", \" } { printf \"%s\", $0 }') }",
        "\"",
        "  return 0",
        "}",
      ]
      for family in families {
        lines.append("[ -z \"$err\" ] && svct_fam \(family == .ipv4 ? 4 : 6)")
      }
      lines.append(
        "if [ -z \"$err\" ] && [ -n \"$tx\" ]; then out=$(printf '%s' \"$tx\" | nft -f - 2>&1) || err=\"nft -f: $(printf '%s' \"$out\" | tail -n 1)\"; fi"
      )
    }
    lines += [
      "[ -z \"$err\" ] && last_ok=$now",
      "{ echo \"last-run $now\"; echo \"last-ok ${last_ok:-never}\"; echo \"addresses $total\"; "
        + "echo \"error $(printf '%s' \"$err\" | tr -c '[:print:]' ' ' | cut -c1-300)\"; } > \"$S.tmp\" && mv -f \"$S.tmp\" \"$S\"",
      "[ -z \"$err\" ]",
    ]
    return lines.joined(separator: "\n") + "\n"
  }

  /// Stops the refresh (timer or loop) and forgets its pid; harmless when none runs.
  public static func stop(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    try [
      "pid=$(cat \(q(settings.refreshPidPath)) 2>/dev/null)",
      "if [ -n \"$pid\" ] && grep -q \(unit) /proc/\"$pid\"/cmdline 2>/dev/null; then kill -TERM -- -\"$pid\" 2>/dev/null || kill \"$pid\" 2>/dev/null; fi",
      "if [ -S /run/systemd/private ] && command -v systemctl >/dev/null 2>&1; then systemctl stop \(unit).timer \(unit).service >/dev/null 2>&1; systemctl reset-failed \(unit).timer \(unit).service >/dev/null 2>&1; fi",
      "rm -f \(q(settings.refreshPidPath))",
    ].joined(separator: "\n")
  }

  /// Stops any refresh, then starts it with `method` (not ``RefreshMethod/automatic``) every
  /// `interval` seconds. The loop closes file descriptor 9 (the apply script's lock).
  public static func start(settings: RolloutSettings, method: RefreshMethod, interval: Int) throws(ShellQuoteError)
    -> String
  {
    let script = try q(settings.refreshScriptPath)
    var lines = [try stop(settings: settings)]
    switch method {
    case .systemd, .automatic:
      lines.append(
        "systemd-run --quiet --unit \(unit) --on-active=1s --on-unit-active=\(interval)s --timer-property=AccuracySec=1s "
          + "/bin/sh \(script) || exit 1")
    case .loop:
      lines.append("command -v setsid >/dev/null 2>&1 && s=setsid || s=")
      lines.append(
        "$s nohup sh -c 'while [ -f \"$2\" ]; do /bin/sh \"$2\" </dev/null >/dev/null 2>&1; sleep \"$1\"; done' \(unit) \(interval) \(script) "
          + "</dev/null >/dev/null 2>&1 9>&- &")
      try lines.append("echo $! > \(q(settings.refreshPidPath)) || exit 1")
    }
    return lines.joined(separator: "\n")
  }

  /// The probe section `refresh`: the status file, then `running loop` / `running systemd` when it runs.
  static func probeBody(settings: RolloutSettings) throws(ShellQuoteError) -> String {
    try [
      "cat \(q(settings.refreshStatusPath)) 2>/dev/null",
      "pid=$(cat \(q(settings.refreshPidPath)) 2>/dev/null)",
      "[ -n \"$pid\" ] && grep -q \(unit) /proc/\"$pid\"/cmdline 2>/dev/null && echo 'running loop'",
      "[ -S /run/systemd/private ] && systemctl is-active --quiet \(unit).timer 2>/dev/null && echo 'running systemd'",
      "true",
    ].joined(separator: "\n")
  }
}

/// What the probe's `refresh` section says about the node-side refresh.
public struct RefreshStatus: Sendable, Hashable {
  /// `loop` or `systemd` when it runs.
  public var running: String?
  /// The last round (seconds since the epoch), and the last one without an error.
  public var lastRun: Int64?
  public var lastOK: Int64?
  /// Addresses the last round found.
  public var addresses: Int?
  /// The last round's error, empty when it had none.
  public var error: String = ""

  public init() {}

  public init(parsing text: String) {
    for line in text.split(separator: "\n") {
      let words = line.split(separator: " ", maxSplits: 1).map(String.init)
      let value = words.count > 1 ? words[1] : ""
      switch words.first {
      case "running": running = value
      case "last-run": lastRun = Int64(value)
      case "last-ok": lastOK = Int64(value)
      case "addresses": addresses = Int(value)
      case "error": error = value.trimmingCharacters(in: .whitespaces)
      default: break
      }
    }
  }
}
