import Foundation

/// The rsyslog input modules a node's configuration loads, read from `rsyslog.conf` and
/// `rsyslog.d/*.conf` (svctrace's own drop-in excluded), and what they mean for svctrace's lines.
///
/// Grammar read (comments — `#` outside quotes to the end of the line — are dropped first, so a
/// commented-out `#module(load="imklog")` does not count):
/// - RainerScript `module(load="NAME" param="value" …)`, over any number of lines, names and
///   parameter names case-insensitive;
/// - legacy `$ModLoad NAME` (also `NAME.so`, a path, or `builtin:NAME`);
/// - imjournal's limits: `ratelimit.interval` / `ratelimit.burst` in its `module(…)`, or the legacy
///   `$imjournalRatelimitInterval N` / `$imjournalRatelimitBurst N`.
/// A file is introduced by a line `==> PATH` (the probe's `rsyslog-conf` section).
public struct RsyslogInputs: Sendable, Hashable {
  /// The input modules svctrace cares about.
  public static let watched = ["imjournal", "imklog", "imkmsg", "imuxsock"]
  /// imjournal's defaults (rsyslog's imjournal documentation): 20,000 messages per 600 s.
  public static let imjournalDefaultInterval = 600
  public static let imjournalDefaultBurst = 20_000

  /// Loaded modules among ``watched``, sorted.
  public var loaded: [String] = []
  /// `PATH:LINE: text` of each load, for evidence.
  public var evidence: [String] = []
  /// imjournal's `ratelimit.interval` when set (seconds; 0 = no limit).
  public var imjournalInterval: Int?
  /// imjournal's `ratelimit.burst` when set.
  public var imjournalBurst: Int?

  public init() {}

  /// `true` when `module` is loaded.
  public func loads(_ module: String) -> Bool { loaded.contains(module) }

  /// The kernel input the configuration itself provides besides imjournal (`imklog` first).
  public var kernelModule: String? { ["imklog", "imkmsg"].first(where: loads) }

  /// `true` when kernel messages reach rsyslog through imjournal with a rate limit.
  public var imjournalLimited: Bool { loads("imjournal") && (imjournalInterval ?? Self.imjournalDefaultInterval) != 0 }

  /// imjournal's effective limit in words: `20000 messages per 600 s (imjournal's default)`.
  public var imjournalLimitText: String {
    let interval = imjournalInterval ?? Self.imjournalDefaultInterval
    let burst = imjournalBurst ?? Self.imjournalDefaultBurst
    if interval == 0 { return "no rate limit (ratelimit.interval 0)" }
    let isDefault = imjournalInterval == nil && imjournalBurst == nil
    return "\(burst) messages per \(interval) s" + (isDefault ? " (imjournal's default)" : "")
  }

  /// How svctrace's drop-in must select its lines on this node (see ``KernelLineSource``).
  public var lineSource: KernelLineSource {
    guard loads("imjournal") else { return .anyInput }
    if let module = kernelModule { return .input(module) }
    return .ownImklog
  }

  /// Reads the configuration text of the probe's `rsyslog-conf` section.
  public init(parsing text: String) {
    var loaded = Set<String>()
    var evidence: [String] = []
    var file = "rsyslog.conf"
    var statement = ""
    var depth = 0
    func module(named raw: String) -> String? {
      var name = raw.lowercased()
      if let slash = name.lastIndex(of: "/") { name = String(name[name.index(after: slash)...]) }
      if name.hasPrefix("builtin:") { name = String(name.dropFirst(8)) }
      if name.hasSuffix(".so") { name = String(name.dropLast(3)) }
      return Self.watched.contains(name) ? name : nil
    }
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if rawLine.hasPrefix("==> ") {
        file = String(rawLine.dropFirst(4))
        statement = ""
        depth = 0
        continue
      }
      let line = Self.stripComment(String(rawLine))
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if depth == 0 {
        let lower = trimmed.lowercased()
        if lower.hasPrefix("$modload") {
          let words = trimmed.split(whereSeparator: \.isWhitespace)
          if words.count >= 2, let name = module(named: String(words[1])) {
            loaded.insert(name)
            evidence.append("\(file): \(trimmed)")
          }
          continue
        }
        if lower.hasPrefix("$imjournalratelimitinterval") || lower.hasPrefix("$imjournalratelimitburst") {
          let words = trimmed.split(whereSeparator: \.isWhitespace)
          if words.count >= 2, let value = Int(words[1]) {
            if lower.hasPrefix("$imjournalratelimitinterval") {
              imjournalInterval = value
            } else {
              imjournalBurst = value
            }
            evidence.append("\(file): \(trimmed)")
          }
          continue
        }
        guard let start = trimmed.firstMatch(of: #/(?i)\bmodule\s*\(/#) else { continue }
        statement = String(trimmed[start.range.lowerBound...])
      } else {
        statement += " " + trimmed
      }
      depth = statement.reduce(0) { $0 + ($1 == "(" ? 1 : $1 == ")" ? -1 : 0) }
      guard depth <= 0 else { continue }
      depth = 0
      let parameters = Self.parameters(statement)
      if let load = parameters["load"], let name = module(named: load) {
        loaded.insert(name)
        evidence.append("\(file): " + statement.split(whereSeparator: \.isWhitespace).joined(separator: " "))
        if name == "imjournal" {
          if let value = parameters["ratelimit.interval"].flatMap({ Int($0) }) { imjournalInterval = value }
          if let value = parameters["ratelimit.burst"].flatMap({ Int($0) }) { imjournalBurst = value }
        }
      }
      statement = ""
    }
    self.loaded = loaded.sorted()
    self.evidence = evidence
  }

