public import SVCTraceCore

/// The packet counters of svctrace's LOG rules on one node, read in the collect exchange right
/// after the log's bytes (see ``LogFileSource``), with what it takes to order the file's lines
/// against the read and to notice a reset.
///
/// Every rule that logs with svctrace's prefix is counted: on iptables backends (nft and
/// legacy, both families) each `-j LOG --log-prefix "SVCT:…"` rule (the one-rule chains
/// `SVCT-LOG-PRE`/`SVCT-LOG-POST` in the mangle table), from `iptables-save -c`; in nftables
/// mode each rule of `table inet svctrace` that carries `counter` and `log prefix "SVCT:…"`,
/// from `nft -a list table`. A rule's counter counts the packets that reached its log action
/// (after a `--max-rate` limit): one kernel log message each.
public struct RuleCounterSample: Sendable, Equatable, Codable {
  /// `/proc/sys/kernel/random/boot_id`: another value means the node rebooted (counters and
  /// kernel timestamps restarted).
  public var bootID: String
  /// What identifies the rules besides their keys (`gen` line; empty today: svctrace's own
  /// state file is rewritten by more than rule changes, so it would break epochs needlessly).
  /// Another value starts a new epoch.
  public var generation: String
  /// Packets per rule, keyed by where the rule is: `iptables-nft:SVCT-LOG-PRE:1` (backend,
  /// chain, position among the chain's log rules), `nft:<table handle>:<rule handle>`.
  public var counters: [String: UInt64]
  /// Rules that log with svctrace's prefix but carry no counter (nftables rules written by
  /// something else): their packets cannot be counted, so the sample says nothing about loss.
  public var uncounted: Int
  /// The node's time since boot when the counters had been read (`/proc/uptime`, 10 ms steps,
  /// rounded up to the next step): the clock of the kernel's `[12345.678901]` line stamps,
  /// µs. A line stamped at or before it belongs to a packet the counters may include; a line
  /// stamped after it, to one they do not.
  public var uptimeMicros: Int64
  /// The node's wall clock (`date +%s%N`) at the read, µs since the epoch (node clock).
  public var wallMicros: Int64
  /// Whether rsyslogd was running at the read (`nil`: unknown).
  public var rsyslogRunning: Bool?

  public init(
    bootID: String, generation: String, counters: [String: UInt64], uncounted: Int = 0, uptimeMicros: Int64,
    wallMicros: Int64, rsyslogRunning: Bool? = nil
  ) {
    self.bootID = bootID
    self.generation = generation
    self.counters = counters
    self.uncounted = uncounted
    self.uptimeMicros = uptimeMicros
    self.wallMicros = wallMicros
    self.rsyslogRunning = rsyslogRunning
  }

  /// The sum of every counted rule.
  public var packets: UInt64 { counters.values.reduce(0, &+) }

  /// The name of the reply section.
  public static let sectionName = "counters"

  /// The shell fragment of the `counters` section (read-only; about 5 ms on a node). Prints
  /// `boot ID`, `C KEY PACKETS` per counted rule, `U KEY` per uncounted one, `rsyslog yes|no`,
  /// then `up SECONDS` (after the counters) and `now NANOS`. (A `gen STAMP` line, when a later
  /// svctrace prints one, is ``generation``.)
  ///
  /// Legacy tables are read only when loaded (`/proc/net/ip*_tables_names`, so that reading
  /// creates nothing); `iptables-nft-save -t mangle` and `nft list table` read what exists.
  public static let script = """
    have() { command -v "$1" >/dev/null 2>&1; }
    read b < /proc/sys/kernel/random/boot_id; echo "boot ${b:--}"
    svct_c() { awk -v t="$1" '/-j LOG/ && /--log-prefix "?SVCT:/ && /^\\[[0-9]+:[0-9]+\\] -A / {
        c = $1; gsub(/[^0-9:]/, "", c); split(c, v, ":"); n[$3]++; print "C " t ":" $3 ":" n[$3] " " v[1] }'; }
    for t in iptables ip6tables; do
      have $t-nft-save && $t-nft-save -c -t mangle 2>/dev/null | svct_c $t-nft
      case $t in iptables) f=/proc/net/ip_tables_names ;; *) f=/proc/net/ip6_tables_names ;; esac
      have $t-legacy-save && grep -qx mangle $f 2>/dev/null && $t-legacy-save -c -t mangle 2>/dev/null | svct_c $t-legacy
    done
    have nft && nft -a list table inet svctrace 2>/dev/null | awk '
      /^table / { th = $NF }
      /log prefix "SVCT:/ { p = ""; h = ""
        for (i = 1; i < NF; i++) { if ($i == "packets") p = $(i + 1); if ($i == "handle") h = $(i + 1) }
        if (p == "") print "U nft:" th ":" h; else print "C nft:" th ":" h " " p }'
    if pidof rsyslogd >/dev/null 2>&1 || pgrep -x rsyslogd >/dev/null 2>&1; then echo "rsyslog yes"; else echo "rsyslog no"; fi
    read u _ < /proc/uptime; echo "up $u"
    echo "now $(date +%s%N)"
    """

  /// Parses the `counters` section; `nil` when it lacks the boot id, the uptime or the time
  /// (a node without `/proc`, a `date` without `%N`): no sample, no loss accounting.
  public static func parse(_ text: String) -> RuleCounterSample? {
    var boot: String?
    var generation = ""
    var counters: [String: UInt64] = [:]
    var uncounted = 0
    var uptime: Int64?
    var wall: Int64?
    var rsyslog: Bool?
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: " ")
      guard fields.count >= 2 else { continue }
      switch fields[0] {
      case "boot": boot = fields[1] == "-" ? nil : String(fields[1])
      case "gen": generation = fields[1] == "-" ? "" : String(fields[1])
      case "C":
        guard fields.count == 3, let packets = UInt64(fields[2]) else { continue }
        counters[String(fields[1]), default: 0] += packets
      case "U": uncounted += 1
      case "rsyslog": rsyslog = fields[1] == "yes"
      case "up": uptime = uptimeMicros(fields[1])
      case "now": wall = Int64(fields[1]).map { $0 / 1000 }
      default: continue
      }
    }
    guard let boot, let uptime, let wall else { return nil }
    return RuleCounterSample(
      bootID: boot, generation: generation, counters: counters, uncounted: uncounted, uptimeMicros: uptime,
      wallMicros: wall, rsyslogRunning: rsyslog)
  }

  /// `12345.67` (seconds, centiseconds) → µs, plus one step (10 ms): `/proc/uptime` truncates,
  /// and a packet counted before the read must not carry a later stamp than the sample.
  static func uptimeMicros(_ text: Substring) -> Int64? {
    let parts = text.split(separator: ".", maxSplits: 1)
    guard let seconds = Int64(parts[0]) else { return nil }
    var micros = seconds * 1_000_000
    if parts.count == 2 {
      let digits = parts[1].prefix(6)
      guard let fraction = Int64(digits) else { return nil }
      var scale: Int64 = 1
      for _ in digits.count..<6 { scale *= 10 }
      micros += fraction * scale
    }
    return micros + 10_000
  }
}
