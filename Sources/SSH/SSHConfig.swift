public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One `ProxyJump` hop: `[user@]host[:port]`.
public struct SSHJumpHost: Sendable, Equatable, CustomStringConvertible {
  public var user: String?
  public var host: String
  public var port: Int?

  /// Creates a hop from its parts.
  public init(user: String? = nil, host: String, port: Int? = nil) {
    self.user = user
    self.host = host
    self.port = port
  }

  /// Parses `[user@]host[:port]` (also `[v6addr]:port`); `nil` when malformed.
  public init?(parsing text: String) {
    var rest = Substring(text.trimmingSpaces)
    if rest.hasPrefix("ssh://") { rest = rest.dropFirst(6) }
    if let at = rest.lastIndex(of: "@") {
      user = String(rest[..<at])
      rest = rest[rest.index(after: at)...]
    }
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
      host = String(rest[rest.index(after: rest.startIndex)..<close])
      let after = rest[rest.index(after: close)...]
      if after.hasPrefix(":") {
        guard let value = Int(after.dropFirst()), (1...65535).contains(value) else { return nil }
        port = value
      } else if !after.isEmpty {
        return nil
      }
    } else if let colon = rest.lastIndex(of: ":") {
      host = String(rest[..<colon])
      guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else { return nil }
      port = value
    } else {
      host = String(rest)
    }
    if host.isEmpty || user?.isEmpty == true { return nil }
  }

  public var description: String {
    (user.map { "\($0)@" } ?? "") + host + (port.map { ":\($0)" } ?? "")
  }
}

/// The settings `ssh` would use for one host alias, after applying every matching `Host` block.
public struct SSHConfigEntry: Sendable, Equatable {
  /// The alias that was looked up.
  public var alias: String
  /// `HostName` (with `%h` expanded), or `nil` to dial the alias itself.
  public var hostName: String?
  public var user: String?
  public var port: Int?
  /// `IdentityFile` values in order, `~` expanded.
  public var identityFiles: [String]
  /// `ProxyJump` hops in order; empty for none (or `ProxyJump none`).
  public var proxyJump: [SSHJumpHost]

  /// Creates an entry (normally produced by ``SSHConfig/resolve(_:)``).
  public init(
    alias: String, hostName: String? = nil, user: String? = nil, port: Int? = nil, identityFiles: [String] = [],
    proxyJump: [SSHJumpHost] = []
  ) {
    self.alias = alias
    self.hostName = hostName
    self.user = user
    self.port = port
    self.identityFiles = identityFiles
    self.proxyJump = proxyJump
  }
}

/// A parsed OpenSSH client configuration (`~/.ssh/config` or `-F FILE`).
///
/// Supports `Host` blocks with `*`, `?` and `!` patterns, and the keywords `HostName`, `User`,
/// `Port`, `IdentityFile` and `ProxyJump` (case-insensitive, `Key value` or `Key=value`, quoted
/// values, `#` comments). Like `ssh`, the first value found for a keyword wins, except
/// `IdentityFile`, which accumulates. `Match` blocks are not evaluated: their contents are ignored.
public struct SSHConfig: Sendable {
  /// One `Host` block (or the implicit global block before the first `Host`).
  struct Block: Sendable {
    var patterns: [String]?
    var settings: [(keyword: String, value: String, line: Int)]
  }

  var blocks: [Block]
  /// The file the configuration came from (for error messages).
  public var path: String

  /// An empty configuration (what a missing `~/.ssh/config` means).
  public init() {
    blocks = []
    path = ""
  }

  /// Reads and parses `path`; a missing file gives an empty configuration.
  ///
  /// - Throws: ``SSHConfigError`` with file and line for malformed lines or unreadable files.
  public static func load(path: String) throws -> SSHConfig {
    let bytes: [UInt8]?
    do { bytes = try KnownHosts.readWholeFile(path) } catch {
      throw SSHConfigError(path: path, line: 0, message: "cannot read: \(error)")
    }
    return try parse(String(decoding: bytes ?? [], as: UTF8.self), path: path)
  }

