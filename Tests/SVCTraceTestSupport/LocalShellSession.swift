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
    try await LocalProcess.run(prefix + ["/bin/sh", "-c", command], stdin: stdin)
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
