import Foundation
import Testing

/// `ping` and `exec` against the real sshd of every lab node.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct FoundationTests {
  private func ping(_ extra: [String] = [], inventory: String = Lab.inventory) throws -> (
    Lab.Run, [String: [String: Any]]
  ) {
    let run = try Lab.svctrace(["ping", "-i", inventory, "--known-hosts", Lab.knownHosts, "--json"] + extra)
    let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    var byHost: [String: [String: Any]] = [:]
    for host in document?["hosts"] as? [[String: Any]] ?? [] {
      if let name = host["host"] as? String { byHost[name] = host }
    }
    return (run, byHost)
  }

  @Test func pingReportsEveryNodeAndItsBackend() throws {
    let (run, hosts) = try ping()
    #expect(run.status == 0, "\(run.stderr)")
    for node in try Lab.cluster().nodes {
      let host = try #require(hosts[node.name], "no result for \(node.name)")
      #expect(host["status"] as? String == "ok")
      let facts = try #require(host["result"] as? [String: Any])
      #expect(facts["rsyslog"] as? Bool == true)
      #expect(facts["logrotate"] as? Bool == true)
      #expect((facts["kernel"] as? String)?.isEmpty == false)
      let expected = node.backend == "legacy" ? "legacy" : "nf_tables"
      #expect(facts["iptablesBackend"] as? String == expected, "\(node.name)")
      #expect(abs(facts["clockOffsetMs"] as? Double ?? 1e9) < 1000)
    }
  }

  @Test func becomeWithAndWithoutSudoPassword() throws {
    for inventory in ["inventory-sudo.ini", "inventory-sudopw.ini"] {
      let (run, hosts) = try ping(inventory: Lab.directory + "/" + inventory)
      #expect(run.status == 0, "\(inventory): \(run.stdout) \(run.stderr)")
      for (_, host) in hosts {
        #expect((host["result"] as? [String: Any])?["user"] as? String == "root", "\(inventory)")
      }
    }
  }

  @Test func nodeWithoutSudoFailsAndTheOthersCarryOn() throws {
    try Lab.lab(["fault", "node2", "sudo-remove"])
    defer { _ = try? Lab.lab(["fault", "node2", "sudo-restore"]) }
    let (run, hosts) = try ping(inventory: Lab.directory + "/inventory-sudo.ini")
    #expect(run.status == 1)
    #expect(hosts["node2"]?["status"] as? String == "failed")
    #expect((hosts["node2"]?["message"] as? String)?.contains("sudo") == true)
    #expect(hosts["node1"]?["status"] as? String == "ok")
  }

  @Test func stoppedSshdIsUnreachableAndTheOthersSucceed() throws {
    try Lab.lab(["fault", "node3", "sshd-stop"])
    defer { _ = try? Lab.lab(["fault", "node3", "sshd-start"]) }
    let (run, hosts) = try ping(["--connect-timeout", "3"])
    #expect(run.status == 1)
    #expect(hosts["node3"]?["status"] as? String == "unreachable")
    #expect(hosts["node1"]?["status"] as? String == "ok")
    #expect(hosts["node2"]?["status"] as? String == "ok")
  }

  @Test func changedHostKeyIsRefusedNamingTheKnownHostsLine() throws {
    try Lab.lab(["fault", "node1", "hostkey-change"])
    defer { _ = try? Lab.lab(["fault", "node1", "hostkey-restore"]) }
    let (run, hosts) = try ping(["--limit", "node1", "--accept-new-host-keys"])
    #expect(run.status == 1)
    let message = try #require(hosts["node1"]?["message"] as? String)
    #expect(message.contains(Lab.knownHosts + ":"), "\(message)")
    #expect(hosts["node1"]?["status"] as? String == "unreachable")
  }

  @Test func unknownHostIsRefusedThenAcceptedWithTheFlag() throws {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("svct-e2e-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let knownHosts = scratch + "/known_hosts"
    let refused = try Lab.svctrace(["ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts])
    #expect(refused.status == 1)
    #expect(refused.stdout.contains("SHA256:"), "\(refused.stdout)")
    let accepted = try Lab.svctrace([
      "ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts, "--accept-new-host-keys",
    ])
    #expect(accepted.status == 0, "\(accepted.stdout)")
    let again = try Lab.svctrace(["ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts])
    #expect(again.status == 0, "\(again.stdout)")
  }

  @Test func bastionHop() throws {
    let (run, hosts) = try ping(["--limit", "node2", "--jump", "root@10.250.0.11"])
    #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
    #expect(hosts["node2"]?["status"] as? String == "ok")
  }

  @Test func execGroupsOutputPerHostAndReportsFailures() throws {
    let run = try Lab.svctrace([
      "exec", "-i", Lab.inventory, "--known-hosts", Lab.knownHosts, "--", "hostname; test $(hostname) != node2",
    ])
    #expect(run.status == 1)
    for node in try Lab.cluster().nodes {
      #expect(run.stdout.contains("── \(node.name) (exit \(node.name == "node2" ? 1 : 0))"), "\(run.stdout)")
    }
  }

  @Test func interruptCancelsTheFanOutPromptly() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Lab.binary)
    process.arguments = [
      "exec", "-i", Lab.inventory, "--known-hosts", Lab.knownHosts, "--timeout", "120", "--", "sleep 600",
    ]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    Thread.sleep(forTimeInterval: 2)
    process.interrupt()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // The run ended because of the interrupt (not by the 120 s host timeout), and said so.
    #expect(process.terminationStatus == 130)
    #expect(output.contains("cancelled"), "\(output)")
  }
}
