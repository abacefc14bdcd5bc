import Foundation
import Testing

/// Hardening issue #13 against real nodes: an inventory whose values try to break out of the
/// remote commands is refused by every command before it connects, naming the variable, the host
/// or group and the file:line, and nothing it carries runs on any node.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct HostileInventoryEndToEndTests {
  static let marker = "/tmp/svctrace-pwned"

  /// Each hostile assignment, as an INI `[all:vars]` line and as a YAML `vars:` entry.
  static let assignments: [(variable: String, value: String)] = [
    ("ansible_become_user", "root'\u{301};touch \(marker);#"),
    ("svctrace_log_path", "/var/log/x'$(touch \(marker))'"),
    ("ansible_user", "root'\u{200D};touch \(marker);#"),
  ]

  /// The lab's inventory with one hostile `[all:vars]` line appended; returns the file and the line.
  private func hostileINI(_ variable: String, _ value: String) throws -> (String, Int) {
    let base = try String(contentsOfFile: Lab.inventory, encoding: .utf8)
    let text =
      base + (base.hasSuffix("\n") ? "" : "\n") + "\n[all:vars]\nansible_become=true\n\(variable)=\"\(value)\"\n"
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).ini").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return (path, text.split(separator: "\n", omittingEmptySubsequences: false).count - 1)
  }

  /// A YAML inventory of the lab's nodes with one hostile variable on node1.
  private func hostileYAML(_ variable: String, _ value: String) throws -> (String, Int) {
    let nodes = try Lab.cluster().nodes
    var text =
      "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: \(Lab.directory)/keys/id_ed25519\n"
    text += "  hosts:\n"
    var line = 0
    for node in nodes {
      text += "    \(node.name):\n      ansible_host: \(node.ip)\n"
      if node.name == nodes.first?.name {
        line = text.split(separator: "\n").count + 1
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        text += "      \(variable): \"\(escaped)\"\n"
      }
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).yml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return (path, line)
  }

  /// The commands that read an inventory, each with what it needs besides `-i`.
  private func commands(store: String) -> [[String]] {
    [
      ["ping"], ["install"], ["verify"], ["collect", "--store", store], ["exec", "--", "true"],
    ]
  }

  private func expectNoMarker() async throws {
    for node in try Lab.cluster().nodes {
      let probe = try await Lab.onNode(node.name, "test -e \(Self.marker) && echo present || echo absent")
      #expect(probe.stdout.contains("absent"), "\(node.name): \(probe.stdout)\(probe.stderr)")
    }
  }

  @Test func everyCommandRefusesAHostileINIInventoryBeforeConnecting() async throws {
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).sqlite")
      .path
    defer {
      try? FileManager.default.removeItem(atPath: store)
      try? FileManager.default.removeItem(atPath: store + ".raw")
    }
    for (variable, value) in Self.assignments {
      let (path, line) = try hostileINI(variable, value)
      defer { try? FileManager.default.removeItem(atPath: path) }
      for command in commands(store: store) {
        let arguments = [command[0], "-i", path, "--known-hosts", Lab.knownHosts] + command.dropFirst()
        let run = try await Lab.svctrace(arguments)
        #expect(run.status != 0, "\(arguments): \(run.stdout)")
        #expect(run.stderr.contains("\(path):\(line): group 'all': \(variable) "), "\(arguments): \(run.stderr)")
      }
    }
    try await expectNoMarker()
  }

  @Test func everyCommandRefusesAHostileYAMLInventoryBeforeConnecting() async throws {
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).sqlite")
      .path
    defer {
      try? FileManager.default.removeItem(atPath: store)
      try? FileManager.default.removeItem(atPath: store + ".raw")
    }
    let first = try #require(try Lab.cluster().nodes.first?.name)
    for (variable, value) in Self.assignments {
      let (path, line) = try hostileYAML(variable, value)
      defer { try? FileManager.default.removeItem(atPath: path) }
      for command in commands(store: store) {
        let arguments = [command[0], "-i", path, "--known-hosts", Lab.knownHosts] + command.dropFirst()
        let run = try await Lab.svctrace(arguments)
        #expect(run.status != 0, "\(arguments): \(run.stdout)")
        #expect(run.stderr.contains("\(path):\(line): host '\(first)': \(variable) "), "\(arguments): \(run.stderr)")
      }
    }
    try await expectNoMarker()
  }

  @Test func hostileCommandLineValuesAreRefusedToo() async throws {
    let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
    let become = try await Lab.svctrace(
      ["ping", "--become", "--become-user", "root'\u{301};touch \(Self.marker);#"] + fleet)
    #expect(become.status != 0)
    #expect(become.stderr.contains("--become-user"), "\(become.stderr)")
    let logPath = try await Lab.svctrace(
      ["collect", "--store", "/nonexistent/never-opened.sqlite", "--log-path", "/var/log/x'$(touch \(Self.marker))'"]
        + fleet)
    #expect(logPath.status != 0)
    #expect(logPath.stderr.contains("--log-path"), "\(logPath.stderr)")
    try await expectNoMarker()
  }
}
