import Foundation
import SSH
import SVCTraceCore
import Testing

@Suite("exec over a real sshd", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct ExecTests {
  @Test("exit status, separate stdout/stderr, stdin round trip, exit signal")
  func basics() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    defer { Task { await connection.close() } }

    let status = try await connection.run("echo out; echo err >&2; exit 3")
    #expect(status.exitStatus == 3)
    #expect(status.exitSignal == nil)
    #expect(status.stdoutText == "out\n")
    #expect(status.stderrText == "err\n")

    let input = Array("line one\nline two with 'quotes' and $(nothing)\n".utf8) + [0, 255, 1]
    let echoed = try await connection.run("cat", stdin: input, timeout: .seconds(30))
    #expect(echoed.stdout == input)
    #expect(echoed.exitStatus == 0)

    // Many times the channel window (2 MiB): each time it fills, the write has to wait for a
    // window adjustment (libssh2 reports a full window as EAGAIN, or as 0 when it read a packet
    // meanwhile) and go on feeding stdin.
    let large = (0..<24_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    let counted = try await connection.run("wc -c", stdin: large, timeout: .seconds(60))
    #expect(counted.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "\(large.count)")

    let signalled = try await connection.run("kill -TERM $$")
    #expect(signalled.exitSignal == "TERM")
    #expect(signalled.exitStatus == -1)
    #expect(!signalled.succeeded)
  }

  @Test("per-command timeout closes the channel and throws .timeout; the connection stays usable")
  func timeout() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let error = await remoteError { _ = try await connection.run("sleep 30", stdin: nil, timeout: .seconds(1)) }
    #expect(error?.kind == .timeout)
    #expect(error?.operation.contains("sleep 30") == true)
    #expect(try await connection.run("echo alive").stdoutText == "alive\n")
    await connection.close()
  }

  @Test("cancelling a running `sleep 30` returns RemoteError .cancelled; the connection stays usable")
  func cancellation() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let task = Task { try await connection.run("sleep 30", stdin: nil, timeout: nil) }
    // Wait until the command is really running on the server.
    for _ in 0..<100 {
      if (try? await sh("pgrep -f '^sleep 30$'"))?.status == 0 { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    task.cancel()
    let error = await remoteError { _ = try await task.value }
    #expect(error?.kind == .cancelled)
    #expect(try await connection.run("echo alive").stdoutText == "alive\n")
    await connection.close()
  }

  @Test("50 MB of stdout arrives intact (sha256 on both sides)", .timeLimit(.minutes(5)))
  func largeStdout() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let remote = "\(server.dir)/big.bin"
    let made = try await connection.run("head -c 52428800 /dev/urandom > \(remote) && sha256sum < \(remote)")
    #expect(made.exitStatus == 0)
    let expected = String(made.stdoutText.prefix(64))
    let result = try await connection.run("cat \(remote)")
    #expect(result.stdout.count == 52_428_800)
    let local = "\(server.dir)/received.bin"
    _ = FileManager.default.createFile(atPath: local, contents: Data(result.stdout))
    let actual = String(try await sh("sha256sum < \(local)").output.prefix(64))
    #expect(actual == expected)
    await connection.close()
  }

  @Test("20 MB flooding stderr neither hangs nor truncates; stdout still arrives", .timeLimit(.minutes(5)))
  func stderrFlood() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let result = try await connection.run("head -c 20971520 /dev/zero >&2; echo done")
    #expect(result.stderr.count == 20_971_520)
    #expect(result.stdoutText == "done\n")
    #expect(result.exitStatus == 0)
    await connection.close()
  }

  @Test("connection refused → .unreachable")
  func refused() async throws {
    let port = freePort()
    let target = SSHTarget(host: HostID("down"), hostname: "127.0.0.1", port: port, user: "root", identityFiles: [])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        target, options: SSHOptions(knownHostsFiles: [], agentSocket: nil), logger: testLogger)
    }
    #expect(error?.kind == .unreachable)
    #expect(error?.host == HostID("down"))
    #expect(error?.isUnreachable == true)
  }

  @Test("a peer that accepts TCP but never speaks SSH times out in connect")
  func silentPeer() async throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    listen(fd, 4)
    let port = Int(UInt16(bigEndian: address.sin_port))
    let target = SSHTarget(host: HostID("silent"), hostname: "127.0.0.1", port: port, user: "root", identityFiles: [])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        target, options: SSHOptions(knownHostsFiles: [], connectTimeout: .seconds(1), agentSocket: nil),
        logger: testLogger)
    }
    #expect(error?.kind == .timeout)
    #expect(error?.operation == "connect")
    #expect(error?.isUnreachable == true)
  }
}

@Suite("Concurrency and cancellation of connects", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct ConcurrencyTests {
  @Test("cancelling a connect that hangs in the handshake returns .cancelled (long connect timeout)")
  func cancelConnect() async throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    listen(fd, 4)
    let target = SSHTarget(
      host: HostID("silent"), hostname: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)), user: "root",
      identityFiles: [])
    let task = Task {
      try await SSHConnection.connect(
        target, options: SSHOptions(knownHostsFiles: [], connectTimeout: .seconds(600), agentSocket: nil),
        logger: testLogger)
    }
    try await Task.sleep(for: .milliseconds(300))
    task.cancel()
    let error = await remoteError { _ = try await task.value }
    #expect(error?.kind == .cancelled)
    #expect(error?.operation == "connect")
  }

  @Test("ten connections run blocking-looking commands at once; none starves the others")
  func parallelConnections() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let options = try server.options()
    let outputs = try await withThrowingTaskGroup(of: String.self) { group in
      for index in 0..<10 {
        group.addTask {
          let connection = try await SSHConnection.connect(server.target(), options: options, logger: testLogger)
          let result = try await connection.run("sleep 1; echo \(index)")
          await connection.close()
          return result.stdoutText
        }
      }
      var all: [String] = []
      for try await output in group { all.append(output) }
      return all
    }
    #expect(Set(outputs) == Set((0..<10).map { "\($0)\n" }))
  }

  @Test("a bastion that cannot be reached is reported against the target host, naming the bastion")
  func bastionDown() async throws {
    var target = SSHTarget(host: HostID("node7"), hostname: "127.0.0.1", port: 22, user: "root", identityFiles: [])
    target.proxyJump = [
      SSHTarget(host: HostID("gw"), hostname: "127.0.0.1", port: freePort(), user: "root", identityFiles: [])
    ]
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        target, options: SSHOptions(knownHostsFiles: [], agentSocket: nil), logger: testLogger)
    }
    #expect(error?.host == HostID("node7"))
    #expect(error?.kind == .unreachable)
    #expect(error?.message.contains("via bastion gw") == true)
  }
}
