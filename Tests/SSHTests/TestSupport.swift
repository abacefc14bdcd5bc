import Foundation
import Logging
import SSH
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// Runs a shell command locally; returns exit status and combined output.
@discardableResult
func sh(_ command: String, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/bin/sh")
  process.arguments = ["-c", command]
  var env = ProcessInfo.processInfo.environment
  for (key, value) in environment { env[key] = value }
  process.environment = env
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A fresh temporary directory with the test prefix.
func makeTempDir(_ label: String) throws -> String {
  let path = "/tmp/svctssh-\(label)-\(getpid())-\(UUID().uuidString.prefix(8))"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

var isRoot: Bool { getuid() == 0 }

/// Real-sshd tests need OpenSSH's server binary and root (for /run/sshd and other users).
let sshdAvailable = FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && getuid() == 0

/// Client keys shared by all tests of this process (generated once).
struct TestKeys: Sendable {
  let dir: String
  var ed25519: String { dir + "/id_ed25519" }
  var ecdsaProtected: String { dir + "/id_ecdsa_pw" }
  var ed25519Protected: String { dir + "/id_ed25519_pw" }
  var agentOnly: String { dir + "/id_agent" }
  var rsa: String { dir + "/id_rsa" }
  var unauthorized: String { dir + "/id_unauthorized" }
  static let passphrase = "correct horse battery"

  static let shared: TestKeys = {
    let dir = "/tmp/svctssh-keys-\(getpid())"
    try? FileManager.default.removeItem(atPath: dir)
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let keys = TestKeys(dir: dir)
    atexit { _ = try? FileManager.default.removeItem(atPath: "/tmp/svctssh-keys-\(getpid())") }
    let pass = TestKeys.passphrase
    _ = try? sh(
      """
      set -e
      ssh-keygen -q -t ed25519 -N '' -C plain -f \(keys.ed25519)
      ssh-keygen -q -t ecdsa -N '\(pass)' -C ecdsa-pw -f \(keys.ecdsaProtected)
      ssh-keygen -q -t ed25519 -N '\(pass)' -C ed25519-pw -f \(keys.ed25519Protected)
      ssh-keygen -q -t ed25519 -N '' -C agent-only -f \(keys.agentOnly)
      ssh-keygen -q -t rsa -b 2048 -N '' -C rsa -f \(keys.rsa)
      ssh-keygen -q -t ed25519 -N '' -C unauthorized -f \(keys.unauthorized)
      """)
    return keys
  }()

  /// The authorized_keys content: every key except `unauthorized`.
  var authorizedKeys: String {
    [ed25519, ecdsaProtected, ed25519Protected, agentOnly, rsa].compactMap {
      try? String(contentsOfFile: $0 + ".pub", encoding: .utf8)
    }.joined()
  }
}

/// A throwaway sshd on 127.0.0.1 with its own host keys, stopped in `stop()`.
final class TestSSHD: Sendable {
  let dir: String
  let port: Int
  let process: BackgroundProcess

  init(dir: String, port: Int, process: BackgroundProcess) {
    self.dir = dir
    self.port = port
    self.process = process
  }

  /// Starts sshd; `hostKeyTypes` selects which host keys it offers (first is preferred by ssh).
  static func start(hostKeyTypes: [String] = ["ed25519"], passwordAuthentication: Bool = true, extraConfig: String = "")
    async throws -> TestSSHD
  {
    let dir = try makeTempDir("sshd")
    try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    var hostKeyLines = ""
    for type in hostKeyTypes {
      try sh("ssh-keygen -q -t \(type) -N '' -f \(dir)/host_\(type)")
      hostKeyLines += "HostKey \(dir)/host_\(type)\n"
    }
    try TestKeys.shared.authorizedKeys.write(toFile: "\(dir)/authorized_keys", atomically: true, encoding: .utf8)
    for _ in 0..<5 {
      let port = freePort()
      let config = """
        Port \(port)
        ListenAddress 127.0.0.1
        \(hostKeyLines)PidFile \(dir)/sshd.pid
        AuthorizedKeysFile \(dir)/authorized_keys
        StrictModes no
        PermitRootLogin yes
        PubkeyAuthentication yes
        PasswordAuthentication \(passwordAuthentication ? "yes" : "no")
        KbdInteractiveAuthentication \(passwordAuthentication ? "no" : "yes")
        UsePAM yes
        AllowTcpForwarding yes
        MaxStartups 100:30:200
        MaxSessions 100
        LogLevel DEBUG1
        Subsystem sftp internal-sftp
        \(extraConfig)

        """
      try config.write(toFile: "\(dir)/sshd_config", atomically: true, encoding: .utf8)
      let process = try await BackgroundProcess.start([
        "/usr/sbin/sshd", "-D", "-e", "-f", "\(dir)/sshd_config", "-E", "\(dir)/sshd.log",
      ])
      let server = TestSSHD(dir: dir, port: port, process: process)
      // Wait (bounded) until it accepts connections.
      for _ in 0..<100 {
        if !process.isRunning { break }
        if canConnect(port: port) { return server }
        try await Task.sleep(for: .milliseconds(50))
      }
      server.stop(removeFiles: false)
    }
    throw TestFailure("sshd did not start: \((try? String(contentsOfFile: "\(dir)/sshd.log", encoding: .utf8)) ?? "")")
  }

  /// Stops sshd (SIGTERM; its task reaps it) and removes its directory.
  func stop(removeFiles: Bool = true) {
    process.stop()
    if removeFiles { try? FileManager.default.removeItem(atPath: dir) }
  }

  /// The public key line (`type base64 comment`) of one host key.
  func hostPublicKey(_ type: String = "ed25519") -> String {
    ((try? String(contentsOfFile: "\(dir)/host_\(type).pub", encoding: .utf8)) ?? "").trimmingCharacters(
      in: .whitespacesAndNewlines)
  }

  /// A known_hosts line for this server in `[127.0.0.1]:port` form.
  func knownHostsLine(_ type: String = "ed25519") -> String {
    let fields = hostPublicKey(type).split(separator: " ")
    return "[127.0.0.1]:\(port) \(fields[0]) \(fields[1])"
  }

  /// The fingerprint `ssh-keygen -lf` prints for a host key (`SHA256:...`).
  func fingerprint(_ type: String = "ed25519") throws -> String {
    let output = try sh("ssh-keygen -lf \(dir)/host_\(type).pub").output
    return String(output.split(separator: " ")[1])
  }

  /// Writes a known_hosts file in the server dir and returns its path.
  func writeKnownHosts(_ lines: [String], name: String = "known_hosts") throws -> String {
    let path = "\(dir)/\(name)"
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  var log: String { (try? String(contentsOfFile: "\(dir)/sshd.log", encoding: .utf8)) ?? "" }

  /// A target for this server.
  func target(user: String = "root", identityFiles: [String] = [TestKeys.shared.ed25519], password: String? = nil)
    -> SSHTarget
  {
    SSHTarget(
      host: HostID("testnode"), hostname: "127.0.0.1", port: port, user: user, identityFiles: identityFiles,
      password: password)
  }

  /// Options trusting this server (unless `knownHosts` is given), without any agent.
  func options(knownHosts: [String]? = nil, accept: Bool = false, passphrase: String? = nil, agent: String? = nil)
    throws -> SSHOptions
  {
    let files = try knownHosts ?? [writeKnownHosts([knownHostsLine()])]
    return SSHOptions(
      knownHostsFiles: files, acceptNewHostKeys: accept, connectTimeout: .seconds(10), commandTimeout: .seconds(120),
      agentSocket: agent, keyPassphrase: passphrase)
  }

  /// Connects as root with the plain ed25519 key.
  func connect() async throws -> SSHConnection {
    try await SSHConnection.connect(target(), options: options(), logger: testLogger)
  }
}

let testLogger = Logger(label: "svctrace.ssh.tests")

/// A local port that was free a moment ago.
func freePort() -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
  _ = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
  }
  return Int(UInt16(bigEndian: address.sin_port))
}

/// `true` when something accepts TCP connections on 127.0.0.1:port.
func canConnect(port: Int) -> Bool {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = UInt16(port).bigEndian
  return withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  } == 0
}

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Runs `body` and returns the RemoteError it throws (fails the test if it throws nothing else).
func remoteError(_ body: () async throws -> Void) async -> RemoteError? {
  do {
    try await body()
    Issue.record("expected a RemoteError, got success")
    return nil
  } catch let error as RemoteError {
    return error
  } catch {
    Issue.record("expected a RemoteError, got \(error)")
    return nil
  }
}

/// The local test user for password tests (created once when running as root).
enum TestUser {
  static let name = "svctssh"
  static let password = "svct-Pw-\(getpid())"
  static let ready: Bool = {
    guard isRoot else { return false }
    _ = try? sh("id \(name) >/dev/null 2>&1 || useradd -m -s /bin/sh \(name)")
    let result = try? sh("echo '\(name):\(password)' | chpasswd")
    return result?.status == 0
  }()
}
