/// Checks for values that end up on a remote command line: each is held to what it can legally be
/// (a user name, a normalised absolute path, a host address), so an inventory cannot smuggle shell
/// syntax in even where quoting would be forgotten. Values are still quoted with ``ShellQuote``
/// wherever they reach a shell.
///
/// ``check(variable:value:)`` knows which inventory variables hold which kind of value; the
/// inventory parsers call it for every assignment (with file and line) and the host resolver for
/// every resolved host (with the host name), so every command refuses a hostile inventory before
/// connecting.
public enum RemoteValue {
  /// Variables holding the user `sudo` switches to: it lands on a command line.
  public static let userNameVariables: Set<String> = ["ansible_become_user", "ansible_sudo_user"]
  /// Variables holding the SSH login name: it only goes to the SSH protocol, never to a shell,
  /// and real directories allow more than POSIX names (`john.doe`, `J.Doe@corp.example`).
  public static let loginNameVariables: Set<String> = ["ansible_user", "ansible_ssh_user"]
  /// Variables holding a node path.
  public static let pathVariables: Set<String> = [
    "svctrace_log_path", "svctrace_rsyslog_dropin", "svctrace_logrotate_path", "svctrace_state_dir",
  ]
  /// Variables holding the address to connect to.
  public static let addressVariables: Set<String> = ["ansible_host", "ansible_ssh_host"]

  /// Checks `value` against what `variable` can legally hold; variables it does not know pass.
  ///
  /// Empty (or all-blank) paths pass: they mean "the default" to the rollout settings.
  /// - Throws: ``UnsafeValueError`` naming the variable and the first problem.
  public static func check(variable: String, value: String) throws(UnsafeValueError) {
    if userNameVariables.contains(variable) {
      _ = try userName(value, variable: variable)
    } else if loginNameVariables.contains(variable) {
      _ = try loginName(value, variable: variable)
    } else if pathVariables.contains(variable) {
      guard value.contains(where: { $0 != " " && $0 != "\t" }) else { return }
      _ = try path(value, variable: variable)
    } else if addressVariables.contains(variable) {
      _ = try hostAddress(value, variable: variable)
    } else if isSecret(variable) {
      _ = try secret(value, variable: variable)
    }
  }

  /// A POSIX portable user name: `[a-z_][a-z0-9_-]*[$]?`, at most 32 bytes.
  /// - Throws: ``UnsafeValueError`` when `value` is anything else.
  @discardableResult
  public static func userName(_ value: String, variable: String) throws(UnsafeValueError) -> String {
    let bytes = Array(value.utf8)
    func fail(_ reason: String) -> UnsafeValueError {
      UnsafeValueError(variable: variable, value: value, reason: reason)
    }
    guard !bytes.isEmpty else { throw fail("is empty; expected a user name") }
    guard bytes.count <= 32 else { throw fail("is longer than 32 bytes; expected a user name") }
    for (index, byte) in bytes.enumerated() {
      let lower = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
      let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
      let ok: Bool
      switch index {
      case 0: ok = lower || byte == UInt8(ascii: "_")
      case bytes.count - 1 where byte == UInt8(ascii: "$"): ok = true
      default: ok = lower || digit || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
      }
      guard ok else {
        throw fail(
          "is not a user name: only a-z, 0-9, _ and - are allowed (starting with a-z or _, optionally ending in $)")
      }
    }
    return value
  }