  /// Parses configuration text.
  ///
  /// - Throws: ``SSHConfigError`` naming `path` and the line of the first malformed line.
  public static func parse(_ text: String, path: String = "<config>") throws -> SSHConfig {
    var config = SSHConfig()
    config.path = path
    var current = Block(patterns: nil, settings: [])
    var lineNumber = 0
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let line = rawLine.trimmingSpaces
      if line.isEmpty || line.hasPrefix("#") { continue }
      guard let (keyword, value) = splitKeyword(line) else {
        throw SSHConfigError(path: path, line: lineNumber, message: "expected `Keyword value`, got `\(line)`")
      }
      let words = try splitWords(value, path: path, line: lineNumber)
      switch keyword {
      case "host":
        guard !words.isEmpty else {
          throw SSHConfigError(path: path, line: lineNumber, message: "`Host` needs at least one pattern")
        }
        config.blocks.append(current)
        current = Block(patterns: words, settings: [])
      case "match":
        config.blocks.append(current)
        current = Block(patterns: [], settings: [])  // never matches
      default:
        guard let first = words.first else {
          throw SSHConfigError(path: path, line: lineNumber, message: "`\(keyword)` needs a value")
        }
        if keyword == "port" {
          guard let port = Int(first), (1...65535).contains(port) else {
            throw SSHConfigError(
              path: path, line: lineNumber, message: "`Port` expects a number 1-65535, got `\(first)`")
          }
        }
        if keyword == "proxyjump", first.lowercased() != "none" {
          for hop in first.split(separator: ",") where SSHJumpHost(parsing: String(hop)) == nil {
            throw SSHConfigError(
              path: path, line: lineNumber, message: "`ProxyJump` expects [user@]host[:port], got `\(hop)`")
          }
        }
        current.settings.append((keyword, first, lineNumber))
      }
    }
    config.blocks.append(current)
    return config
  }

  /// The settings for `alias`, as `ssh -G alias` would compute them for these keywords.
  public func resolve(_ alias: String) -> SSHConfigEntry {
    var entry = SSHConfigEntry(alias: alias)
    var seen: Set<String> = []
    for block in blocks {
      if let patterns = block.patterns, !HostPattern.matchList(patterns, alias) { continue }
      for (keyword, value, _) in block.settings {
        if keyword == "identityfile" {
          entry.identityFiles.append(SSHConfig.expandTilde(value))
          continue
        }
        guard !seen.contains(keyword) else { continue }
        seen.insert(keyword)
        switch keyword {
        case "hostname": entry.hostName = SSHConfig.expandTokens(value, alias: alias)
        case "user": entry.user = value
        case "port": entry.port = Int(value)
        case "proxyjump":
          entry.proxyJump =
            value.lowercased() == "none"
            ? [] : value.split(separator: ",").compactMap { SSHJumpHost(parsing: String($0)) }
        default: break
        }
      }
    }
    return entry
  }

  /// Builds the ``SSHTarget`` for `alias`: explicit values (from the inventory) win over the
  /// configuration, and every `ProxyJump` hop is resolved through the configuration too.
  ///
  /// - Parameters:
  ///   - alias: the name to look up (inventory host name or `ansible_host`).
  ///   - host: the inventory name used in errors; defaults to `alias`.
  ///   - hostname, user, port, identityFiles, password: inventory overrides.
  public func target(
    for alias: String, host: HostID? = nil, hostname: String? = nil, user: String? = nil, port: Int? = nil,
    identityFiles: [String] = [], password: String? = nil
  ) -> SSHTarget {
    makeTarget(
      alias: alias, host: host, hostname: hostname, user: user, port: port, identityFiles: identityFiles,
      password: password,
      depth: 0)
  }

  private func makeTarget(
    alias: String, host: HostID?, hostname: String?, user: String?, port: Int?, identityFiles: [String],
    password: String?,
    depth: Int
  ) -> SSHTarget {
    let entry = resolve(hostname ?? alias)
    var target = SSHTarget(
      host: host ?? HostID(alias), hostname: entry.hostName ?? hostname ?? alias, port: port ?? entry.port ?? 22,
      user: user ?? entry.user ?? SSHTarget.currentUserName)
    let files = identityFiles + entry.identityFiles
    if !files.isEmpty { target.identityFiles = files }
    target.password = password
    if depth < 8 {  // ProxyJump loops stop here, like ssh's own recursion limit
      target.proxyJump = entry.proxyJump.map { hop in
        makeTarget(
          alias: hop.host, host: HostID(hop.host), hostname: nil, user: hop.user, port: hop.port, identityFiles: [],
          password: nil, depth: depth + 1)
      }.flatMap { $0.proxyJump + [$0.withoutJumps] }
    }
    return target
  }

  /// Splits `Keyword value` / `Keyword=value` / `Keyword = value`; keyword lower-cased.
  static func splitKeyword(_ line: Substring) -> (String, Substring)? {
    guard let end = line.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "=" }) else { return nil }
    let keyword = line[..<end].lowercased()
    var rest = line[end...].drop(while: { $0 == " " || $0 == "\t" })
    if rest.hasPrefix("=") { rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" }) }
    guard !keyword.isEmpty else { return nil }
    return (keyword, rest)
  }

  /// Splits a value into words, honouring double quotes; trailing `#` comments are dropped.
  static func splitWords(_ value: Substring, path: String, line: Int) throws -> [String] {
    var words: [String] = []
    var current = ""
    var inQuotes = false
    var hasWord = false
    for character in value {
      if inQuotes {
        if character == "\"" { inQuotes = false } else { current.append(character) }
      } else if character == "\"" {
        inQuotes = true
        hasWord = true
      } else if character == " " || character == "\t" {
        if hasWord { words.append(current) }
        current = ""
        hasWord = false
      } else if character == "#" && !hasWord {
        break
      } else {
        current.append(character)
        hasWord = true
      }
    }
    if inQuotes { throw SSHConfigError(path: path, line: line, message: "unterminated quote") }
    if hasWord { words.append(current) }
    return words
  }

  /// Expands a leading `~` or `~/` to `$HOME`.
  static func expandTilde(_ path: String) -> String {
    guard path == "~" || path.hasPrefix("~/") else { return path }
    return SSHTarget.homeDirectory + path.dropFirst()
  }

  /// Expands `%h` (the alias) and `%%` in `HostName`.
  static func expandTokens(_ value: String, alias: String) -> String {
    var out = ""
    var percent = false
    for character in value {
      if percent {
        switch character {
        case "h": out += alias
        case "%": out += "%"
        default: out += "%" + String(character)
        }
        percent = false
      } else if character == "%" {
        percent = true
      } else {
        out.append(character)
      }
    }
    return out
  }
}

/// A malformed line in an ssh_config file.
public struct SSHConfigError: Error, Sendable, CustomStringConvertible, Equatable {
  public var path: String
  public var line: Int
  public var message: String

  public init(path: String, line: Int, message: String) {
    self.path = path
    self.line = line
    self.message = message
  }

  public var description: String { "\(path):\(line): \(message)" }
}

extension StringProtocol {
  /// The text without leading and trailing spaces, tabs and carriage returns.
  var trimmingSpaces: Substring {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
    let sub = self[...]
    guard let start = sub.firstIndex(where: { !isSpace($0) }), let end = sub.lastIndex(where: { !isSpace($0) }) else {
      return ""
    }
    return Substring(sub[start...end])
  }
}
