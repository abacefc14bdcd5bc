import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// The namespace testbed the end-to-end tests run against (brought up by `scripts/test`).
///
/// Tests are enabled only when `SVCTRACE_LAB` names a running lab's state directory; they drive
/// the real `svctrace` binary and the lab's own commands (`testbed/lab`).
struct Lab {
  static let environment = ProcessInfo.processInfo.environment
  /// Whether a lab is up for this run.
  static var isUp: Bool {
    environment["SVCTRACE_LAB"].map { FileManager.default.fileExists(atPath: $0 + "/cluster.json") } ?? false
  }

  /// Whether a missing lab is an error rather than a reason to skip: in CI (`CI` set), or when
  /// `SVCTRACE_LAB` is set, i.e. someone asked for the end-to-end suites.
  static var isRequired: Bool { environment["CI"] != nil || environment["SVCTRACE_LAB"] != nil }

  static let directory = environment["SVCTRACE_LAB"] ?? "/var/lib/svctrace-lab"
  static let repository: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
  }()

  static var inventory: String { directory + "/inventory.ini" }
  static var knownHosts: String { directory + "/known_hosts" }

  /// The built `svctrace` binary next to the test bundle.
  static var binary: String {
    let candidates = [".build/debug/svctrace", ".build/release/svctrace"].map { repository + "/" + $0 }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
  }

  /// The lab's cluster description.
  static func cluster() throws -> Cluster {
    try JSONDecoder().decode(Cluster.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/cluster.json")))
  }

  struct Cluster: Decodable {
    struct Node: Decodable {
      var name: String
      var ip: String
      var backend: String
      var proxyMode: String
    }
    var nodes: [Node]
  }

  /// The fresh start of a ground-truth suite: `remove`, then `install` (with `flags`) on every
  /// node, then empty svctrace's log (rotated copies too) and conntrack on every node — a UDP
  /// 5-tuple still in conntrack is no new connection (no LOG line), so ground truth holds only new
  /// flows, and earlier runs' client ports cannot collide with this one's.
  @discardableResult
  static func installFresh(_ flags: [String] = []) async throws -> Run {
    let fleet = ["-i", inventory, "--known-hosts", knownHosts]
    try await svctrace(["remove"] + fleet)
    let install = try await svctrace(["install"] + flags + fleet)
    try #require(install.status == 0, "install: \(install.stdout)\(install.stderr)")
    for node in try cluster().nodes {
      try await onNode(
        node.name,
        ": > /var/log/iptables.log; rm -f /var/log/iptables.log.* /var/log/iptables.log-*; "
          + "conntrack -F >/dev/null 2>&1 || true")
    }
    return install
  }

  /// Runs the svctrace binary with the lab's inventory and known_hosts.
  @discardableResult
  static func svctrace(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> Run {
    try await run(binary, arguments, environment: extra)
  }

  /// Runs `testbed/lab ARGS`.
  @discardableResult
  static func lab(_ arguments: [String]) async throws -> Run {
    try await run(repository + "/testbed/lab", arguments)
  }

  /// Runs a command inside a lab node's namespaces.
  @discardableResult
  static func onNode(_ node: String, _ command: String) async throws -> Run {
    try await lab(["exec", node, "--", "/bin/sh", "-c", command])
  }

  struct Run {
    /// Exit status, or -1 when a signal ended the process.
    var status: Int32
    var stdout: String
    var stderr: String
  }

  /// Runs `executable ARGS` with an empty standard input and `NO_COLOR=1` (plus `extra`) on top of
  /// this process's environment, and collects both outputs.
  static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:])
    async throws -> Run
  {
    var environment = ["NO_COLOR": "1"]
    for (key, value) in extra { environment[key] = value }
    let result = try await LocalProcess.run([executable] + arguments, environment: environment)
    return Run(status: result.exitStatus, stdout: result.stdoutText, stderr: result.stderrText)
  }
}

/// Turns "every end-to-end suite skipped" into a failure where the suites were meant to run.
///
/// The suites are `.enabled(if: Lab.isUp)`: without a lab they skip, which is right on a
/// developer's machine and wrong in CI or when `SVCTRACE_LAB` names a lab that is not up.
@Suite(.enabled(if: Lab.isRequired, "the lab is optional here (neither CI nor SVCTRACE_LAB is set)"))
struct LabPresenceTests {
  @Test func theLabIsUpWhereTheEndToEndSuitesMustRun() {
    let why = Lab.environment["CI"] != nil ? "CI is set" : "SVCTRACE_LAB is set"
    #expect(
      Lab.isUp,
      """
      \(why) but no lab is up (no \(Lab.directory)/cluster.json): every end-to-end suite was skipped. \
      Bring one up with scripts/test (or testbed/lab up) and point SVCTRACE_LAB at its state directory.
      """)
  }
}
