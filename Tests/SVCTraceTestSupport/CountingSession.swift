public import SVCTraceCore
import Synchronization

/// Wraps a ``RemoteSession`` and counts the execs (round trips) made through it: every `run`, and
/// every file operation (each is one exec or SFTP round trip).
public final class CountingSession: RemoteSession {
  public let base: any RemoteSession
  private let log = Mutex<[String]>([])

  public init(_ base: any RemoteSession) { self.base = base }

  public var host: HostID { base.host }
  /// The commands (or `readFile PATH` / `writeFile PATH` / `stat PATH`) sent so far, in order.
  public var commands: [String] { log.withLock { $0 } }
  /// How many round trips were made so far.
  public var execs: Int { log.withLock { $0.count } }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    log.withLock { $0.append(command) }
    return try await base.run(command, stdin: stdin, timeout: timeout)
  }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits) async throws
    -> CommandResult
  {
    log.withLock { $0.append(command) }
    return try await base.run(command, stdin: stdin, timeout: timeout, limits: limits)
  }

  public func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    log.withLock { $0.append("readFile \(path)") }
    return try await base.readFile(path, offset: offset, maxLength: maxLength)
  }

  public func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    log.withLock { $0.append("writeFile \(path)") }
    try await base.writeFile(path, contents: contents, mode: mode)
  }

  public func stat(_ path: String) async throws -> RemoteFileStat? {
    log.withLock { $0.append("stat \(path)") }
    return try await base.stat(path)
  }

  public func close() async { await base.close() }
}
