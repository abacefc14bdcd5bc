/// The seam every feature layer uses to act on one node.
///
/// `Rollout`, `Logs` collection and `verify` only ever talk to a node through this protocol.
/// The real implementation is an SSH connection (module `SSH`), wrapped by `Fleet` so that
/// commands run with privilege escalation (`sudo`) where the inventory asks for it; tests of
/// pure logic use in-memory fakes, and end-to-end tests use the real thing against the testbed.
///
/// Implementations serialize calls internally: callers may await several operations one after
/// another, never concurrently on the same session.
public protocol RemoteSession: Sendable {
  /// The node this session talks to.
  var host: HostID { get }

  /// Runs `command` through the node's `/bin/sh -c` and returns its complete output.
  ///
  /// - Parameters:
  ///   - command: a shell command line. Every value that came from outside svctrace must already
  ///     be quoted with ``ShellQuote/quote(_:)``.
  ///   - stdin: bytes written to the command's standard input, then EOF. `nil` sends EOF at once.
  ///   - timeout: the command is abandoned (channel closed) after this long; `nil` means the
  ///     session's default (``RemoteDefaults/commandTimeout`` for SSH), never "forever".
  /// - Returns: exit status, signal, stdout and stderr read separately and completely, each at
  ///   most as long as ``OutputLimits/standard`` allows.
  /// - Throws: ``RemoteError`` when the command cannot be started, times out, or writes more than
  ///   the limits (`.outputTooLarge`). A non-zero exit status is *not* an error: inspect
  ///   ``CommandResult/exitStatus``.
  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult

  /// Like ``run(_:stdin:timeout:)`` with explicit caps on the bytes kept of stdout and stderr.
  ///
  /// Past a cap the command is abandoned (channel closed) and `.outputTooLarge` is thrown. The
  /// default implementation runs the command and checks the sizes afterwards (right for
  /// in-memory sessions); SSH sessions stop reading as soon as a cap is passed.
  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits) async throws
    -> CommandResult

  /// Reads up to `maxLength` bytes (all when `nil`) of a remote file starting at `offset`.
  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8]

  /// Writes a whole remote file atomically: a temporary file next to `path`, then a rename.
  /// An existing file keeps its owner; `mode` applies to the new file.
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws

  /// Returns metadata of a remote path, or `nil` if it does not exist.
  func stat(_ path: String) async throws -> RemoteFileStat?

  /// Closes the session; further calls throw. Idempotent.
  func close() async
}

extension RemoteSession {
  /// Runs the command, then throws `.outputTooLarge` if its output passed `limits`.
  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits) async throws
    -> CommandResult
  {
    let result = try await run(command, stdin: stdin, timeout: timeout)
    if let error = limits.violation(
      stdout: result.stdout.count, stderr: result.stderr.count, host: host,
      operation: "exec `\(RemoteError.abbreviate(command))`")
    {
      throw error
    }
    return result
  }

  /// Runs a command without stdin and with no timeout beyond the session default.
  public func run(_ command: String) async throws -> CommandResult {
    try await run(command, stdin: nil, timeout: nil)
  }

  /// Runs a command and throws ``RemoteError/commandFailed`` unless it exits 0.
  @discardableResult
  public func check(_ command: String, stdin: [UInt8]? = nil, timeout: Duration? = nil, operation: String) async throws
    -> CommandResult
  {
    let result = try await run(command, stdin: stdin, timeout: timeout)
    guard result.exitStatus == 0 else {
      throw RemoteError(
        host: host, operation: operation, kind: .commandFailed,
        message: result.failureSummary)
    }
    return result
  }
}

/// Defaults that keep every remote operation bounded in time.
public enum RemoteDefaults {
  /// The timeout of a command whose caller gives none (5 minutes); long operations pass their own.
  public static let commandTimeout: Duration = .seconds(300)
}

/// How many bytes of a command's stdout and stderr are kept before the command is abandoned.
public struct OutputLimits: Sendable, Equatable {
  /// Most bytes of standard output kept.
  public var stdout: Int
  /// Most bytes of standard error kept.
  public var stderr: Int

  public init(stdout: Int, stderr: Int) {
    self.stdout = stdout
    self.stderr = stderr
  }

  /// 256 MiB of stdout, 64 MiB of stderr: far above what svctrace's own commands produce
  /// (collect pulls at most 16 MiB per batch), low enough that a runaway command cannot
  /// exhaust the workstation's memory.
  public static let standard = OutputLimits(stdout: 256 << 20, stderr: 64 << 20)

  /// A byte count in words: `256 MiB`, `16 KiB`, `100 bytes`.
  public static func describe(_ bytes: Int) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) bytes"
  }

  /// The error for output of these sizes, or `nil` when both are within the limits.
  public func violation(stdout stdoutCount: Int, stderr stderrCount: Int, host: HostID, operation: String)
    -> RemoteError?
  {
    let stream: String
    let limit: Int
    if stdoutCount > stdout {
      (stream, limit) = ("stdout", stdout)
    } else if stderrCount > stderr {
      (stream, limit) = ("stderr", stderr)
    } else {
      return nil
    }
    return RemoteError(
      host: host, operation: operation, kind: .outputTooLarge,
      message: "the command wrote more than \(Self.describe(limit)) to \(stream); output discarded, channel closed")
  }
}

/// The outcome of one remote command.
public struct CommandResult: Sendable, Equatable {
  /// Exit status, or -1 when the command was killed by a signal.
  public var exitStatus: Int32
  /// Signal name (`"TERM"`, `"KILL"`…) when the command died of a signal.
  public var exitSignal: String?
  public var stdout: [UInt8]
  public var stderr: [UInt8]

  public init(exitStatus: Int32, exitSignal: String? = nil, stdout: [UInt8] = [], stderr: [UInt8] = []) {
    self.exitStatus = exitStatus
    self.exitSignal = exitSignal
    self.stdout = stdout
    self.stderr = stderr
  }

  /// Standard output decoded as UTF-8 (invalid bytes replaced).
  public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
  /// Standard error decoded as UTF-8 (invalid bytes replaced).
  public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

  /// `true` when the command exited 0.
  public var succeeded: Bool { exitStatus == 0 && exitSignal == nil }

  /// One line for error messages: exit status or signal, and the last line of stderr.
  public var failureSummary: String {
    let status = exitSignal.map { "killed by SIG\($0)" } ?? "exit status \(exitStatus)"
    let lastLine = stderrText.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
    return lastLine.isEmpty ? status : "\(status): \(lastLine)"
  }
}

/// Metadata of a remote file.
public struct RemoteFileStat: Sendable, Equatable {
  public var size: UInt64
  /// Inode number, when the transport reports it (exec `stat` does, SFTP does not).
  public var inode: UInt64?
  /// Permission bits and file type, as in `st_mode`.
  public var mode: UInt32
  public var uid: UInt32
  public var gid: UInt32
  /// Modification time, seconds since the epoch.
  public var mtime: Int64

  public init(size: UInt64, inode: UInt64?, mode: UInt32, uid: UInt32, gid: UInt32, mtime: Int64) {
    self.size = size
    self.inode = inode
    self.mode = mode
    self.uid = uid
    self.gid = gid
    self.mtime = mtime
  }

  /// `true` for a directory.
  public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
}
