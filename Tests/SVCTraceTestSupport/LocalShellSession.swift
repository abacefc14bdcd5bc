import Foundation
public import SVCTraceCore

/// A ``RemoteSession`` that runs commands on this machine with `/bin/sh -c`.
///
/// Used by tests to exercise shell-based logic (file reads, rotation handling, sudo wrapping)
/// against real processes and files without SSH.
public final class LocalShellSession: RemoteSession {
  public let host: HostID
  /// Prepended to every command, e.g. `ip netns exec NS` to run inside a namespace.
  public let prefix: [String]

  public init(host: HostID = HostID("local"), prefix: [String] = []) {
    self.host = host
    self.prefix = prefix
  }

  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    let arguments = prefix + ["/bin/sh", "-c", command]
    return try await Task.detached { try Self.execute(arguments, stdin: stdin) }.value
  }

  private static func execute(_ arguments: [String], stdin: [UInt8]?) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let input = Pipe()
    let output = Pipe()
    let error = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Feed stdin and drain stderr on their own threads so no pipe can fill up and deadlock.
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) {
      if let stdin { input.fileHandleForWriting.write(Data(stdin)) }
      try? input.fileHandleForWriting.close()
    }
    let errorData = Mutexed<Data>()
    DispatchQueue.global().async(group: group) { errorData.set(error.fileHandleForReading.readDataToEndOfFile()) }
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    group.wait()
    let signalled = process.terminationReason == .uncaughtSignal
    return CommandResult(
      exitStatus: signalled ? -1 : process.terminationStatus,
      exitSignal: signalled ? "SIG\(process.terminationStatus)" : nil,
      stdout: Array(outData), stderr: Array(errorData.get() ?? Data()))
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

  public func close() async {}
}

/// A tiny lock-protected optional, for handing a value between threads in tests.
final class Mutexed<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Value?

  func set(_ newValue: Value) { lock.withLock { value = newValue } }
  func get() -> Value? { lock.withLock { value } }
}
