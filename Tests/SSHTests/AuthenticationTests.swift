import Foundation
import SSH
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite("Authentication against a real sshd", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct AuthenticationTests {
  @Test("ed25519 key file: connects, runs a command, reports the host key fingerprint as ssh-keygen does")
  func ed25519Key() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let result = try await connection.run("echo hello; id -un")
    #expect(result.exitStatus == 0)
    #expect(result.stdoutText == "hello\nroot\n")
    #expect(await connection.hostKeyFingerprint == (try await server.fingerprint()))
    #expect(await connection.hostKeyType == "ssh-ed25519")
    await connection.close()
    await connection.close()  // idempotent
    let afterClose = await remoteError { _ = try await connection.run("true") }
    #expect(afterClose?.kind == .protocolError)
  }

  @Test("passphrase-protected ecdsa and ed25519 keys work with the passphrase")
  func protectedKeys() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    for key in [await TestKeys.shared.ecdsaProtected, await TestKeys.shared.ed25519Protected] {
      let connection = try await SSHConnection.connect(
        server.target(identityFiles: [key]), options: server.options(passphrase: TestKeys.passphrase),
        logger: testLogger)
      #expect(try await connection.run("echo ok").stdoutText == "ok\n")
      await connection.close()
    }
  }

  @Test("a passphrase-protected key without a passphrase fails authentication and says why")
  func protectedKeyWithoutPassphrase() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(identityFiles: [TestKeys.shared.ecdsaProtected]), options: server.options(), logger: testLogger)
    }
    #expect(error?.kind == .authentication)
    #expect(error?.message.contains("passphrase-protected") == true)
    #expect(error?.isUnreachable == true)
  }

  @Test("a wrong passphrase is reported, and the passphrase itself never appears in the error")
  func wrongPassphrase() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let secret = "not-the-passphrase-42"
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(identityFiles: [TestKeys.shared.ed25519Protected]), options: server.options(passphrase: secret),
        logger: testLogger)
    }
    #expect(error?.kind == .authentication)
    #expect(await error?.message.contains(TestKeys.shared.ed25519Protected) == true)
    #expect(error?.description.contains(secret) == false)
  }

  @Test("ssh-agent: a key only the agent holds authenticates")
  func agent() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let dir = try makeTempDir("agent")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let socket = "\(dir)/agent.sock"
    let agent = try await BackgroundProcess.start(["/usr/bin/ssh-agent", "-D", "-a", socket])
    defer { agent.stop() }
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) {
      try await Task.sleep(for: .milliseconds(20))
    }
    let added = try await sh("ssh-add \(TestKeys.shared.agentOnly)", environment: ["SSH_AUTH_SOCK": socket])
    #expect(added.status == 0, "\(added.output)")

    // Without the agent, no key file is offered: authentication must fail...
    let refused = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(identityFiles: []), options: server.options(), logger: testLogger)
    }
    #expect(refused?.kind == .authentication)
    // ... and with it, the agent's key is accepted.
    let connection = try await SSHConnection.connect(
      server.target(identityFiles: []), options: server.options(agent: socket), logger: testLogger)
    #expect(try await connection.run("echo agent").stdoutText == "agent\n")
    await connection.close()
  }

  @Test("password authentication for a local user", .enabled(if: isRoot, "needs root to create the svctssh user"))
  func password() async throws {
    #expect(await TestUser.ready, "could not create user \(TestUser.name)")
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await SSHConnection.connect(
      server.target(user: TestUser.name, identityFiles: [], password: TestUser.password), options: server.options(),
      logger: testLogger)
    #expect(try await connection.run("id -un").stdoutText == "\(TestUser.name)\n")
    await connection.close()

    let wrong = "wrong-\(TestUser.password)"
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(user: TestUser.name, identityFiles: [], password: wrong), options: server.options(),
        logger: testLogger)
    }
    #expect(error?.kind == .authentication)
    #expect(error?.description.contains(wrong) == false)
  }

  @Test(
    "keyboard-interactive answered with the password", .enabled(if: isRoot, "needs root to create the svctssh user"))
  func keyboardInteractive() async throws {
    #expect(await TestUser.ready, "could not create user \(TestUser.name)")
    let server = try await TestSSHD.start(passwordAuthentication: false)
    defer { server.stop() }
    let connection = try await SSHConnection.connect(
      server.target(user: TestUser.name, identityFiles: [], password: TestUser.password), options: server.options(),
      logger: testLogger)
    #expect(try await connection.run("id -un").stdoutText == "\(TestUser.name)\n")
    await connection.close()
  }

  @Test("an unauthorized key is refused with the server's methods and the key named")
  func unauthorizedKey() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(identityFiles: [TestKeys.shared.unauthorized]), options: server.options(), logger: testLogger)
    }
    #expect(error?.kind == .authentication)
    #expect(await error?.message.contains(TestKeys.shared.unauthorized) == true)
    #expect(error?.message.contains("publickey") == true)
  }

  @Test("an authorized ssh-rsa key rejected because libssh2 signs with SHA-1: the error says so and gives the fix")
  func rsaKeyOnOldLibssh2() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(identityFiles: [TestKeys.shared.rsa]), options: server.options(), logger: testLogger)
    }
    // OpenSSH 9.2 refuses ssh-rsa (SHA-1) signatures; libssh2 1.10 can make no other.
    #expect(error?.kind == .authentication)
    #expect(error?.message.contains("SHA-1") == true)
    #expect(error?.message.contains("ed25519") == true)
    #expect(error?.message.contains("1.11") == true)
  }
}
