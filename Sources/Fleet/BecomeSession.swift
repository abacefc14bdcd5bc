public import SVCTraceCore
import Synchronization

/// Wraps a login session so every command and file operation runs as the become user (root).
///
/// Commands run as `sudo -n -u USER -- /bin/sh -c CMD` when sudo needs no password, or as
/// `sudo -k -S -p '' -u USER -- /bin/sh -c CMD` with the password written first on standard
/// input (sudo reads exactly one line, the rest reaches the command). The password never appears
/// on a command line.
///
/// Which form applies is learned from the first command itself, at no extra round trip: it goes
/// out wrapped in a node-side choice (already the become user: no sudo; else `sudo -n`; with a
/// password, `sudo -n` when a `sudo -n true` succeeds — the password line is then read off
/// standard input by the shell —, else the password form). The shell that sudo starts first
/// writes `svctrace-become MODE` on standard error (removed from the result) and then runs `CMD`:
/// when that line is missing, sudo refused, and its reason becomes a ``RemoteError`` of kind
/// `.become`. Later commands use the learned form directly.
///
/// `CMD` is already a shell command (its own values quoted by whoever built it); it is quoted here
/// once more, as a whole, because the login shell parses the sudo line before `/bin/sh -c` parses
/// `CMD`: one quoting per shell, both byte-level (``ShellQuote``). The user must be a portable
/// user name and the password a single line (``RemoteValue``); anything else is refused before a
/// command is sent.
///
/// File operations go through the shell (``ShellFiles``) because SFTP runs as the login user.
public final class BecomeSession: RemoteSession {
  public let base: any RemoteSession
  public let config: BecomeConfig
  private let mode = Mutex<SudoMode?>(nil)

  private enum SudoMode: String, Sendable {
    case direct  // already the become user: no sudo at all
    case noPassword = "sudo"
    case password
  }

  /// The line the wrapper shell writes on standard error before it runs the command.
  static let marker = "svctrace-become"

  public init(base: any RemoteSession, config: BecomeConfig) {
    self.base = base
    self.config = config
  }

  public var host: HostID { base.host }

  /// Checks that privilege escalation works (one exec of `true` unless a command already ran).
  /// - Throws: ``RemoteError`` of kind `.become` naming the reason sudo gave.
  public func probe() async throws {
    guard config.enabled, mode.withLock({ $0 }) == nil else { return }
    _ = try await run("true", stdin: nil, timeout: .seconds(30))
  }

  /// Refuses a become user that is not a user name and a password that sudo would not read as
  /// one line (the rest would reach the command's standard input).
  private func checkConfig() throws(RemoteError) {
    do {
      try RemoteValue.userName(config.user, variable: "ansible_become_user")
      if let password = config.password { try RemoteValue.secret(password, variable: "ansible_become_password") }
    } catch {
      throw RemoteError(host: host, operation: "become", kind: .become, message: error.description)
    }
  }

