import Foundation
import SSH
import SVCTraceCore
import Testing

@Suite("Host-key verification against known_hosts", .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct HostKeyTests {
  @Test("unknown host: refused before auth, showing the SHA256 fingerprint exactly as ssh-keygen -lf prints it")
  func unknownHostRefused() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let knownHosts = try server.writeKnownHosts(["# nothing here"])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(), options: server.options(knownHosts: [knownHosts]), logger: testLogger)
    }
    #expect(error?.kind == .hostKey)
    #expect(error?.operation == "verify host key")
    #expect(error?.message.contains(try await server.fingerprint()) == true)
    #expect(error?.message.contains("ssh-ed25519") == true)
    #expect(error?.message.contains("[127.0.0.1]:\(server.port)") == true)
    // Refused before authentication: sshd never saw a publickey attempt.
    #expect(!server.log.contains("Accepted publickey"))
  }

  @Test("accept-new: records the key in the first known_hosts file (created 0600), then a strict connect succeeds")
  func acceptNew() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let knownHosts = "\(server.dir)/sub/known_hosts"
    let first = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: [knownHosts], accept: true), logger: testLogger)
    await first.close()
    let text = try String(contentsOfFile: knownHosts, encoding: .utf8)
    #expect(text == server.knownHostsLine() + "\n")
    let attributes = try FileManager.default.attributesOfItem(atPath: knownHosts)
    #expect((attributes[.posixPermissions] as? Int) == 0o600)
    // ssh itself agrees with what was recorded.
    let lookup = try await sh("ssh-keygen -F '[127.0.0.1]:\(server.port)' -f \(knownHosts)")
    #expect(lookup.status == 0)

    let second = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: [knownHosts], accept: false), logger: testLogger)
    #expect(try await second.run("echo again").stdoutText == "again\n")
    await second.close()
    #expect(try String(contentsOfFile: knownHosts, encoding: .utf8) == text)  // nothing appended twice
  }

  @Test("changed key: always refused, even with accept-new, naming the known_hosts file and line of the old key")
  func changedKeyRefused() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let other = try await TestSSHD.start()  // a different ed25519 host key
    defer { other.stop() }
    let oldLine = other.knownHostsLine().replacingOccurrences(of: "\(other.port)", with: "\(server.port)")
    let knownHosts = try server.writeKnownHosts([
      "# fleet keys", "[10.0.0.9]:22 " + oldLine.split(separator: " ").dropFirst().joined(separator: " "), oldLine,
    ])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(), options: server.options(knownHosts: [knownHosts], accept: true), logger: testLogger)
    }
    #expect(error?.kind == .hostKey)
    #expect(error?.message.contains("CHANGED") == true)
    #expect(error?.message.contains("\(knownHosts):3") == true)
    #expect(error?.message.contains(try await server.fingerprint()) == true)
    #expect(error?.message.contains(try await other.fingerprint()) == true)
    #expect(try String(contentsOfFile: knownHosts, encoding: .utf8).split(separator: "\n").count == 3)  // untouched
  }

  @Test("hashed |1| entries match (ssh-keygen -H), and a hashed old key is reported with its line")
  func hashedEntries() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let knownHosts = try server.writeKnownHosts([
      "[127.0.0.2]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ",
      server.knownHostsLine(),
    ])
    let hashed = try await sh("ssh-keygen -H -f \(knownHosts)")
    #expect(hashed.status == 0, "\(hashed.output)")
    let text = try String(contentsOfFile: knownHosts, encoding: .utf8)
    #expect(text.hasPrefix("|1|") && !text.contains("127.0.0.1"))
    let connection = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: [knownHosts]), logger: testLogger)
    await connection.close()

    let other = try await TestSSHD.start()
    defer { other.stop() }
    let stale = try other.writeKnownHosts([
      "# header", other.knownHostsLine().replacingOccurrences(of: "\(other.port)", with: "\(server.port)"),
    ])
    _ = try await sh("ssh-keygen -H -f \(stale)")
    // ssh-keygen -H keeps comment lines, so the key is on line 2.
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(), options: server.options(knownHosts: [stale]), logger: testLogger)
    }
    #expect(error?.kind == .hostKey)
    #expect(error?.message.contains("\(stale):2") == true)
  }

  @Test("a plain `127.0.0.1` line does not vouch for port \u{2260} 22: ssh only looks up [host]:port")
  func portFormIsRequired() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let plain = "127.0.0.1 " + server.knownHostsLine().split(separator: " ").dropFirst().joined(separator: " ")
    let knownHosts = try server.writeKnownHosts([plain])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(), options: server.options(knownHosts: [knownHosts]), logger: testLogger)
    }
    #expect(error?.kind == .hostKey)
    #expect(error?.message.contains("not known") == true)
  }

  @Test("key type matched to the offered key: a stale line of another type is no mismatch; known type is preferred")
  func keyTypeMatching() async throws {
    let server = try await TestSSHD.start(hostKeyTypes: ["ed25519", "ecdsa"])
    defer { server.stop() }
    // Only the ECDSA key is known: the handshake must ask for ECDSA (method_pref) and succeed.
    let ecdsaOnly = try server.writeKnownHosts([server.knownHostsLine("ecdsa")], name: "ecdsa_only")
    let connection = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: [ecdsaOnly]), logger: testLogger)
    #expect(await connection.hostKeyType == "ecdsa-sha2-nistp256")
    #expect(await connection.hostKeyFingerprint == (try await server.fingerprint("ecdsa")))
    await connection.close()

    // The ed25519 key is known, plus a *wrong* ECDSA line: type-aware checking accepts.
    let other = try await TestSSHD.start(hostKeyTypes: ["ecdsa"])
    defer { other.stop() }
    let wrongECDSA = other.knownHostsLine("ecdsa").replacingOccurrences(of: "\(other.port)", with: "\(server.port)")
    let mixed = try server.writeKnownHosts([wrongECDSA, server.knownHostsLine("ed25519")], name: "mixed")
    let second = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: [mixed]), logger: testLogger)
    #expect(await second.hostKeyType == "ssh-ed25519")
    await second.close()
  }

  @Test("accept-new does not record a key of a new type for a host known with another type: a changed key")
  func acceptNewRefusesNewKeyType() async throws {
    let server = try await TestSSHD.start(hostKeyTypes: ["ed25519"])
    defer { server.stop() }
    let other = try await TestSSHD.start(hostKeyTypes: ["ecdsa"])
    defer { other.stop() }
    // Only an ECDSA key is known; the server has none, so it offers ed25519 despite the preference.
    let ecdsaLine = other.knownHostsLine("ecdsa").replacingOccurrences(of: "\(other.port)", with: "\(server.port)")
    let knownHosts = try server.writeKnownHosts(["# ecdsa only", ecdsaLine])
    let error = await remoteError {
      _ = try await SSHConnection.connect(
        server.target(), options: server.options(knownHosts: [knownHosts], accept: true), logger: testLogger)
    }
    #expect(error?.kind == .hostKey)
    #expect(error?.message.contains("HOST KEY CHANGED") == true)
    #expect(error?.message.contains("\(knownHosts):2 records a ecdsa-sha2-nistp256 key") == true)
    #expect(error?.message.contains(try await server.fingerprint()) == true)
    #expect(try String(contentsOfFile: knownHosts, encoding: .utf8) == "# ecdsa only\n" + ecdsaLine + "\n")
    #expect(!server.log.contains("Accepted publickey"))
  }

  @Test("several known_hosts files are all consulted")
  func severalFiles() async throws {
    let server = try await TestSSHD.start()
    defer { server.stop() }
    let empty = try server.writeKnownHosts([""], name: "empty")
    let real = try server.writeKnownHosts([server.knownHostsLine()], name: "real")
    let connection = try await SSHConnection.connect(
      server.target(), options: server.options(knownHosts: ["\(server.dir)/missing", empty, real]), logger: testLogger)
    await connection.close()
  }
}
