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
  ///   - timeout: the command is abandoned (channel closed) after this long.
  /// - Returns: exit status, signal, stdout and stderr read separately and completely.
  /// - Throws: ``RemoteError`` when the command cannot be started or times out. A non-zero exit
  ///   status is *not* an error: inspect ``CommandResult/exitStatus``.
  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult

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
