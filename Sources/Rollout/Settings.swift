import Foundation
public import SVCTraceCore

/// A rejected setting: which key, the offending value and why.
public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
  public var key: String
  public var value: String
  public var reason: String

  public init(key: String, value: String, reason: String) {
    self.key = key
    self.value = value
    self.reason = reason
  }

  public var description: String {
    let shown = value.debugDescription
    return "Invalid \(key) \(shown): \(reason)"
  }
}

/// An inclusive port range such as the NodePort range `30000-32767`.
public struct PortRange: Sendable, Hashable, Codable, CustomStringConvertible {
  public var lower: UInt16
  public var upper: UInt16

  public init(lower: UInt16, upper: UInt16) {
    self.lower = lower
    self.upper = upper
  }

  /// Parses `30000-32767` (or `30000:32767`).
  /// - Throws: ``SettingsError`` for anything else.
  public init(parsing text: String) throws(SettingsError) {
    let parts = text.split(whereSeparator: { $0 == "-" || $0 == ":" }).map(String.init)
    guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
      let lower = UInt16(parts[0]), let upper = UInt16(parts[1]), lower > 0, lower <= upper
    else {
      throw SettingsError(key: "NodePort range", value: text, reason: "expected LOW-HIGH with 1 ≤ LOW ≤ HIGH ≤ 65535")
    }
    self.init(lower: lower, upper: upper)
  }

  /// The range as iptables prints it (`30000:32767`).
  public var iptablesText: String { "\(lower):\(upper)" }
  /// The range as nft prints it (`30000-32767`).
  public var nftText: String { "\(lower)-\(upper)" }
  public var description: String { "\(lower)-\(upper)" }

  /// The Kubernetes default NodePort range.
  public static let kubernetesDefault = PortRange(lower: 30000, upper: 32767)
}

/// A log rate guard, `N` lines per unit (`--max-rate 100/s`).
public struct RateLimit: Sendable, Hashable, Codable, CustomStringConvertible {
  /// The time unit of a rate.
  public enum Unit: String, Sendable, Hashable, Codable {
    case second, minute, hour, day
    /// iptables' abbreviation as `iptables-save` prints it.
    var iptables: String {
      switch self {
      case .second: "sec"
      case .minute: "min"
      case .hour: "hour"
      case .day: "day"
      }
    }
  }

  public var count: UInt32
  public var unit: Unit

  public init(count: UInt32, unit: Unit) {
    self.count = count
    self.unit = unit
  }

  /// Parses `100/s`, `100/sec`, `100/second`, `20/m`, `5/h`, `1/d`.
  /// - Throws: ``SettingsError`` for anything else.
  public init(parsing text: String) throws(SettingsError) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    let bad = SettingsError(key: "max rate", value: text, reason: "expected N/s, N/m, N/h or N/d with N ≥ 1")
    guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
      let count = UInt32(parts[0]), count > 0, count <= 10_000_000
    else { throw bad }
    let unit: Unit
    switch parts[1].lowercased() {
    case "s", "sec", "second": unit = .second
    case "m", "min", "minute": unit = .minute
    case "h", "hour": unit = .hour
    case "d", "day": unit = .day
    default: throw bad
    }
    self.init(count: count, unit: unit)
  }

  /// `--limit` value as `iptables-save` prints it.
  public var iptablesText: String { "\(count)/\(unit.iptables)" }
  /// `limit rate` value as nft prints it.
  public var nftText: String { "\(count)/\(unit.rawValue)" }
  public var description: String { "\(count)/\(unit.rawValue)" }
}

/// How the node-side expiry of a time-boxed capture is scheduled.
public enum ExpiryMethod: String, Sendable, Hashable, Codable {
  /// Pick the best the node offers: systemd-run, then at, then a detached sleeper.
  case automatic
  /// `systemd-run --on-active=… --unit svctrace-expiry`.
  case systemd
  /// `at now + N minutes`.
  case at
  /// `nohup sh -c 'sleep N; remove.sh' &` with a pid file.
  case sleeper
}

