import Crypto

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One parsed line of an OpenSSH `known_hosts` file.
struct KnownHostEntry: Sendable, Equatable {
  /// Which hosts the line names.
  enum Hosts: Sendable, Equatable {
    /// A comma-separated pattern list (`host`, `[host]:port`, `*.example`, `!bad`).
    case patterns([String])
    /// A hashed name: `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
    case hashed(salt: [UInt8], hash: [UInt8])
  }

  var file: String
  /// 1-based line number, as editors and `ssh-keygen -R` report it.
  var line: Int
  /// `@revoked` / `@cert-authority`, or `nil` for an ordinary line.
  var marker: String?
  var hosts: Hosts
  /// The key type as written (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
  var keyType: String
  /// The key blob (the Base64 field decoded).
  var key: [UInt8]

  /// `true` when this line names `lookupName` (already in `[host]:port` form where needed).
  func matches(_ lookupName: String) -> Bool {
    switch hosts {
    case .hashed(let salt, let hash):
      let code = HMAC<Insecure.SHA1>.authenticationCode(for: Array(lookupName.utf8), using: SymmetricKey(data: salt))
      return Array(code) == hash
    case .patterns(let patterns):
      return HostPattern.matchList(patterns, lookupName)
    }
  }
}

/// Reading and appending OpenSSH `known_hosts` files.
enum KnownHosts {
  /// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
  static func lookupName(host: String, port: Int) -> String {
    port == 22 ? host.lowercased() : "[\(host.lowercased())]:\(port)"
  }

  /// Parses a `known_hosts` file; a missing file has no entries. Malformed lines are skipped.
  ///
  /// - Throws: ``KnownHostsReadError`` when the file exists but cannot be read.
  static func load(path: String) throws(KnownHostsReadError) -> [KnownHostEntry] {
    guard let bytes = try readWholeFile(path) else { return [] }
    return parse(bytes, file: path)
  }

