import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a shell script on this machine and returns its result, blocking (for ``ScratchNode``'s
/// synchronous set-up and tear-down only; async code uses `LocalProcess` from SVCTraceTestSupport).
@discardableResult
func shell(_ script: String, stdin: [UInt8]? = nil) throws -> CommandResult {
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svtro-run-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: directory) }
  let inURL = directory.appendingPathComponent("in")
  let outURL = directory.appendingPathComponent("out")
  let errURL = directory.appendingPathComponent("err")
  try Data(stdin ?? []).write(to: inURL)
  _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
  _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
  // posix_spawn + waitpid: Foundation's Process can miss child exits under Swift concurrency on Linux.
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, inURL.path, O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, outURL.path, O_WRONLY | O_TRUNC, 0o600)
  posix_spawn_file_actions_addopen(&actions, 2, errURL.path, O_WRONLY | O_TRUNC, 0o600)
  let arguments = ["/bin/sh", "-c", script]
  let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
  var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
  var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
  defer {
    for pointer in argv { free(pointer) }
    for pointer in envp { free(pointer) }
  }
  // The test runner blocks signals in its threads; children must start with a clean mask and defaults,
  // or they could never be stopped with SIGTERM.
  var attributes = posix_spawnattr_t()
  posix_spawnattr_init(&attributes)
  defer { posix_spawnattr_destroy(&attributes) }
  var empty = sigset_t()
  sigemptyset(&empty)
  var all = sigset_t()
  sigfillset(&all)
  posix_spawnattr_setsigmask(&attributes, &empty)
  posix_spawnattr_setsigdefault(&attributes, &all)
  posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
  var pid: pid_t = 0
  let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, &envp)
  guard spawned == 0 else { throw ScratchError(message: "posix_spawn failed: \(spawned)") }
  var status: Int32 = 0
  while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
  let signaled = (status & 0x7f) != 0
  let exitStatus: Int32 = signaled ? -1 : (status >> 8) & 0xff
  return CommandResult(
    exitStatus: exitStatus, exitSignal: signaled ? "\(status & 0x7f)" : nil,
    stdout: [UInt8](try Data(contentsOf: outURL)), stderr: [UInt8](try Data(contentsOf: errURL)))
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
