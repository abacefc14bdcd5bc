import Foundation
import SSH
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite("bounded output and dead peers over a real sshd", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct BoundsTests {
  /// A capped stream: a command that never stops writing (`yes`) fails promptly with
  /// `.outputTooLarge` instead of filling memory until the timeout; the connection stays usable.
  @Test("stdout past its cap: .outputTooLarge naming host, command and limit, no hang", .timeLimit(.minutes(2)))
  func stdoutCap() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    // Without the cap, `yes` would run into the 90-s timeout and fail with `.timeout`.
    let error = await remoteError {
      _ = try await connection.run(
        "yes svctrace", stdin: nil, timeout: .seconds(90), limits: OutputLimits(stdout: 1 << 20, stderr: 1 << 20))
    }
    #expect(error?.kind == .outputTooLarge)
    #expect(error?.host == HostID("testnode"))
    #expect(error?.operation.contains("yes svctrace") == true)
    #expect(error?.message.contains("more than 1 MiB to stdout") == true)
    #expect(try await connection.run("echo alive").stdoutText == "alive\n")
    await connection.close()
  }

  @Test("stderr past its cap: .outputTooLarge for stderr", .timeLimit(.minutes(2)))
  func stderrCap() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let error = await remoteError {
      _ = try await connection.run(
        "yes flood >&2", stdin: nil, timeout: .seconds(90), limits: OutputLimits(stdout: 1 << 20, stderr: 64 << 10))
    }
    #expect(error?.kind == .outputTooLarge)
    #expect(error?.message.contains("more than 64 KiB to stderr") == true)
    // Exactly at the cap is fine.
    let atCap = try await connection.run(
      "head -c 65536 /dev/zero >&2", stdin: nil, timeout: .seconds(30),
      limits: OutputLimits(stdout: 1 << 20, stderr: 64 << 10))
    #expect(atCap.stderr.count == 65536)
    await connection.close()
  }

  @Test("the connection's default limits apply to run without limits", .timeLimit(.minutes(2)))
  func defaultLimitsFromOptions() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    var options = try server.options()
    options.outputLimits = OutputLimits(stdout: 100_000, stderr: 100)
    let connection = try await SSHConnection.connect(server.target(), options: options, logger: testLogger)
    let error = await remoteError { _ = try await connection.run("head -c 100001 /dev/zero") }
    #expect(error?.kind == .outputTooLarge)
    #expect(try await connection.run("head -c 100000 /dev/zero").stdout.count == 100_000)

    // SFTP reads: a whole-file read is held to the stdout cap; an explicit length is the caller's.
    let path = "\(server.dir)/big.log"
    _ = try await connection.check("head -c 150000 /dev/zero > \(path)", operation: "make a file")
    let readError = await remoteError { _ = try await connection.readFile(path, offset: 0, maxLength: nil) }
    #expect(readError?.kind == .outputTooLarge)
    #expect(readError?.operation.contains(path) == true)
    #expect(try await connection.readFile(path, offset: 60_000, maxLength: nil).count == 90_000)
    #expect(try await connection.readFile(path, offset: 0, maxLength: 120_000).count == 120_000)
    await connection.close()
  }

  @Test("a default command timeout applies when the caller gives none")
  func defaultCommandTimeout() async throws {
    #expect(SSHOptions(agentSocket: nil).commandTimeout == RemoteDefaults.commandTimeout)
    let server = try await TestSSHD.start()
    defer { server.stop() }
    var options = try server.options()
    options.commandTimeout = .seconds(1)
    let connection = try await SSHConnection.connect(server.target(), options: options, logger: testLogger)
    // Without the 1-s default the command would end normally after 30 s.
    let error = await remoteError { _ = try await connection.run("sleep 30") }
    #expect(error?.kind == .timeout)
    await connection.close()
  }

  /// A frozen server (its sshd processes stopped: the kernel still ACKs, so TCP sees nothing
  /// wrong) is detected by unanswered SSH keepalives within interval × count, not after the
  /// 2-minute command timeout.
  @Test("a server that stops answering fails the command with .connectionLost", .timeLimit(.minutes(2)))
  func deadPeerIsDetectedByKeepalives() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    var options = try server.options()
    options.keepaliveInterval = .seconds(2)
    options.keepaliveCountMax = 2
    let connection = try await SSHConnection.connect(server.target(), options: options, logger: testLogger)
    #expect(try await connection.run("echo alive").stdoutText == "alive\n")

    // The per-connection sshd processes (not the listener, not the command).
    let find = """
      descendants() { for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
      for p in $(descendants \(server.process.pid)); do [ "$(ps -o comm= -p "$p")" = sshd ] && echo "$p"; done; true
      """
    // A sleep only this test runs (GNU sleep takes fractions; the port makes it unique).
    let sleep = "sleep 60.\(server.port)"
    let task = Task { try await connection.run("\(sleep); echo done", stdin: nil, timeout: .seconds(100)) }
    var pids: [String] = []
    var sleeper = ""
    for _ in 0..<100 {
      if let found = try? await sh("pgrep -f '^\(sleep)$'"), found.status == 0 {
        sleeper = found.output.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        pids = try await sh(find).output.split(whereSeparator: \.isNewline).map(String.init).filter { Int($0) != nil }
        break
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    try #require(!pids.isEmpty, "no per-connection sshd process found")
    try await withCleanup {
      _ = try await sh("kill -STOP \(pids.joined(separator: " "))")
      let error = await remoteError { _ = try await task.value }
      // Detected by the keepalives (the message says so), not left hanging for the command's
      // 100-s timeout (which would be `.timeout`).
      #expect(error?.kind == .connectionLost)
      #expect(error?.message.contains("keepalives") == true)
      await connection.close()
    } cleanup: {
      // Only the processes this test stopped or started, by id.
      _ = try? await sh("kill -CONT \(pids.joined(separator: " ")) 2>/dev/null; true")
      if !sleeper.isEmpty { _ = try? await sh("kill \(sleeper) 2>/dev/null; true") }
    }
  }

  @Test("a live but silent command is not mistaken for a dead server", .timeLimit(.minutes(2)))
  func silentCommandSurvivesKeepalives() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    var options = try server.options()
    options.keepaliveInterval = .seconds(2)
    options.keepaliveCountMax = 2
    let connection = try await SSHConnection.connect(server.target(), options: options, logger: testLogger)
    // 9 s of silence: more than twice the 4 s budget, answered keepalives keep it alive.
    let result = try await connection.run("sleep 9; echo done", stdin: nil, timeout: .seconds(60))
    #expect(result.stdoutText == "done\n")
    await connection.close()
  }
}