/// The node commands rollout runs around rsyslog and logrotate.
///
/// They are fixed strings chosen by svctrace (or by tests, which stub them with `true`/`false`);
/// they never come from an inventory and are therefore not quoted.
public struct NodeCommands: Sendable, Hashable {
  /// Validates the whole rsyslog configuration (`rsyslogd -N1`).
  public var rsyslogValidate: String
  /// Restarts rsyslog so that a changed drop-in takes effect.
  public var rsyslogRestart: String
  /// Exits 0 when rsyslog is running.
  public var rsyslogIsActive: String
  /// Dry-runs logrotate; the quoted logrotate file path is appended.
  public var logrotateDebug: String

  public init(rsyslogValidate: String, rsyslogRestart: String, rsyslogIsActive: String, logrotateDebug: String) {
    self.rsyslogValidate = rsyslogValidate
    self.rsyslogRestart = rsyslogRestart
    self.rsyslogIsActive = rsyslogIsActive
    self.logrotateDebug = logrotateDebug
  }

  /// What real nodes run.
  public static let standard = NodeCommands(
    rsyslogValidate: "rsyslogd -N1",
    rsyslogRestart: "systemctl restart rsyslog",
    rsyslogIsActive: "systemctl is-active --quiet rsyslog",
    logrotateDebug: "logrotate -d")
}

/// Everything `install`, `remove`, `plan` and the verify checks need to know, validated.
///
/// Build it with ``init(variables:overrides:)`` from inventory variables (`svctrace_log_path`,
/// `svctrace_service_cidr`, `svctrace_nodeport_range`, `svctrace_max_rate`, `svctrace_services`, …)
/// with command-line values layered on top.
public struct RolloutSettings: Sendable, Hashable {
  /// File rsyslog writes svctrace's lines to.
  public var logPath: String = "/var/log/iptables.log"
  /// Service networks given by the user; `nil` = learn them (``clusterServiceCIDRs``, else the node's
  /// own probe, else the Service addresses kube-proxy's rules hold).
  public var serviceCIDRs: [CIDR]?
  /// The cluster's Service CIDRs resolved from every node's probe (``ServiceCIDRResolver``), set by
  /// `install` between its probe and plan fan-outs; `nil` = resolve from the node's own probe.
  public var clusterServiceCIDRs: ServiceCIDRs?
  /// Seconds between two rounds of the node-side refresh (``RefreshScript``); `nil` = no refresh.
  public var refreshInterval: Int? = 15
  /// How the refresh is run.
  public var refreshMethod: RefreshMethod = .automatic
  /// NodePort range logged on local destinations.
  public var nodePortRange: PortRange = .kubernetesDefault
  /// When not empty, only these Service addresses are logged.
  public var services: [ServiceAddress] = []
  /// Optional explicit volume guard (`-m limit`).
  public var maxRate: RateLimit?
  /// The rsyslog drop-in svctrace owns.
  public var rsyslogDropInPath: String = "/etc/rsyslog.d/10-svctrace.conf"
  /// The logrotate file svctrace owns.
  public var logrotatePath: String = "/etc/logrotate.d/svctrace"
  /// Node-side state: `state.json`, `remove.sh`, expiry marker and pid file.
  public var stateDirectory: String = "/var/lib/svctrace"
  /// logrotate `maxsize` (`200M`).
  public var rotateSize: String = "200M"
  /// logrotate `rotate` count.
  public var rotateCount: Int = 7
  /// Time-boxed capture length; `nil` = no expiry.
  public var captureDuration: Duration?
  /// How the expiry is scheduled.
  public var expiryMethod: ExpiryMethod = .automatic
  /// rsyslog/logrotate commands (overridable in tests).
  public var commands: NodeCommands = .standard
  /// The main rsyslog config the old script edited (`remove --legacy`, verify leftovers).
  public var legacyRsyslogConf: String = "/etc/rsyslog.conf"
  /// The API server's static-pod manifest, read for `--service-cluster-ip-range` (tests move it).
  public var apiServerManifestPath: String = "/etc/kubernetes/manifests/kube-apiserver.yaml"
  /// The logrotate file the old script edited (`remove --legacy`, verify leftovers).
  public var legacyLogrotateFile: String = "/etc/logrotate.d/syslog"

  /// Defaults for every field.
  public init() {}