  private func becomeError(_ result: CommandResult, passwordGiven: Bool) -> RemoteError {
    let reason = result.stderrText.split(whereSeparator: \.isNewline).first.map(String.init) ?? result.failureSummary
    var message = "sudo refused: \(reason)"
    if reason.contains("password is required") && !passwordGiven {
      message += " (give the password with ansible_become_password, --ask-become-pass or SVCTRACE_BECOME_PASSWORD)"
    } else if reason.contains("incorrect password") || reason.contains("Sorry, try again") {
      message = "sudo refused: incorrect become password"
    }
    return RemoteError(host: host, operation: "become \(config.user)", kind: .become, message: message)
  }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    try await runAsTarget(command, stdin: stdin, timeout: timeout, limits: nil)
  }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits) async throws
    -> CommandResult
  {
    try await runAsTarget(command, stdin: stdin, timeout: timeout, limits: limits)
  }

  /// Runs `command` as the become user; `limits` `nil` keeps the base session's default limits.
  private func runAsTarget(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits?)
    async throws -> CommandResult
  {
    let base = self.base
    func pass(_ line: String, _ input: [UInt8]?) async throws -> CommandResult {
      guard let limits else { return try await base.run(line, stdin: input, timeout: timeout) }
      return try await base.run(line, stdin: input, timeout: timeout, limits: limits)
    }
    guard config.enabled else { return try await pass(command, stdin) }
    try checkConfig()
    let target: String
    let quoted: String
    do {
      target = try ShellQuote.quote(config.user)
      quoted = try ShellQuote.quote(command)
    } catch {
      throw RemoteError(
        host: host, operation: "run a command as \(config.user)", kind: .become, message: error.description)
    }
    let secret = config.password.map { Array(($0 + "\n").utf8) }
    switch mode.withLock({ $0 }) {
    case .direct?: return try await pass(command, stdin)
    case .noPassword?: return try await pass("sudo -n -u \(target) -- /bin/sh -c \(quoted)", stdin)
    case .password?:
      return try await pass("sudo -k -S -p '' -u \(target) -- /bin/sh -c \(quoted)", (secret ?? []) + (stdin ?? []))
    case nil:
      let line = Self.firstLine(target: target, quotedCommand: quoted, password: secret != nil)
      let input: [UInt8]? = secret.map { $0 + (stdin ?? []) } ?? stdin
      var result = try await pass(line, input)
      guard let (learned, stderr) = Self.stripMarker(result.stderr) else {
        throw becomeError(result, passwordGiven: secret != nil)
      }
      mode.withLock { $0 = learned }
      result.stderr = stderr
      return result
    }
  }

  /// The first command's line: the node picks the form (see the type's comment); the shell that
  /// runs the command first writes `svctrace-become MODE` on standard error.
  private static func firstLine(target: String, quotedCommand: String, password: Bool) -> String {
    let wrapper = "svct_w='printf \"%s %s\\n\" \(marker) \"$1\" >&2; exec /bin/sh -c \"$2\"'"
    let run = "/bin/sh -c \"$svct_w\" sh"
    // With a password the shell reads the password line itself when sudo will not.
    let dropPassword = password ? "IFS= read -r svct_p; " : ""
    var parts = [
      "svct_c=\(quotedCommand)", wrapper,
      "if [ \"$(id -un 2>/dev/null)\" = \(target) ]; then \(dropPassword)exec \(run) direct \"$svct_c\"; fi",
    ]
    if password {
      parts.append(
        "if sudo -n -u \(target) -- true </dev/null >/dev/null 2>&1; then "
          + "\(dropPassword)exec sudo -n -u \(target) -- \(run) sudo \"$svct_c\"; fi")
      parts.append("exec sudo -k -S -p '' -u \(target) -- \(run) password \"$svct_c\"")
    } else {
      parts.append("exec sudo -n -u \(target) -- \(run) sudo \"$svct_c\"")
    }
    return parts.joined(separator: "; ")
  }

  /// The mode the wrapper's marker line names and stderr without that line; `nil` when there is
  /// no marker (sudo refused before the shell ran).
  private static func stripMarker(_ stderr: [UInt8]) -> (SudoMode, [UInt8])? {
    var start = 0
    while start < stderr.count {
      let end = stderr[start...].firstIndex(of: 10) ?? stderr.count
      let line = String(decoding: stderr[start..<end], as: UTF8.self)
      if line.hasPrefix(marker + " "), let mode = SudoMode(rawValue: String(line.dropFirst(marker.count + 1))) {
        return (mode, Array(stderr[..<start]) + Array(stderr[min(end + 1, stderr.count)...]))
      }
      start = end + 1
    }
    return nil
  }

  public func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    guard config.enabled else { return try await base.readFile(path, offset: offset, maxLength: maxLength) }
    return try await ShellFiles.readFile(self, path, offset: offset, maxLength: maxLength)
  }

  public func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    guard config.enabled else { return try await base.writeFile(path, contents: contents, mode: mode) }
    try await ShellFiles.writeFile(self, path, contents: contents, mode: mode)
  }

  public func stat(_ path: String) async throws -> RemoteFileStat? {
    guard config.enabled else { return try await base.stat(path) }
    return try await ShellFiles.stat(self, path)
  }

  public func close() async { await base.close() }
}

extension String {
  func trimmingTrailingNewlines() -> String {
    var result = self
    while let last = result.last, last.isNewline { result.removeLast() }
    return result
  }
}
