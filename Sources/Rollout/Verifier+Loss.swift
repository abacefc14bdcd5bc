public import SVCTraceCore

/// What the store knows of a node's lost lines since `verify` last checked it (filled by the
/// `verify` command from the collect's loss accounting; the store is not this layer's).
public struct LostLines: Sendable, Equatable {
  /// One settled collect interval that lost lines.
  public struct Window: Sendable, Equatable {
    /// This workstation's clock, µs since the epoch.
    public var fromMicros: Int64
    public var untilMicros: Int64
    public var packets: Int64
    public var lost: Int64
    /// `false` when rsyslogd was seen stopped at either end of it.
    public var rsyslogRunning: Bool

    public init(fromMicros: Int64, untilMicros: Int64, packets: Int64, lost: Int64, rsyslogRunning: Bool) {
      self.fromMicros = fromMicros
      self.untilMicros = untilMicros
      self.packets = packets
      self.lost = lost
      self.rsyslogRunning = rsyslogRunning
    }
  }

  public var windows: [Window]
  /// Whether a collect ever read the node's LOG rule counters (no accounting otherwise).
  public var accounted: Bool
  /// When `verify` last checked the node (`nil`: never).
  public var previousCheckMicros: Int64?

  public init(windows: [Window], accounted: Bool, previousCheckMicros: Int64?) {
    self.windows = windows
    self.accounted = accounted
    self.previousCheckMicros = previousCheckMicros
  }

  public var lost: Int64 { windows.reduce(0) { $0 + $1.lost } }
}

extension Verifier {
  /// The section with the node's evidence of lost log messages (`--store` given).
  static let lossEvidenceSection = "loss-evidence"

  /// Lines that name a loss: the kernel's own notes (`dmesg`), rsyslog's rate-limiting notes in
  /// the node's syslog (imjournal, imuxsock), and a kernel-log relay's overruns (the testbed's
  /// `/run/svtlab/kmsg-relay.log`). Each line is prefixed with `kernel: ` or `rsyslog: `.
  static let lossEvidenceScript = """
    dmesg 2>/dev/null | grep -iE 'printk.*(dropped|suppressed)|messages dropped|log buffer' | tail -n 3 | sed 's/^/kernel: /'
    for f in /var/log/syslog /var/log/messages; do
      [ -r "$f" ] || continue
      tail -c 4000000 "$f" | grep -iE 'rate-?limit' | grep -v 'SVCT:' | tail -n 3 | sed 's/^/rsyslog: /'
    done
    [ -r /run/svtlab/kmsg-relay.log ] && grep -i 'overrun' /run/svtlab/kmsg-relay.log | tail -n 2 | sed 's/^/kernel: /'
    exit 0
    """

  /// `loss/lines`: fails when the node lost lines since the last check, with the likely cause.
  ///
  /// The cause, in order: the log's filesystem full (the `disk` section); rsyslog not running
  /// (at the time, or now); rsyslog's rate limiting (its notes in the node's syslog); the
  /// kernel's ring buffer overrun (the kernel's or a relay's notes; otherwise, with rsyslog
  /// running and room on the disk, the likeliest: a burst faster than rsyslog reads the kernel
  /// log).
  static func lossCheck(
    _ loss: LostLines, evidence: NodeReply.Section?, disk: NodeReply.Section?, rsyslogActive: Bool
  ) -> CheckResult {
    let since = loss.previousCheckMicros.map { "since the last check (\(TimeFormat.rfc3339(micros: $0)))" } ?? "so far"
    guard loss.accounted else {
      return CheckResult(
        group: "loss", name: "lines", status: .warn,
        evidence: "no loss accounting for this node yet (no collect has read its LOG rules' counters)",
        fix: "Run `svctrace collect` with this store.")
    }
    guard loss.lost > 0 else {
      return CheckResult(
        group: "loss", name: "lines", status: .pass,
        evidence: "no lines lost \(since): every packet the LOG rules counted reached the log file")
    }
    let windows = loss.windows.prefix(5).map {
      "\($0.lost) of \($0.packets) between \(TimeFormat.rfc3339(micros: $0.fromMicros)) and \(TimeFormat.rfc3339(micros: $0.untilMicros))"
    }
    var detail = windows.joined(separator: "\n")
    if loss.windows.count > 5 { detail += "\n… (\(loss.windows.count) intervals)" }
    let notes = (evidence?.text ?? "").split(separator: "\n").map(String.init)
    let rateNotes = notes.filter { $0.hasPrefix("rsyslog: ") }
    let kernelNotes = notes.filter { $0.hasPrefix("kernel: ") }
    // The cause on the first line (the table shows an evidence's first line), its evidence after.
    let cause: String
    var shown: [String] = []
    let fix: String
    if let full = diskFull(disk) {
      cause = "disk full (\(full))"
      fix = "Free space on the log's filesystem; lower the logrotate size cap or narrow the capture (--services)."
    } else if !rsyslogActive || loss.windows.contains(where: { !$0.rsyslogRunning }) {
      cause = "rsyslog was not running (the kernel keeps few lines for it)"
      fix = "Start rsyslog and keep it running (`systemctl enable --now rsyslog`)."
    } else if !rateNotes.isEmpty {
      cause = "rsyslog rate limiting"
      shown = rateNotes
      fix =
        "Run `svctrace install` (its drop-in reads kernel lines through imklog, without a rate limit), or lift the input's rate limit."
    } else {
      cause =
        "kernel ring buffer overrun (the LOG rules counted more packets than reached the file while rsyslog was running"
        + (kernelNotes.isEmpty ? "; a burst faster than rsyslog reads the kernel log)" : ")")
      shown = kernelNotes
      fix =
        "Raise the kernel's log buffer (log_buf_len=4M on the kernel command line) or cap the rate (`svctrace install --max-rate`)."
    }
    let text = "\(loss.lost) lines lost \(since); likely cause: \(cause)\n" + ([detail] + shown).joined(separator: "\n")
    return CheckResult(group: "loss", name: "lines", status: .fail, evidence: text, fix: fix)
  }

  /// The disk section's use when the filesystem is full (≥ 99 % or under 1 MiB free), else `nil`.
  static func diskFull(_ section: NodeReply.Section?) -> String? {
    guard let section, section.status == 0, let first = section.text.split(separator: "\n").first else { return nil }
    let fields = first.split(separator: " ")
    guard let free = fields.first.flatMap({ Double($0) }) else { return nil }
    let percent = fields.count > 1 ? Int(fields[1].dropLast()) ?? 0 : 0
    guard percent >= 99 || free < 1_048_576 else { return nil }
    return "\(Int(free / 1024)) KiB free on the log's filesystem (\(fields.count > 1 ? String(fields[1]) : "?") used)"
  }
}