  /// Inventory variable names understood by ``init(variables:overrides:)``.
  public enum Key {
    public static let logPath = "svctrace_log_path"
    public static let serviceCIDR = "svctrace_service_cidr"
    public static let nodePortRange = "svctrace_nodeport_range"
    public static let maxRate = "svctrace_max_rate"
    public static let services = "svctrace_services"
    public static let rsyslogDropIn = "svctrace_rsyslog_dropin"
    public static let logrotatePath = "svctrace_logrotate_path"
    public static let stateDirectory = "svctrace_state_dir"
    public static let rotateSize = "svctrace_rotate_size"
    public static let rotateCount = "svctrace_rotate_count"
    public static let captureFor = "svctrace_for"
    /// `off`, or the refresh interval (`15s`, `1m`; 1 s … 10 min).
    public static let refresh = "svctrace_refresh"
    /// Every key, for "unknown variable" hints.
    public static let all = [
      logPath, serviceCIDR, nodePortRange, maxRate, services, rsyslogDropIn, logrotatePath, stateDirectory,
      rotateSize, rotateCount, captureFor, refresh,
    ]
  }

  /// Builds validated settings from a host's inventory variables, overridden by command-line values.
  ///
  /// Both dictionaries use the ``Key`` names; `overrides` wins. Unrelated variables are ignored.
  /// An empty value means "default" (for `svctrace_service_cidr`: learn from kube-proxy).
  /// - Throws: ``SettingsError`` naming the first invalid value.
  public init(variables: [String: String], overrides: [String: String] = [:]) throws(SettingsError) {
    self.init()
    let merged = variables.merging(overrides) { _, cli in cli }
    func value(_ key: String) -> String? {
      guard let raw = merged[key] else { return nil }
      let trimmed = raw.trimmingCharacters(in: .whitespaces)
      return trimmed.isEmpty ? nil : raw
    }
    if let path = value(Key.logPath) { logPath = try Self.validatePath(path, key: Key.logPath) }
    if let path = value(Key.rsyslogDropIn) { rsyslogDropInPath = try Self.validatePath(path, key: Key.rsyslogDropIn) }
    if let path = value(Key.logrotatePath) { logrotatePath = try Self.validatePath(path, key: Key.logrotatePath) }
    if let path = value(Key.stateDirectory) { stateDirectory = try Self.validatePath(path, key: Key.stateDirectory) }
    if let text = value(Key.serviceCIDR) {
      var cidrs: [CIDR] = []
      for item in Self.list(text) {
        do { cidrs.append(try CIDR(parsing: item)) } catch {
          throw SettingsError(key: Key.serviceCIDR, value: item, reason: error.reason)
        }
      }
      serviceCIDRs = Self.unique(cidrs)
    }
    if let text = value(Key.nodePortRange) {
      do { nodePortRange = try PortRange(parsing: text.trimmingCharacters(in: .whitespaces)) } catch {
        throw SettingsError(key: Key.nodePortRange, value: text, reason: error.reason)
      }
    }
    if let text = value(Key.maxRate) {
      do { maxRate = try RateLimit(parsing: text.trimmingCharacters(in: .whitespaces)) } catch {
        throw SettingsError(key: Key.maxRate, value: text, reason: error.reason)
      }
    }
    if let text = value(Key.services) {
      var parsed: [ServiceAddress] = []
      for item in Self.list(text) {
        do { parsed.append(try ServiceAddress(parsing: item)) } catch {
          throw SettingsError(key: Key.services, value: item, reason: error.reason)
        }
      }
      services = Self.unique(parsed).sorted()
    }
    if let text = value(Key.rotateSize) {
      let size = text.trimmingCharacters(in: .whitespaces)
      let digits = size.drop { $0.isASCII && $0.isNumber }
      guard size.first?.isNumber == true, digits.isEmpty || ["k", "K", "M", "G"].contains(String(digits)) else {
        throw SettingsError(key: Key.rotateSize, value: text, reason: "expected a size like 200M, 500k or 1G")
      }
      rotateSize = size
    }
    if let text = value(Key.rotateCount) {
      guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...1000).contains(count) else {
        throw SettingsError(key: Key.rotateCount, value: text, reason: "expected a count between 1 and 1000")
      }
      rotateCount = count
    }
    if let text = value(Key.refresh) {
      refreshInterval = try Self.parseRefresh(text.trimmingCharacters(in: .whitespaces))
    }
    if let text = value(Key.captureFor) {
      captureDuration = try Self.parseDuration(text.trimmingCharacters(in: .whitespaces), key: Key.captureFor)
    }
  }

  /// Checks that a node path is absolute, normalised and made of safe characters only.
  ///
  /// The rules are ``RemoteValue/path(_:variable:)``'s (letters, digits and `._-+@/`; no `..`, no
  /// `//`, no trailing `/`, at most 255 bytes), the one check every path-valued inventory variable
  /// and `--log-path` go through. Values are still quoted wherever they reach a shell; this check
  /// also keeps them out of rsyslog and logrotate syntax, where no quoting exists.
  /// - Throws: ``SettingsError`` explaining the first problem.
  public static func validatePath(_ path: String, key: String) throws(SettingsError) -> String {
    do {
      return try RemoteValue.path(path, variable: key)
    } catch {
      throw SettingsError(key: key, value: path, reason: error.reason)
    }
  }

  /// Parses `2h`, `90m`, `1h30m`, `45s`, `1d`.
  /// - Throws: ``SettingsError`` for anything else or a duration outside 1 minute…30 days.
  public static func parseDuration(_ text: String, key: String = Key.captureFor) throws(SettingsError) -> Duration {
    let bad = SettingsError(key: key, value: text, reason: "expected a duration like 2h, 90m or 1h30m (1m…30d)")
    var seconds: Int64 = 0
    var number: Int64?
    for character in text {
      if character.isASCII, let digit = character.wholeNumberValue {
        let next = (number ?? 0) * 10 + Int64(digit)
        guard next < 10_000_000 else { throw bad }
        number = next
        continue
      }
      guard let current = number else { throw bad }
      switch character {
      case "s": seconds += current
      case "m": seconds += current * 60
      case "h": seconds += current * 3600
      case "d": seconds += current * 86400
      default: throw bad
      }
      number = nil
    }
    guard number == nil, seconds >= 60, seconds <= 30 * 86400 else { throw bad }
    return .seconds(seconds)
  }

  /// Parses `off` (no refresh) or an interval such as `15s`, `1m` (1 s … 10 min) into seconds.
  /// - Throws: ``SettingsError`` for anything else.
  public static func parseRefresh(_ text: String) throws(SettingsError) -> Int? {
    let bad = SettingsError(
      key: Key.refresh, value: text, reason: "expected off or an interval like 15s or 1m (1s…10m)")
    if ["off", "no", "false", "0"].contains(text.lowercased()) { return nil }
    var digits = text
    var unit = 1
    if text.hasSuffix("s") {
      digits = String(text.dropLast())
    } else if text.hasSuffix("m") {
      digits = String(text.dropLast())
      unit = 60
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits.prefix(6)),
      digits.count <= 6, (1...600).contains(value * unit)
    else { throw bad }
    return value * unit
  }

  private static func list(_ text: String) -> [String] {
    text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init).filter { !$0.isEmpty }
  }

  private static func unique<T: Hashable>(_ items: [T]) -> [T] {
    var seen = Set<T>()
    return items.filter { seen.insert($0).inserted }
  }

  /// Node path of the state file written at install.
  public var statePath: String { stateDirectory + "/state.json" }
  /// Node path of the generic removal script (run by `remove` and by the expiry).
  public var removeScriptPath: String { stateDirectory + "/remove.sh" }
  /// Node path of the expiry marker (holds the expiry time, seconds since the epoch).
  public var expiryMarkerPath: String { stateDirectory + "/expiry" }
  /// Node path of the detached sleeper's pid file.
  public var expiryPidPath: String { stateDirectory + "/expiry.pid" }
  /// Node path of the refresh script (``RefreshScript``).
  public var refreshScriptPath: String { stateDirectory + "/refresh.sh" }
  /// Node path of the refresh's status file (``RefreshStatus``).
  public var refreshStatusPath: String { stateDirectory + "/refresh.status" }
  /// Node path of the refresh loop's pid file.
  public var refreshPidPath: String { stateDirectory + "/refresh.pid" }
  /// Node path of the lock the apply script holds and each refresh round takes (`flock`).
  public var lockPath: String { stateDirectory + "/lock" }
  /// Node path of the `at` job number file.
  public var expiryAtJobPath: String { stateDirectory + "/expiry.atjob" }
}
