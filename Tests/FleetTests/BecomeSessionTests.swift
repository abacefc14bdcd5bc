import Fleet
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite struct BecomeSessionTests {
  /// A login session as `deploy` on a node whose sudo wants a password.
  private func passwordSudoNode() -> ScriptedSession {
    ScriptedSession(host: HostID("n1")) { command, stdin in
      if command == "id -un" { return CommandResult(exitStatus: 0, stdout: Array("deploy\n".utf8)) }
      if command.hasPrefix("sudo -n") {
        return CommandResult(exitStatus: 1, stderr: Array("sudo: a password is required\n".utf8))
      }
      if command.hasPrefix("sudo -k -S -p '' -u root -- /bin/sh -c ") {
        let input = String(decoding: stdin ?? [], as: UTF8.self)
        guard input.hasPrefix("s3cr3t;$(x)\n") else {
          return CommandResult(exitStatus: 1, stderr: Array("sudo: 1 incorrect password attempt\n".utf8))
        }
        return CommandResult(exitStatus: 0, stdout: Array(input.dropFirst("s3cr3t;$(x)\n".count).utf8))
      }
      return CommandResult(exitStatus: 127)
    }
  }

  @Test func passwordGoesToStdinNeverToTheCommandLine() async throws {
    let base = passwordSudoNode()
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, password: "s3cr3t;$(x)"))
    let result = try await session.run("cat", stdin: Array("payload".utf8), timeout: nil)
    #expect(result.stdoutText == "payload")
    #expect(base.commands.last == "sudo -k -S -p '' -u root -- /bin/sh -c cat")
    #expect(!base.commands.contains { $0.contains("s3cr3t") })
  }

  @Test func wrongPasswordIsABecomeError() async throws {
    let session = BecomeSession(base: passwordSudoNode(), config: BecomeConfig(enabled: true, password: "nope"))
    let error = await #expect(throws: RemoteError.self) { try await session.probe() }
    #expect(error?.kind == .become)
    #expect(error?.message == "sudo refused: incorrect become password")
    #expect(error?.description.contains("nope") == false)
  }

  @Test func missingPasswordSaysHowToGiveOne() async throws {
    let session = BecomeSession(base: passwordSudoNode(), config: BecomeConfig(enabled: true))
    let error = await #expect(throws: RemoteError.self) { try await session.probe() }
    #expect(error?.message.contains("ansible_become_password") == true)
  }

  @Test func rootLoginSkipsSudo() async throws {
    let base = ScriptedSession(host: HostID("n1")) { command, _ in
      CommandResult(exitStatus: 0, stdout: Array((command == "id -un" ? "root\n" : "ran").utf8))
    }
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true))
    _ = try await session.run("iptables-save", stdin: nil, timeout: nil)
    #expect(base.commands == ["id -un", "iptables-save"])
  }

  @Test func shellFilesRoundTripRealFiles() async throws {
    // Given a real local shell, when a file with awkward bytes and name is written and read back,
    let session = LocalShellSession()
    let directory = try #require(try await session.run("mktemp -d").stdoutText.split(separator: "\n").first)
    let path = "\(directory)/it's a file;$(x)"
    let bytes: [UInt8] = Array("line one\nline two\n".utf8) + [0, 255, 10]
    try await session.writeFile(path, contents: bytes, mode: 0o640)
    // then the content, the offset read and the metadata are exact.
    #expect(try await session.readFile(path, offset: 0, maxLength: nil) == bytes)
    #expect(try await session.readFile(path, offset: 5, maxLength: 3) == Array("one".utf8))
    let stat = try #require(try await session.stat(path))
    #expect(stat.size == UInt64(bytes.count))
    #expect(stat.mode & 0o777 == 0o640)
    #expect(try await session.stat(path + ".absent") == nil)
    _ = try await session.run("rm -rf \(ShellQuote.quote(String(directory)))")
  }
}