  /// An SSH login name: ASCII letters, digits and `._@-`, not starting with `-`, at most 64 bytes.
  /// - Throws: ``UnsafeValueError`` when `value` is anything else.
  @discardableResult
  public static func loginName(_ value: String, variable: String) throws(UnsafeValueError) -> String {
    let bytes = Array(value.utf8)
    func fail(_ reason: String) -> UnsafeValueError {
      UnsafeValueError(variable: variable, value: value, reason: reason)
    }
    guard !bytes.isEmpty else { throw fail("is empty; expected a login name") }
    guard bytes.count <= 64 else { throw fail("is longer than 64 bytes; expected a login name") }
    guard bytes[0] != UInt8(ascii: "-") else { throw fail("starts with -; expected a login name") }
    for byte in bytes {
      let letter = (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
      let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
      guard letter || digit || Array("._@-".utf8).contains(byte) else {
        throw fail("is not a login name: only ASCII letters, digits, '.', '_', '@' and '-' are allowed")
      }
    }
    return value
  }

  /// A normalised absolute node path of safe characters.
  ///
  /// Allowed: ASCII letters, digits and `._-+@/`; no `..`, `.` or empty components (so no `//`
  /// and no trailing `/`), at most 255 bytes. The same check guards `--log-path` and the rollout
  /// settings, where the path also lands in rsyslog and logrotate syntax that has no quoting.
  /// - Throws: ``UnsafeValueError`` explaining the first problem.
  @discardableResult
  public static func path(_ value: String, variable: String) throws(UnsafeValueError) -> String {
    func fail(_ reason: String) -> UnsafeValueError {
      UnsafeValueError(variable: variable, value: value, reason: reason)
    }
    guard value.hasPrefix("/") else { throw fail("must be an absolute path") }
    guard value.utf8.count <= 255 else { throw fail("is longer than 255 bytes") }
    for scalar in value.unicodeScalars {
      let ok =
        scalar.isASCII
        && (isAlphanumeric(UInt8(scalar.value)) || "._-+@/".unicodeScalars.contains(scalar))
      if !ok {
        throw fail("contains \(shown(String(scalar))); only letters, digits and . _ - + @ / are allowed")
      }
    }
    let components = value.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    guard value.count > 1, !components.contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }) else {
      throw fail("must be a normalised file path (no //, . or .. components)")
    }
    return value
  }

  /// A host name or IP address to connect to: ASCII letters, digits and `.-_:%`, not starting
  /// with `-` (it would read as an option), at most 253 bytes.
  /// - Throws: ``UnsafeValueError`` when `value` is anything else.
  @discardableResult
  public static func hostAddress(_ value: String, variable: String) throws(UnsafeValueError) -> String {
    func fail(_ reason: String) -> UnsafeValueError {
      UnsafeValueError(variable: variable, value: value, reason: reason)
    }
    let bytes = Array(value.utf8)
    guard !bytes.isEmpty else { throw fail("is empty; expected a host name or address") }
    guard bytes.count <= 253 else { throw fail("is longer than 253 bytes") }
    guard bytes[0] != UInt8(ascii: "-") else { throw fail("must not start with -") }
    for byte in bytes where !(isAlphanumeric(byte) || ".-_:%".utf8.contains(byte)) {
      throw fail("is not a host name or address: only letters, digits and . - _ : % are allowed")
    }
    return value
  }

  /// A password: any text on one line (sudo reads exactly one line of standard input; whatever
  /// follows a newline would reach the command), without NUL.
  /// - Throws: ``UnsafeValueError`` (which never shows the value) for a NUL, CR or LF.
  @discardableResult
  public static func secret(_ value: String, variable: String) throws(UnsafeValueError) -> String {
    if value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) {
      throw UnsafeValueError(
        variable: variable, value: value, reason: "must be a single line (no newline, carriage return or NUL)")
    }
    return value
  }

  /// `true` for variable names that hold secrets (`*pass*`, tokens, credentials): their values never
  /// appear in messages.
  public static func isSecret(_ variable: String) -> Bool {
    let lower = variable.lowercased()
    return ["pass", "secret", "token", "credential"].contains { lower.contains($0) }
  }

  /// `value` as messages show it: `***` for secrets; otherwise quoted, with everything outside
  /// printable ASCII escaped (`\u{301}`, `\n`) and cut at 80 characters, so that hostile values
  /// cannot hide in or play with the terminal.
  public static func shown(_ value: String, variable: String? = nil) -> String {
    if let variable, isSecret(variable) { return "***" }
    var text = ""
    var count = 0
    for scalar in value.unicodeScalars {
      if count >= 80 {
        text += "…"
        break
      }
      switch scalar {
      case "\n": text += "\\n"
      case "\t": text += "\\t"
      case "\r": text += "\\r"
      case "\\": text += "\\\\"
      case "\"": text += "\\\""
      case " "..."~": text.unicodeScalars.append(scalar)
      default: text += "\\u{" + String(scalar.value, radix: 16) + "}"
      }
      count += 1
    }
    return "\"" + text + "\""
  }

  private static func isAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
      || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
  }
}

/// A value refused before it could reach a remote shell: which variable (and host, and inventory
/// file and line when known), the value as it may be shown, and why.
///
/// Its description reads `[<file>:<line>: ][host <host>: ]<variable> <value> <reason>`; secret
/// values show as `***`.
public struct UnsafeValueError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The inventory variable or command-line option (`ansible_become_user`, `--log-path`).
  public var variable: String
  /// The value, escaped and shortened for messages (`***` for secrets); never the raw value.
  public var shownValue: String
  /// What the value should have been.
  public var reason: String
  /// The host whose settings held the value, when known.
  public var host: String?
  /// `<file>:<line>` (or `<file>`) of the inventory assignment, when known.
  public var location: String?

  /// Creates an error; `value` is stored only in its shown (escaped or redacted) form.
  public init(variable: String, value: String, reason: String, host: String? = nil, location: String? = nil) {
    self.variable = variable
    self.shownValue = RemoteValue.shown(value, variable: variable)
    self.reason = reason
    self.host = host
    self.location = location
  }

  public var description: String {
    var text = ""
    if let location { text += location + ": " }
    if let host { text += "host \(host): " }
    return text + "\(variable) \(shownValue) \(reason)"
  }
}
