import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a shell script on this machine as ``ScratchNode``'s set-up and tear-down do: with only
/// `PATH` and `LC_ALL=C` in its environment.
@discardableResult
func shell(_ script: String, stdin: [UInt8]? = nil) async throws -> CommandResult {
  try await LocalProcess.run(
    ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "/bin/sh", "-c", script], stdin: stdin)
}

/// A `RemoteSession` whose commands run as root inside a scratch network namespace (`ip netns exec`).
///
/// Files are plain local files: tests point every settings path into a temp directory.
/// `commandLog` records every command, so tests can prove that a second install runs nothing mutating.
final class LocalNetnsSession: RemoteSession {
  let host: HostID
  let namespace: String
  private let state = Mutex(State())

  private struct State {
    var log: [String] = []
    var failing: String?
  }

  init(namespace: String) {
    self.host = HostID(namespace)
    self.namespace = namespace
  }

  /// Commands containing this substring fail with exit status 1 (fault injection).
  var failCommandsContaining: String? {
    get { state.withLock { $0.failing } }
    set { state.withLock { $0.failing = newValue } }
  }

  var commandLog: [String] { state.withLock { $0.log } }
  func clearLog() { state.withLock { $0.log.removeAll() } }

  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    state.withLock { $0.log.append(command) }
    if let failing = failCommandsContaining, command.contains(failing) {
      return CommandResult(exitStatus: 1, stderr: Array("injected failure".utf8))
    }
    return try await LocalProcess.run(
      ["ip", "netns", "exec", namespace, "/bin/sh", "-c", command], stdin: stdin,
      environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"])
  }

  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RemoteError(host: host, operation: "read \(path)", kind: .file, message: "no such file")
    }
    let bytes = [UInt8](data).dropFirst(Int(offset))
    return Array(maxLength.map { bytes.prefix($0) } ?? bytes)
  }

  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    state.withLock { $0.log.append("writeFile \(path)") }
    let temp = path + ".svctrace-tmp"
    guard
      FileManager.default.createFile(
        atPath: temp, contents: Data(contents), attributes: [.posixPermissions: Int(mode)])
    else {
      throw RemoteError(host: host, operation: "write \(path)", kind: .file, message: "cannot create \(temp)")
    }
    if rename(temp, path) != 0 {
      unlink(temp)
      throw RemoteError(host: host, operation: "write \(path)", kind: .file, message: "rename failed")
    }
  }

  func stat(_ path: String) async throws -> RemoteFileStat? {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
    let type = attributes[.type] as? FileAttributeType
    let permissions = (attributes[.posixPermissions] as? Int).map { UInt32($0) } ?? 0
    return RemoteFileStat(
      size: (attributes[.size] as? UInt64) ?? 0, inode: nil,
      mode: (type == .typeDirectory ? 0o040000 : 0o100000) | permissions, uid: 0, gid: 0,
      mtime: Int64((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0))
  }

  func close() async {}
}
