import Foundation
import SSH
import SVCTraceCore
import Testing

@Suite("SFTP files and ProxyJump over a real sshd", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct SFTPAndProxyTests {
  @Test("readFile from an offset, in chunks; stat; missing files")
  func readAndStat() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let path = "\(server.dir)/data.txt"
    let content = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
    _ = FileManager.default.createFile(atPath: path, contents: Data(content))
    try await sh("chmod 640 \(path) && touch -d @1700000000 \(path)")
    let connection = try await server.connect()

    #expect(try await connection.readFile(path, offset: 0, maxLength: nil) == content)
    #expect(try await connection.readFile(path, offset: 1000, maxLength: 10) == Array(content[1000..<1010]))
    #expect(try await connection.readFile(path, offset: 150_000, maxLength: nil) == Array(content[150_000...]))
    #expect(try await connection.readFile(path, offset: 300_000, maxLength: nil) == [])

    let info = try #require(try await connection.stat(path))
    #expect(info.size == 200_000)
    #expect(info.mode & 0o7777 == 0o640)
    #expect(info.mode & 0o170000 == 0o100000)
    #expect(info.uid == 0 && info.gid == 0)
    #expect(info.mtime == 1_700_000_000)
    #expect(try await connection.stat("\(server.dir)/nope") == nil)
    #expect(try await connection.stat(server.dir)?.isDirectory == true)

    let missing = await remoteError {
      _ = try await connection.readFile("\(server.dir)/nope", offset: 0, maxLength: nil)
    }
    #expect(missing?.kind == .file)
    #expect(missing?.message.contains("no such file") == true)
    await connection.close()
  }

  @Test("writeFile: temp file then mv; mode applied; existing owner kept; read back", .enabled(if: isRoot))
  func writeThenRead() async throws {
    #expect(await TestUser.ready)
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let connection = try await server.connect()
    let path = "\(server.dir)/conf.d/drop-in.conf"
    try FileManager.default.createDirectory(atPath: "\(server.dir)/conf.d", withIntermediateDirectories: true)
    let first = Array("first version\n".utf8)
    try await connection.writeFile(path, contents: first, mode: 0o644)
    #expect(try await connection.readFile(path, offset: 0, maxLength: nil) == first)
    #expect(try await connection.stat(path)?.mode == 0o100644)

    try await sh("chown \(TestUser.name):\(TestUser.name) \(path)")
    let inodeBefore = try await sh("stat -c %i \(path)").output
    let second = Array(String(repeating: "second version, longer\n", count: 20_000).utf8)
    try await connection.writeFile(path, contents: second, mode: 0o600)
    #expect(try await connection.readFile(path, offset: 0, maxLength: nil) == second)
    let owner = try await sh("stat -c '%U %a' \(path)").output.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(owner == "\(TestUser.name) 600")
    #expect(try await sh("stat -c %i \(path)").output != inodeBefore)  // replaced by rename, not rewritten
    #expect(try await sh("ls -a \(server.dir)/conf.d | grep -c svctrace || true").output.hasPrefix("0"))

    let error = await remoteError {
      try await connection.writeFile("\(server.dir)/no/such/dir/file", contents: [1], mode: 0o644)
    }
    #expect(error?.kind == .file)
    await connection.close()
  }

  @Test("ProxyJump: the target is reached through a direct-tcpip channel of the bastion; both keys verified")
  func proxyJump() async throws {
    let bastion = try await TestSSHD.start(hostKeyTypes: ["ecdsa"])
    defer { bastion.stop() }
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let knownHosts = try server.writeKnownHosts([bastion.knownHostsLine("ecdsa"), server.knownHostsLine()])
    var target = server.target()
    target.proxyJump = [bastion.target()]
    let options = try server.options(knownHosts: [knownHosts])
    let connection = try await SSHConnection.connect(target, options: options, logger: testLogger)
    #expect(await connection.hostKeyFingerprint == (try await server.fingerprint()))
    #expect(try await connection.run("echo via bastion").stdoutText == "via bastion\n")
    let big = try await connection.run("head -c 3000000 /dev/zero")
    #expect(big.stdout.count == 3_000_000)
    #expect(
      try await connection.readFile("/etc/hostname", offset: 0, maxLength: nil)
        == Array(try String(contentsOfFile: "/etc/hostname", encoding: .utf8).utf8))
    await connection.close()
    #expect(bastion.log.contains("direct-tcpip") || bastion.log.contains("direct_tcpip"))
    #expect(bastion.log.contains("port \(server.port)"))

    // The ProxyJump chain of the same sshd to itself also works.
    var selfJump = server.target()
    selfJump.proxyJump = [server.target()]
    let loop = try await SSHConnection.connect(selfJump, options: options, logger: testLogger)
    #expect(try await loop.run("echo loop").stdoutText == "loop\n")
    await loop.close()
  }

  @Test("ProxyJump to a closed port: the target is reported unreachable by name; unknown target key refused")
  func proxyJumpFailures() async throws {
    let bastion = try await TestSSHD.start()
    defer { bastion.stop() }
    let knownHosts = try bastion.writeKnownHosts([bastion.knownHostsLine()])
    var target = await SSHTarget(
      host: HostID("behind"), hostname: "127.0.0.1", port: freePort(), user: "root",
      identityFiles: [TestKeys.shared.ed25519])
    target.proxyJump = [bastion.target()]
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        target, options: bastion.options(knownHosts: [knownHosts]), logger: testLogger)
    }
    #expect(error?.kind == .unreachable)
    #expect(error?.host == HostID("behind"))

    let server = try await TestSSHD.start()
    defer { server.stop() }
    var unknown = server.target()
    unknown.proxyJump = [bastion.target()]
    let keyError = await remoteError {
      _ = try await SSHConnection.connect(
        unknown, options: bastion.options(knownHosts: [knownHosts]), logger: testLogger)
    }
    #expect(keyError?.kind == .hostKey)
    #expect(keyError?.message.contains(try await server.fingerprint()) == true)
  }
}
