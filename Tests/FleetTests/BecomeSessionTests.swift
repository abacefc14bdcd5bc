import Fleet
import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// A login shell on this machine whose `id -un` says `deploy` (or `loginUser`) and whose `sudo` is
/// a fake that behaves like sudo under policy `mode` (`nopasswd`; `password`, the password being
/// `s3cr3t;$(x)`; `none`: not in sudoers), so that the become wrapper's node-side choice runs for real.
final class FakeSudoNode: Sendable {
  let directory: String
  let login: LocalShellSession

  init(mode: String, loginUser: String = "deploy") throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-sudo-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let sudo = """
      #!/bin/sh
      S=0
      while [ $# -gt 0 ]; do
        case "$1" in -n|-k) ;; -S) S=1 ;; -p|-u) shift ;; --) shift; break ;; esac; shift
      done
      echo "$*" >> "\(directory)/sudo.log"
      case "\(mode)" in
        nopasswd) exec "$@" ;;
        password)
          if [ $S = 1 ]; then
            IFS= read -r pw
            [ "$pw" = 's3cr3t;$(x)' ] || { echo 'sudo: 1 incorrect password attempt' >&2; exit 1; }
            exec "$@"
          fi
          echo 'sudo: a password is required' >&2; exit 1 ;;
        *) echo 'deploy is not in the sudoers file.  This incident will be reported.' >&2; exit 1 ;;
      esac
      """
    let id = """
      #!/bin/sh
      [ "$1" = -un ] && { echo \(loginUser); exit 0; }
      exec /usr/bin/id "$@"
      """
    for (name, text) in [("sudo", sudo), ("id", id)] {
      try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
      try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/" + name)
    }
    login = LocalShellSession(host: HostID("n1"), prefix: ["env", "PATH=\(directory):/usr/sbin:/usr/bin:/sbin:/bin"])
  }

  /// What the fake sudo was asked to run, one line per call.
  var sudoCalls: [String] {
    ((try? String(contentsOfFile: directory + "/sudo.log", encoding: .utf8)) ?? "").split(separator: "\n").map(
      String.init)
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

@Suite struct BecomeSessionTests {
  @Test func withoutPasswordTheFirstCommandIsTheOnlyExec() async throws {
    let node = try FakeSudoNode(mode: "nopasswd")
    defer { node.remove() }
    let base = CountingSession(node.login)
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true))
    let result = try await session.run("cat; echo err >&2; exit 3", stdin: Array("payload".utf8), timeout: nil)
    #expect(result.stdoutText == "payload")
    #expect(result.stderrText == "err\n", "the wrapper's marker line is removed")
    #expect(result.exitStatus == 3)
    #expect(base.execs == 1)
    // Later commands use the learned form directly.
    let second = try await session.run("id -u", stdin: nil, timeout: nil)
    #expect(second.stdoutText == "\(getuid())\n")
    #expect(base.commands.last == "sudo -n -u root -- /bin/sh -c 'id -u'")
    #expect(base.execs == 2)
  }

  @Test func passwordGoesToStdinNeverToTheCommandLine() async throws {
    let node = try FakeSudoNode(mode: "password")
    defer { node.remove() }
    let base = CountingSession(node.login)
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, password: "s3cr3t;$(x)"))
    let result = try await session.run("cat", stdin: Array("payload".utf8), timeout: nil)
    #expect(result.stdoutText == "payload")
    #expect(result.stderrText.isEmpty)
    #expect(base.execs == 1)
    let again = try await session.run("cat", stdin: Array("more".utf8), timeout: nil)
    #expect(again.stdoutText == "more")
    #expect(base.commands.last == "sudo -k -S -p '' -u root -- /bin/sh -c cat")
    #expect(!base.commands.contains { $0.contains("s3cr3t") })
  }

  @Test func aPasswordThatSudoDoesNotNeedIsNotFedToTheCommand() async throws {
    // NOPASSWD sudo does not read standard input: the wrapper's shell reads the password line itself.
    let node = try FakeSudoNode(mode: "nopasswd")
    defer { node.remove() }
    let session = BecomeSession(base: node.login, config: BecomeConfig(enabled: true, password: "s3cr3t;$(x)"))
    for payload in ["payload", "second"] {
      let result = try await session.run("cat", stdin: Array(payload.utf8), timeout: nil)
      #expect(result.stdoutText == payload)
    }
  }

  @Test func wrongPasswordIsABecomeError() async throws {
    let node = try FakeSudoNode(mode: "password")
    defer { node.remove() }
    let session = BecomeSession(base: node.login, config: BecomeConfig(enabled: true, password: "nope"))
    let error = await #expect(throws: RemoteError.self) {
      try await session.run("touch \(node.directory)/ran", stdin: nil, timeout: nil)
    }
    #expect(error?.kind == .become)
    #expect(error?.message == "sudo refused: incorrect become password")
    #expect(error?.description.contains("nope") == false)
    #expect(!FileManager.default.fileExists(atPath: node.directory + "/ran"))
  }

  @Test func missingPasswordSaysHowToGiveOne() async throws {
    let node = try FakeSudoNode(mode: "password")
    defer { node.remove() }
    let session = BecomeSession(base: node.login, config: BecomeConfig(enabled: true))
    let error = await #expect(throws: RemoteError.self) { try await session.probe() }
    #expect(error?.kind == .become)
    #expect(error?.message.contains("a password is required") == true)
    #expect(error?.message.contains("ansible_become_password") == true)
  }

  @Test func noSudoRightsIsABecomeErrorWithSudosReason() async throws {
    let node = try FakeSudoNode(mode: "none")
    defer { node.remove() }
    let session = BecomeSession(base: node.login, config: BecomeConfig(enabled: true))
    let error = await #expect(throws: RemoteError.self) {
      try await session.run("touch \(node.directory)/ran", stdin: nil, timeout: nil)
    }
    #expect(error?.kind == .become)
    #expect(error?.message.contains("not in the sudoers file") == true)
    #expect(!FileManager.default.fileExists(atPath: node.directory + "/ran"))
  }

  @Test(arguments: [nil, "s3cr3t;$(x)"])
  func rootLoginSkipsSudo(password: String?) async throws {
    let node = try FakeSudoNode(mode: "none", loginUser: "root")
    defer { node.remove() }
    let base = CountingSession(node.login)
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, password: password))
    let first = try await session.run("cat", stdin: Array("one".utf8), timeout: nil)
    #expect(first.stdoutText == "one")
    #expect(try await session.run("echo ran", stdin: nil, timeout: nil).stdoutText == "ran\n")
    #expect(base.commands.last == "echo ran")
    #expect(base.execs == 2)
    #expect(node.sudoCalls.isEmpty)
  }

  @Test func probeCostsNothingOnceACommandRan() async throws {
    let node = try FakeSudoNode(mode: "nopasswd")
    defer { node.remove() }
    let base = CountingSession(node.login)
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true))
    _ = try await session.run("true", stdin: nil, timeout: nil)
    try await session.probe()
    #expect(base.execs == 1)
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
