import Foundation
import Testing

@testable import Inventory

/// Values that would reach a node's shell are held to what they can legally be while the inventory
/// is read: refused at their file and line, naming the host (or group) and the variable.
@Suite struct HostileValueTests {
  /// The exploit of hardening issue #13: `'` + U+0301 is one Swift Character, not a quote.
  static let combiningQuote = "root'\u{301};touch /tmp/pwned;#"

  private func refusal(_ text: String, file: String) -> InventoryError? {
    do {
      _ = try Inventory.parse(text, file: file)
      return nil
    } catch {
      return error
    }
  }

  @Test func iniBecomeUserWithACombiningQuoteIsRefusedAtItsLine() throws {
    let text = "[web]\nweb1 ansible_user=deploy ansible_become_user=\"\(Self.combiningQuote)\"\n"
    let error = try #require(refusal(text, file: "h.ini"))
    #expect(error.file == "h.ini")
    #expect(error.line == 2)
    #expect(error.message.hasPrefix("host 'web1': ansible_become_user "))
    #expect(error.message.contains("is not a user name"))
    // The value is shown escaped, so the combining mark cannot hide the quote on a terminal.
    #expect(error.message.contains(#"root'\u{301};touch /tmp/pwned;#"#))
  }

  @Test func iniGroupLogPathWithCommandSubstitutionIsRefused() throws {
    let text = "[web]\nweb1\n\n[web:vars]\nsvctrace_log_path=\"/var/log/x'$(touch /tmp/pwned)'\"\n"
    let error = try #require(refusal(text, file: "h.ini"))
    #expect(error.line == 5)
    #expect(error.message.hasPrefix("group 'web': svctrace_log_path "))
    #expect(error.message.contains("only letters, digits and . _ - + @ / are allowed"))
  }

  @Test func iniVarsLineWithACommentSignInsideQuotesIsRefused() throws {
    let text = "[web]\nweb1\n[all:vars]\nansible_become=true\nansible_become_user=\"\(Self.combiningQuote)\"\n"
    let error = try #require(refusal(text, file: "h.ini"))
    #expect(error.line == 5)
    #expect(error.message.hasPrefix("group 'all': ansible_become_user "))
  }

  @Test func yamlHostValuesAreRefusedAtTheLineOfTheirKey() throws {
    let text = """
      all:
        hosts:
          node1:
            ansible_host: 10.0.0.1
            ansible_become_user: "\(Self.combiningQuote)"
      """
    let error = try #require(refusal(text, file: "h.yml"))
    #expect(error.file == "h.yml")
    #expect(error.line == 5)
    #expect(error.message.hasPrefix("host 'node1': ansible_become_user "))
  }

