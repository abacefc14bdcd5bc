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
  /// The key's Base64 text, exactly as written.
  var keyBase64: String
  /// The text of the line as read (used to feed libssh2's parser).
  var text: String

  /// `true` when this line names `lookupName` (already in `[host]:port` form where needed).
  func matches(_ lookupName: String) -> Bool {
    switch hosts {
    case .hashed(let salt, let hash):
      return Digest.hmacSHA1(key: salt, message: Array(lookupName.utf8)) == hash
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
    var entries: [KnownHostEntry] = []
    var lineNumber = 0
    for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      let text = String(decoding: rawLine, as: UTF8.self)
      if let entry = parse(line: text, file: path, number: lineNumber) { entries.append(entry) }
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
      guard parts.count == 3, let salt = Base64.decode(parts[1]), let hash = Base64.decode(parts[2]) else { return nil }
      hosts = .hashed(salt: salt, hash: hash)
    } else {
      hosts = .patterns(hostField.split(separator: ",").map { $0.lowercased() })
    }
    guard Base64.decode(fields[2]) != nil else { return nil }
    return KnownHostEntry(
      file: file, line: number, marker: marker, hosts: hosts, keyType: fields[1], keyBase64: fields[2], text: text)
  }

  /// The line `ssh` appends for an accepted key (plain host name, like `HashKnownHosts no`).
  static func line(host: String, port: Int, keyType: String, key: [UInt8]) -> String {
    "\(lookupName(host: host, port: port)) \(keyType) \(Base64.encode(key))"
  }

  /// Appends `line` to `path`, creating the file (mode 0600) and its directory (0700) if missing.
  ///
  /// - Throws: ``KnownHostsReadError`` naming the file and the system error.
  static func append(line: String, to path: String) throws(KnownHostsReadError) {
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    if !directory.isEmpty { _ = mkdir(directory, 0o700) }
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw KnownHostsReadError(path: path, errno: errno) }
    defer { close(fd) }
    // Start on a fresh line if the file does not end with a newline.
    var needsNewline = false
    var st = stat()
    if fstat(fd, &st) == 0, st.st_size > 0 {
      let rfd = open(path, O_RDONLY | O_CLOEXEC)
      if rfd >= 0 {
        var last: UInt8 = 0
        if pread(rfd, &last, 1, off_t(st.st_size - 1)) == 1, last != UInt8(ascii: "\n") { needsNewline = true }
        close(rfd)
      }
    }
    let bytes = Array(((needsNewline ? "\n" : "") + line + "\n").utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw KnownHostsReadError(path: path, errno: errno) }
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
    "SHA256:" + Base64.encode(Digest.sha256(blob), padding: false)
  }

  /// Reads a whole file; `nil` when it does not exist.
  static func readWholeFile(_ path: String) throws(KnownHostsReadError) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      if errno == ENOENT || errno == ENOTDIR { return nil }
      throw KnownHostsReadError(path: path, errno: errno)
    }
    defer { close(fd) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
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