  /// Parses the contents of a `known_hosts` file read from `file`.
  static func parse(_ bytes: [UInt8], file: String) -> [KnownHostEntry] {
    var entries: [KnownHostEntry] = []
    var lineNumber = 0
    for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      let text = String(decoding: rawLine, as: UTF8.self)
      if let entry = parse(line: text, file: file, number: lineNumber) { entries.append(entry) }
    }
    return entries
  }

  /// Parses one line; `nil` for comments, blanks and lines that are not host-key lines.
  static func parse(line text: String, file: String, number: Int) -> KnownHostEntry? {
    var fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
    guard let first = fields.first, !first.hasPrefix("#") else { return nil }
    var marker: String?
    if first.hasPrefix("@") {
      marker = first
      fields.removeFirst()
    }
    guard fields.count >= 3 else { return nil }
    let hostField = fields[0]
    let hosts: KnownHostEntry.Hosts
    if hostField.hasPrefix("|1|") {
      let parts = hostField.split(separator: "|", omittingEmptySubsequences: true)
      guard parts.count == 3, let salt = base64Decode(parts[1]), let hash = base64Decode(parts[2]) else { return nil }
      hosts = .hashed(salt: salt, hash: hash)
    } else {
      hosts = .patterns(hostField.split(separator: ",").map { $0.lowercased() })
    }
    guard let key = base64Decode(fields[2]) else { return nil }
    return KnownHostEntry(file: file, line: number, marker: marker, hosts: hosts, keyType: fields[1], key: key)
  }

  /// The line `ssh` appends for an accepted key (plain host name, like `HashKnownHosts no`).
  static func line(host: String, port: Int, keyType: String, key: [UInt8]) -> String {
    "\(lookupName(host: host, port: port)) \(keyType) \(Data(key).base64EncodedString())"
  }

  /// Opens `path` for appending (creating the file 0600 and its directory 0700 if missing), takes
  /// an exclusive `flock`, re-reads the file under the lock and lets `body` decide what to append.
  ///
  /// `body` gets the entries as they are now on disk (another process may have appended since
  /// they were last read) and returns the line to append, or `nil` to leave the file alone. The
  /// lock is held until the line is written, so two first contacts never append the same key
  /// twice. Returns the 1-based line number of the appended line, or `nil`.
  /// - Throws: ``KnownHostsReadError`` naming the file and the system error, or what `body` throws.
  static func appendLocked<E: Error>(
    to path: String, _ body: ([KnownHostEntry]) throws(E) -> String?
  ) throws(KnownHostsAppendError<E>) -> Int? {
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    if !directory.isEmpty { _ = mkdir(directory, 0o700) }
    let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw .io(KnownHostsReadError(path: path, errno: errno)) }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 {
      guard errno == EINTR else { throw .io(KnownHostsReadError(path: path, errno: errno)) }
    }
    let bytes: [UInt8]
    do { bytes = try readAll(fd: fd, path: path) } catch { throw .io(error) }
    let line: String?
    do { line = try body(parse(bytes, file: path)) } catch { throw .rejected(error) }
    guard let line else { return nil }
    // Start on a fresh line if the file does not end with a newline.
    let needsNewline = bytes.last.map { $0 != UInt8(ascii: "\n") } ?? false
    let text = Array(((needsNewline ? "\n" : "") + line + "\n").utf8)
    let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == text.count else { throw .io(KnownHostsReadError(path: path, errno: errno)) }
    // Complete lines before ours, plus ours.
    return bytes.count { $0 == UInt8(ascii: "\n") } + (needsNewline ? 1 : 0) + 1
  }

  /// The key type named inside an SSH public-key blob (its first string).
  static func keyType(ofBlob blob: [UInt8]) -> String? {
    guard blob.count >= 4 else { return nil }
    let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
    guard length > 0, length <= blob.count - 4 else { return nil }
    return String(decoding: blob[4..<(4 + length)], as: UTF8.self)
  }

  /// `SHA256:<base64 without padding>`, exactly as `ssh` and `ssh-keygen -l` print it.
  static func fingerprint(ofBlob blob: [UInt8]) -> String {
    let encoded = Data(SHA256.hash(data: blob)).base64EncodedString()
    return "SHA256:" + encoded.prefix { $0 != "=" }
  }

  /// Standard Base64 (RFC 4648, padded, as `known_hosts` and OpenSSH key files write it).
  static func base64Decode(_ text: some StringProtocol) -> [UInt8]? {
    Data(base64Encoded: String(text)).map { Array($0) }
  }

  /// Reads a whole file; `nil` when it does not exist.
  static func readWholeFile(_ path: String) throws(KnownHostsReadError) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      if errno == ENOENT || errno == ENOTDIR { return nil }
      throw KnownHostsReadError(path: path, errno: errno)
    }
    defer { close(fd) }
    return try readAll(fd: fd, path: path)
  }

  /// Reads `fd` from offset 0 to its end.
  private static func readAll(fd: Int32, path: String) throws(KnownHostsReadError) -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(result.count)) }
      if n < 0 {
        if errno == EINTR { continue }
        throw KnownHostsReadError(path: path, errno: errno)
      }
      if n == 0 { break }
      result += buffer[0..<n]
    }
    return result
  }
}

/// Why ``KnownHosts/appendLocked(to:_:)`` did not append.
enum KnownHostsAppendError<Rejection: Error>: Error {
  /// The file could not be opened, locked, read or written.
  case io(KnownHostsReadError)
  /// The decision made under the lock refused to append.
  case rejected(Rejection)
}

/// A `known_hosts` (or key) file could not be read or written.
struct KnownHostsReadError: Error, CustomStringConvertible {
  var path: String
  var errno: Int32
  var description: String { "\(path): \(String(cString: strerror(errno)))" }
}

/// OpenSSH host patterns: `*` and `?` wildcards, `!` negation, case-insensitive.
enum HostPattern {
  /// `true` when `name` matches a single glob `pattern` (no negation).
  static func glob(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern.lowercased().utf8)
    let n = Array(name.lowercased().utf8)
    var pi = 0
    var ni = 0
    var starP = -1
    var starN = 0
    while ni < n.count {
      if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == n[ni] {
        pi += 1
        ni += 1
      } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
        starP = pi
        starN = ni
        pi += 1
      } else if starP >= 0 {
        pi = starP + 1
        starN += 1
        ni = starN
      } else {
        return false
      }
    }
    while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
  }

  /// ssh's pattern-list rule: some positive pattern matches and no negated pattern does.
  static func matchList(_ patterns: [String], _ name: String) -> Bool {
    var matched = false
    for pattern in patterns {
      if pattern.hasPrefix("!") {
        if glob(String(pattern.dropFirst()), name) { return false }
      } else if glob(pattern, name) {
        matched = true
      }
    }
    return matched
  }
}