  @Test func yamlUserWithANewlineIsRefused() throws {
    let text = """
      all:
        children:
          k8s:
            vars:
              ansible_user: "deploy\\nroot"
            hosts:
              node1:
      """
    let error = try #require(refusal(text, file: "h.yml"))
    #expect(error.line == 5)
    #expect(
      error.message
        == #"group 'k8s': ansible_user "deploy\nroot" is not a login name: only ASCII letters, digits, '.', '_', '@' and '-' are allowed"#
    )
  }

  @Test(arguments: [
    ("svctrace_log_path", "/var/log/../../etc/shadow"),
    ("svctrace_log_path", "relative.log"),
    ("svctrace_state_dir", "/var/lib/svc trace"),
    ("svctrace_rsyslog_dropin", "/etc/rsyslog.d/`id`.conf"),
    ("ansible_host", "-oProxyCommand=touch"),
    ("ansible_host", "10.0.0.1;id"),
    ("ansible_user", "-oProxyCommand=id"),
    ("ansible_user", "deploy;id"),
    ("ansible_become_user", "Deploy"),
    ("ansible_become_user", String(repeating: "a", count: 33)),
  ])
  func unsafeValuesAreRefused(_ variable: String, _ value: String) throws {
    let text = "all:\n  hosts:\n    n1:\n      \(variable): '\(value)'\n"
    let error = try #require(refusal(text, file: "h.yml"))
    #expect(error.line == 4)
    #expect(error.message.hasPrefix("host 'n1': \(variable) "))
  }

  @Test func legalValuesPass() throws {
    let text = """
      [k8s]
      node1 ansible_host=10.0.0.1 ansible_user=deploy ansible_become_user=svc-admin$ ansible_port=2222
      node2 ansible_host=fe80::1%eth0 ansible_user=_ops
      node3 ansible_host=10.0.0.3 ansible_user=J.Doe@corp.example

      [k8s:vars]
      svctrace_log_path=/var/log/svctrace/iptables.log
      svctrace_state_dir=/var/lib/svctrace
      ansible_become_password="p@ss w'rd $(not run)"
      svctrace_log_path_note=anything goes for variables that never reach a shell
      """
    let inventory = try Inventory.parse(text, file: "ok.ini")
    #expect(inventory.host(named: "node1")?.becomeUser == "svc-admin$")
    #expect(inventory.host(named: "node2")?.address == "fe80::1%eth0")
    #expect(inventory.host(named: "node3")?.user == "J.Doe@corp.example")
  }

  @Test func passwordWithANewlineIsRefusedWithoutShowingIt() throws {
    let text = "all:\n  vars:\n    ansible_become_password: \"hunter2\\nid\"\n  hosts:\n    n1:\n"
    let error = try #require(refusal(text, file: "h.yml"))
    #expect(error.line == 3)
    #expect(
      error.message
        == "group 'all': ansible_become_password *** must be a single line (no newline, carriage return or NUL)")
    #expect(!"\(error)".contains("hunter2"))
  }

  @Test func groupVarsFilesAreCheckedAtTheirLine() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    try FileManager.default.createDirectory(
      at: directory.appendingPathComponent("group_vars"), withIntermediateDirectories: true)
    try "[web]\nweb1\n".write(to: directory.appendingPathComponent("hosts.ini"), atomically: true, encoding: .utf8)
    let vars = directory.appendingPathComponent("group_vars/web.yml")
    try "---\nsvctrace_rotate_count: 3\nsvctrace_log_path: \"/var/log/x'$(touch /tmp/pwned)'\"\n".write(
      to: vars, atomically: true, encoding: .utf8)
    let error = #expect(throws: InventoryError.self) {
      try Inventory.load(paths: [directory.appendingPathComponent("hosts.ini").path])
    }
    #expect(error?.file == vars.path)
    #expect(error?.line == 3)
    #expect(error?.message.hasPrefix("svctrace_log_path ") == true)
  }
}

/// Finding 8 of hardening issue #13: no inventory message shows a password.
@Suite struct RedactionTests {
  @Test(arguments: [
    "[g]\nh\n[g:vars]\nansible_become_password hunter2\n",
    "[g]\nh\n[g:vars]\nansible_ssh_pass: hunter2\n",
    "[g]\nh\n[g:vars]\nmy ansible_password = hunter2\n",
    "[g:children]\nansible_become_pass=hunter2 x\n",
    "[g]\nh ansible_password='hunter2\n",
    "all:\n  vars:\n    ansible_password: \"hunter2\n",
    "all:\n  vars:\n    \"ansible_become_password\": 'hunter2\n",
  ])
  func parseErrorsNeverShowAPassword(_ text: String) {
    let error = #expect(throws: InventoryError.self) { try Inventory.parse(text, file: "s") }
    #expect(error != nil)
    #expect(error.map { !"\($0)".contains("hunter2") } == true, "\(String(describing: error))")
  }

  @Test func assignmentsAreMaskedToTheEndOfTheLine() {
    #expect(
      Redaction.redactSecrets(in: "got 'ansible_password = a b' and\nnext ansible_sudo_pass:x\nuser=deploy")
        == "got 'ansible_password = ***\nnext ansible_sudo_pass:***\nuser=deploy")
    #expect(Redaction.redactSecrets(in: "ansible_user=deploy") == "ansible_user=deploy")
    // Prose naming a variable is left alone.
    #expect(
      Redaction.redactSecrets(in: "duplicate variable 'ansible_password' in [g:vars] (first set on line 3)")
        == "duplicate variable 'ansible_password' in [g:vars] (first set on line 3)")
    #expect(
      InventoryError(file: "f", line: 1, message: "expected key=value, got 'ansible_become_pass hunter2'").message
        == "expected key=value, got 'ansible_become_pass ***")
  }
}
