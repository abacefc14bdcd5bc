import Foundation
import SVCTraceTestSupport
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// `verify` against real nodes: all green after install, then each node broken in its own way.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct VerifyEndToEndTests {
  private let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]

  /// Failing check groups per node, from `verify --format json`.
  private func failing(_ extra: [String] = []) async throws -> (Int32, [String: Set<String>]) {
    let run = try await Lab.svctrace(["verify", "--format", "json"] + extra + fleet)
    let document = try #require(
      try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)\(run.stderr)")
    var result: [String: Set<String>] = [:]
    for node in document["nodes"] as? [[String: Any]] ?? [] {
      let checks = node["checks"] as? [[String: Any]] ?? []
      result[node["host"] as? String ?? "?"] = Set(
        checks.filter { $0["status"] as? String == "fail" }.compactMap { $0["group"] as? String })
    }
    return (run.status, result)
  }

  @Test func passesAfterInstallThenNamesEachNodesProblem() async throws {
    let install = try await Lab.svctrace(["install"] + fleet)
    #expect(install.status == 0, "\(install.stdout)")
    let (status, clean) = try await failing(["--canary"])
    #expect(status == 0)
    #expect(clean.values.allSatisfy { $0.isEmpty }, "\(clean)")

    // Round 1: rules flushed by a reboot, rsyslog stopped, logrotate entry removed.
    try await Lab.lab(["reboot", "node1"])
    try await Lab.lab(["fault", "node2", "rsyslog-stop"])
    try await Lab.onNode("node3", "rm /etc/logrotate.d/svctrace")
    let (broken, first) = try await failing()
    #expect(broken == 1)
    #expect(first == ["node1": ["dataplane"], "node2": ["rsyslog"], "node3": ["logrotate"]])
    try await Lab.lab(["fault", "node2", "rsyslog-start"])
    let repaired = try await Lab.svctrace(["install"] + fleet)
    #expect(repaired.status == 0, "\(repaired.stdout)")
    let (_, afterRepair) = try await failing()
    #expect(afterRepair.values.allSatisfy { $0.isEmpty }, "\(afterRepair)")

    // Round 2: drop-in edited, sshd down, host key changed.
    try await Lab.onNode("node1", "echo '# local edit' >> /etc/rsyslog.d/10-svctrace.conf")
    try await Lab.lab(["fault", "node2", "sshd-stop"])
    try await Lab.lab(["fault", "node3", "hostkey-change"])
    try await withCleanup {
      let (_, second) = try await failing(["--connect-timeout", "3"])
      #expect(second == ["node1": ["rsyslog"], "node2": ["access"], "node3": ["access"]])
      let keyMessage = try await Lab.svctrace(["verify", "--limit", "node3"] + fleet).stdout
      #expect(keyMessage.contains("HOST KEY CHANGED"), "\(keyMessage)")

      // install repairs what it can reach; verify passes for it again.
      _ = try await Lab.svctrace(["install", "--limit", "node1"] + fleet)
      let (_, third) = try await failing(["--limit", "node1"])
      #expect(third == ["node1": []])
    } cleanup: {
      _ = try? await Lab.lab(["fault", "node2", "sshd-start"])
      _ = try? await Lab.lab(["fault", "node3", "hostkey-restore"])
    }
  }

  @Test func junitReportHasTheStructureCISystemsRead() async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("svct-verify-\(UUID().uuidString).xml")
      .path
    defer { try? FileManager.default.removeItem(atPath: file) }
    try await Lab.svctrace(["install"] + fleet)
    try await Lab.onNode("node2", "rm -f /etc/logrotate.d/svctrace")
    try await withCleanup {
      let run = try await Lab.svctrace(["verify", "--format", "junit", "--output", file] + fleet)
      #expect(run.status == 1)
      let document = try XMLDocument(contentsOf: URL(fileURLWithPath: file))
      let root = try #require(document.rootElement())
      #expect(root.name == "testsuites")
      let suites = root.elements(forName: "testsuite")
      #expect(suites.count == 3)
      var failures = 0
      for suite in suites {
        let cases = suite.elements(forName: "testcase")
        #expect(Int(suite.attribute(forName: "tests")?.stringValue ?? "") == cases.count)
        let failed = cases.filter { !$0.elements(forName: "failure").isEmpty }
        #expect(Int(suite.attribute(forName: "failures")?.stringValue ?? "") == failed.count)
        for testcase in cases {
          #expect(testcase.attribute(forName: "classname")?.stringValue?.hasPrefix("svctrace.") == true)
          #expect(testcase.attribute(forName: "name")?.stringValue?.contains("/") == true)
        }
        failures += failed.count
        if suite.attribute(forName: "name")?.stringValue == "node2" {
          let failure = try #require(failed.first?.elements(forName: "failure").first)
          #expect(failure.attribute(forName: "message")?.stringValue?.contains("logrotate.d/svctrace") == true)
          #expect(failed.first?.attribute(forName: "name")?.stringValue == "logrotate/entry")
        }
      }
      #expect(failures == 1)
      #expect(Int(root.attribute(forName: "failures")?.stringValue ?? "") == 1)
    } cleanup: {
      _ = try? await Lab.svctrace(["install"] + fleet)
    }
  }

  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "needs chromium"))
  func htmlReportRendersInARealBrowser() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-html-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try await Lab.svctrace(["install"] + fleet)
    try await Lab.onNode("node3", "rm -f /etc/logrotate.d/svctrace")
    try await withCleanup {
      let html = directory + "/report.html"
      try await Lab.svctrace(["verify", "--format", "html", "--output", html] + fleet)
      // The browser's own DOM after rendering, read back as text.
      let dom = try await Lab.run(
        "/usr/bin/chromium",
        [
          "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory)/profile", "--dump-dom",
          "file://" + html,
        ])
      #expect(dom.status == 0, "\(dom.stderr)")
      #expect(dom.stdout.contains("2 nodes pass"))
      #expect(dom.stdout.contains("1 nodes fail"))
      #expect(dom.stdout.contains("<td>node3</td>"))
      #expect(dom.stdout.contains("logrotate/entry"))
      #expect(dom.stdout.contains("/etc/logrotate.d/svctrace is missing"))
      let screenshot = try await Lab.run(
        "/usr/bin/chromium",
        [
          "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory)/profile",
          "--window-size=1100,700",
          "--screenshot=\(directory)/shot.png", "file://" + html,
        ])
      #expect(screenshot.status == 0)
      #expect(FileManager.default.fileExists(atPath: directory + "/shot.png"))
    } cleanup: {
      _ = try? await Lab.svctrace(["install"] + fleet)
    }
  }
}