  /// The line without its `#` comment (a `#` inside double quotes is kept).
  static func stripComment(_ line: String) -> String {
    var inQuotes = false
    var result = ""
    for character in line {
      if character == "\"" { inQuotes.toggle() }
      if character == "#" && !inQuotes { break }
      result.append(character)
    }
    return result
  }

  /// `name="value"` pairs of one `module(…)` statement, names lowercased.
  static func parameters(_ statement: String) -> [String: String] {
    var result: [String: String] = [:]
    let pattern = #/([A-Za-z0-9_.]+)\s*=\s*"([^"]*)"/#
    for match in statement.matches(of: pattern) {
      result[String(match.output.1).lowercased()] = String(match.output.2)
    }
    return result
  }
}

/// How svctrace's rsyslog drop-in picks its lines, by the inputs the node's rsyslog has.
///
/// The design (README, "RHEL-family nodes"): svctrace's lines must reach its file exactly once and
/// never pass a rate limit.
/// - Debian-style nodes read the kernel through `imklog` (or `imkmsg`) and have no `imjournal`:
///   every kernel line arrives once, unlimited (imklog's rate limit is off by default). The filter
///   takes any input (``anyInput``); the drop-in is what it always was.
/// - RHEL/CentOS/Rocky 8+ read the kernel from journald through `imjournal`, whose default limit
///   (20,000 messages per 10 minutes) drops lines of a busy node silently, and comment `imklog`
///   out. The drop-in then loads `imklog` itself, whose rate limit is off by default (``ownImklog``), writes
///   svctrace's lines only when they come from imklog, drops the copy of each line that journald
///   hands to imjournal, and drops imklog's other kernel messages (they still reach
///   `/var/log/messages` through imjournal, as before). imklog reads `/proc/kmsg`, which nothing
///   else reads on such nodes (journald reads `/dev/kmsg`); `imkmsg` would replay the whole ring
///   buffer at every rsyslog restart (8.2302), hence imklog.
/// - A node whose configuration loads imklog or imkmsg *and* imjournal gets every kernel line
///   twice: the filter takes only that module's copy (``input(_:)``); nothing is loaded (rsyslog
///   refuses a module loaded twice).
public enum KernelLineSource: Sendable, Hashable {
  /// No imjournal: any input's kernel `SVCT:` lines are svctrace's (the historical drop-in).
  case anyInput
  /// imjournal and this kernel module (`imklog`, `imkmsg`) are loaded by the configuration.
  case input(String)
  /// imjournal is the only kernel input: svctrace's drop-in loads imklog.
  case ownImklog

  /// The `$inputname` svctrace's lines must come from, `nil` for any.
  public var inputName: String? {
    switch self {
    case .anyInput: nil
    case .input(let name): name
    case .ownImklog: "imklog"
    }
  }
}

/// What the probe learned about the node's platform: OS family, SELinux, firewalld.
public struct NodePlatform: Sendable, Hashable {
  /// SELinux mode, as `getenforce` prints it.
  public enum SELinux: String, Sendable, Hashable {
    case enforcing, permissive, disabled
    /// No `getenforce` (no SELinux userland).
    case absent
  }

  /// `/etc/os-release` `ID` (`rocky`, `debian`), empty when unknown.
  public var osID: String = ""
  /// `/etc/os-release` `ID_LIKE` words (`rhel centos fedora`).
  public var osLike: [String] = []
  public var selinux: SELinux = .absent
  /// `true` when firewalld is active or its `table inet firewalld` exists.
  public var firewalld = false
  /// `true` when `restorecon` is installed.
  public var hasRestorecon = false

  public init() {}

  /// `true` for RHEL, CentOS, Rocky, Alma, Fedora, Oracle Linux and their likes.
  public var isRHELFamily: Bool {
    let family: Set<String> = ["rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn"]
    return family.contains(osID) || osLike.contains(where: family.contains)
  }

  /// Reads the probe's `platform` section: `id=…`, `like=…`, `selinux=…`, `firewalld`, `restorecon`.
  public init(parsing text: String) {
    for line in text.split(separator: "\n").map(String.init) {
      func value(_ key: String) -> String? {
        guard line.hasPrefix(key + "=") else { return nil }
        return String(line.dropFirst(key.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
      }
      if let id = value("id") { osID = id.lowercased() }
      if let like = value("like") { osLike = like.lowercased().split(separator: " ").map(String.init) }
      if let mode = value("selinux") { selinux = SELinux(rawValue: mode.lowercased()) ?? .absent }
      if line == "firewalld" { firewalld = true }
      if line == "restorecon" { hasRestorecon = true }
    }
  }
}
