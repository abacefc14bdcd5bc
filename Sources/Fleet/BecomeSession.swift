public import SVCTraceCore
import Synchronization

/// Wraps a login session so every command and file operation runs as the become user (root).
///
/// Commands run as `sudo -n -u USER -- /bin/sh -c CMD` when sudo needs no password, or as
/// `sudo -k -S -p '' -u USER -- /bin/sh -c CMD` with the password written first on standard
/// input (sudo reads exactly one line, the rest reaches the command). The password never appears
/// on a command line. Which form applies is probed once, on first use.
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

  private enum SudoMode: Sendable {
    case direct  // already the become user: no sudo at all
    case noPassword
    case password
  }

  public init(base: any RemoteSession, config: BecomeConfig) {
    self.base = base
    self.config = config
  }

  public var host: HostID { base.host }

  /// Checks that privilege escalation works, so the recap can say "become failed" up front.
  /// - Throws: ``RemoteError`` of kind `.become` naming the reason sudo gave.
  public func probe() async throws {
    _ = try await sudoMode()
  }

  private func sudoMode() async throws -> SudoMode {
    if let known = mode.withLock({ $0 }) { return known }
    try checkConfig()
    let whoami = try await base.run("id -un", stdin: nil, timeout: .seconds(30))
    let detected: SudoMode
    if whoami.succeeded, whoami.stdoutText.trimmingTrailingNewlines() == config.user {
      detected = .direct
    } else {
      let target = try ShellQuote.quote(config.user)
      let probe = try await base.run("sudo -n -u \(target) -- /bin/sh -c 'id -u'", stdin: nil, timeout: .seconds(30))
      if probe.succeeded {
        detected = .noPassword
      } else if let password = config.password {
        let withPassword = try await base.run(
          "sudo -k -S -p '' -u \(target) -- /bin/sh -c 'id -u'", stdin: Array((password + "\n").utf8),
          timeout: .seconds(30))
        guard withPassword.succeeded else {
          throw becomeError(withPassword, passwordGiven: true)
        }
        detected = .password
      } else {
        throw becomeError(probe, passwordGiven: false)
      }
    }
    mode.withLock { $0 = detected }
    return detected
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
    let sudoMode = try await sudoMode()
    if sudoMode == .direct { return try await pass(command, stdin) }
    let target: String
    let quoted: String
    do {
      target = try ShellQuote.quote(config.user)
      quoted = try ShellQuote.quote(command)
    } catch {
      throw RemoteError(
        host: host, operation: "run a command as \(config.user)", kind: .become, message: error.description)
    }
    if sudoMode == .noPassword {
      return try await pass("sudo -n -u \(target) -- /bin/sh -c \(quoted)", stdin)
    }
    let secret = Array(((config.password ?? "") + "\n").utf8)
    return try await pass("sudo -k -S -p '' -u \(target) -- /bin/sh -c \(quoted)", secret + (stdin ?? []))
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
