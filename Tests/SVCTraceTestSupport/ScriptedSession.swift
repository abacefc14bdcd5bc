public import SVCTraceCore
import Synchronization

/// A fake ``RemoteSession`` that answers commands from a closure and records every call.
public final class ScriptedSession: RemoteSession {
  public let host: HostID
  private let responder: @Sendable (String, [UInt8]?) async throws -> CommandResult
  private let log = Mutex<[String]>([])
  private let closed = Mutex(false)

  public init(host: HostID, responder: @escaping @Sendable (String, [UInt8]?) async throws -> CommandResult) {
    self.host = host
    self.responder = responder
  }

  /// Every command run so far, in order.
  public var commands: [String] { log.withLock { $0 } }
  /// Whether ``close()`` was called.
  public var isClosed: Bool { closed.withLock { $0 } }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    log.withLock { $0.append(command) }
    return try await responder(command, stdin)
  }

  public func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    try await ShellFiles.readFile(self, path, offset: offset, maxLength: maxLength)
  }

  public func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    try await ShellFiles.writeFile(self, path, contents: contents, mode: mode)
  }

  public func stat(_ path: String) async throws -> RemoteFileStat? {
    try await ShellFiles.stat(self, path)
  }

  public func close() async { closed.withLock { $0 = true } }
}
