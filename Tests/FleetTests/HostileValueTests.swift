import Fleet
import Foundation
import Inventory
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// Hardening issue #13: inventory values cannot break out of the commands they end up in.
@Suite struct HostileValueTests {
  static let combiningQuote = "root'\u{301};touch /tmp/pwned;#"

  private func resolver(_ configure: (inout ConnectionOverrides) -> Void = { _ in }) -> HostResolver {
    var overrides = ConnectionOverrides()
    configure(&overrides)
    return HostResolver(sshConfig: nil, overrides: overrides, localUser: "deploy")
  }

  @Test(arguments: [
    ("ansible_become_user", combiningQuote),
    ("ansible_user", "deploy\nroot"),
    ("svctrace_log_path", "/var/log/x'$(touch /tmp/pwned)'"),
    ("svctrace_state_dir", "/var/lib/../../tmp"),
    ("ansible_host", "-oProxyCommand=sh"),
    ("ansible_become_password", "s3cret\nrm -rf /"),
  ])
  func resolutionRefusesNamingHostAndVariable(_ variable: String, _ value: String) {
    // Given a host built without an inventory file (nothing checked it yet),
    var vars: [String: InventoryValue] = ["ansible_host": .string("10.0.0.7")]
    vars[variable] = .string(value)
    let host = InventoryHost(name: "node7", vars: vars)
    // when it is resolved, then the variable and host are named, and a secret is not shown.
    let error = #expect(throws: UnsafeValueError.self) { try resolver().resolve([host]) }
    #expect(error?.host == "node7")
    #expect(error?.variable == variable)
    #expect(error?.description.hasPrefix("host node7: \(variable) ") == true)
    if variable.contains("pass") { #expect(error?.description.contains("s3cret") == false) }
  }

  @Test func commandLineOverridesAreCheckedToo() {
    let host = InventoryHost(name: "n1")
    let user = #expect(throws: UnsafeValueError.self) {
      try resolver { $0.becomeUser = Self.combiningQuote }.resolve(host)
    }
    #expect(user?.variable == "--become-user")
    let password = #expect(throws: UnsafeValueError.self) {
      try resolver { $0.becomePassword = "a\nb" }.resolve(host)
    }
    #expect(password?.variable == "become password")
    #expect(password?.shownValue == "***")
  }

  @Test func legalValuesResolve() throws {
    let host = InventoryHost(
      name: "n1",
      vars: [
        "ansible_host": .string("10.0.0.1"), "ansible_user": .string("deploy"), "ansible_become": .bool(true),
        "ansible_become_user": .string("svc_admin"), "ansible_become_password": .string("p'ss $(x) `y`"),
        "svctrace_log_path": .string("/var/log/iptables.log"),
      ])
    let resolved = try resolver().resolve(host)
    #expect(resolved.become.user == "svc_admin")
    #expect(resolved.vars["svctrace_log_path"] == "/var/log/iptables.log")
  }

  @Test func becomeRefusesAHostileUserBeforeSendingAnything() async {
    // Given a become session built directly (not through the resolver),
    let base = ScriptedSession(host: HostID("n1")) { _, _ in CommandResult(exitStatus: 0) }
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, user: Self.combiningQuote))
    // when a command runs, then it is refused as a become error and nothing reached the node.
    let error = await #expect(throws: RemoteError.self) { try await session.run("id", stdin: nil, timeout: nil) }
    #expect(error?.kind == .become)
    #expect(error?.message.contains("ansible_become_user") == true)
    #expect(base.commands.isEmpty)
  }

  @Test func becomeRefusesAMultiLinePassword() async {
    let base = ScriptedSession(host: HostID("n1")) { _, _ in CommandResult(exitStatus: 0) }
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, password: "ok\nrm -rf /"))
    let error = await #expect(throws: RemoteError.self) { try await session.probe() }
    #expect(error?.kind == .become)
    #expect(error?.description.contains("rm -rf") == false)
    #expect(base.commands.isEmpty)
  }

  @Test func commandIsQuotedOnceForTheInnerShell() async throws {
    // The first command learns the mode (the wrapper shell's marker on stderr); later ones use it.
    let base = ScriptedSession(host: HostID("n1")) { _, _ in
      CommandResult(exitStatus: 0, stderr: Array("svctrace-become sudo\n".utf8))
    }
    let session = BecomeSession(base: base, config: BecomeConfig(enabled: true, user: "root"))
    _ = try await session.run("true", stdin: nil, timeout: nil)
    _ = try await session.run("printf %s 'a'\\''b'", stdin: nil, timeout: nil)
    #expect(base.commands.last == #"sudo -n -u root -- /bin/sh -c 'printf %s '\''a'\''\'\'''\''b'\'''"#)
  }

  /// Real `/bin/sh` and real sudo: a command carrying hostile (but legal) data runs through the
  /// become wrapper's two shells as the other user, and nothing in the data runs.
  @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/sudo")))
  func hostileDataThroughRealSudoRunsNothing() async throws {
    let login = LocalShellSession()
    let directory = try #require(try await login.run("mktemp -d").stdoutText.split(separator: "\n").first)
    _ = try await login.run("chmod 0777 \(try ShellQuote.quote(String(directory)))")
    defer { _ = try? FileManager.default.removeItem(atPath: String(directory)) }
    let marker = "\(directory)/pwned"
    let session = BecomeSession(base: login, config: BecomeConfig(enabled: true, user: "nobody"))
    let nobody = try #require(UInt32(try await login.run("id -u nobody").stdoutText.trimmingCharacters(in: .newlines)))

    for hostile in [
      "x'\u{301};touch \(marker);#", "y'\u{200D}$(touch \(marker))", "`touch \(marker)`", "'\"'\"'; touch \(marker)",
      "\\'; touch \(marker); echo '", "line\n touch \(marker)",
    ] {
      // Given data quoted for the inner shell,
      let result = try await session.run("printf %s \(try ShellQuote.quote(hostile)); id -un", stdin: nil, timeout: nil)
      // then it comes back byte for byte, from the become user, and no marker appears.
      #expect(result.stdout == Array((hostile + "nobody\n").utf8))
      // And as a file name through the shell-based file operations.
      let path = "\(directory)/\(hostile.replacingOccurrences(of: "/", with: "_"))"
      try await session.writeFile(path, contents: Array("content".utf8), mode: 0o600)
      #expect(try await session.readFile(path, offset: 0, maxLength: nil) == Array("content".utf8))
      #expect(try await session.stat(path)?.uid == nobody)
    }
    #expect(!FileManager.default.fileExists(atPath: marker))
  }
}
