import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `ping` and `exec` against the real sshd of every lab node.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct FoundationTests {
  private func ping(_ extra: [String] = [], inventory: String = Lab.inventory) async throws -> (
    Lab.Run, [String: [String: Any]]
  ) {
    let run = try await Lab.svctrace(["ping", "-i", inventory, "--known-hosts", Lab.knownHosts, "--json"] + extra)
    let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    var byHost: [String: [String: Any]] = [:]
    for host in document?["hosts"] as? [[String: Any]] ?? [] {
      if let name = host["host"] as? String { byHost[name] = host }
    }
    return (run, byHost)
  }

  @Test func pingReportsEveryNodeAndItsBackend() async throws {
    let (run, hosts) = try await ping()
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

  @Test func becomeWithAndWithoutSudoPassword() async throws {
    for inventory in ["inventory-sudo.ini", "inventory-sudopw.ini"] {
      let (run, hosts) = try await ping(inventory: Lab.directory + "/" + inventory)
      #expect(run.status == 0, "\(inventory): \(run.stdout) \(run.stderr)")
      for (_, host) in hosts {
        #expect((host["result"] as? [String: Any])?["user"] as? String == "root", "\(inventory)")
      }
    }
  }

  @Test func nodeWithoutSudoFailsAndTheOthersCarryOn() async throws {
    try await Lab.lab(["fault", "node2", "sudo-remove"])
    try await withCleanup {
      let (run, hosts) = try await ping(inventory: Lab.directory + "/inventory-sudo.ini")
      #expect(run.status == 1)
      #expect(hosts["node2"]?["status"] as? String == "failed")
      #expect((hosts["node2"]?["message"] as? String)?.contains("sudo") == true)
      #expect(hosts["node1"]?["status"] as? String == "ok")
    } cleanup: {
      _ = try? await Lab.lab(["fault", "node2", "sudo-restore"])
    }
  }

  @Test func stoppedSshdIsUnreachableAndTheOthersSucceed() async throws {
    try await Lab.lab(["fault", "node3", "sshd-stop"])
    try await withCleanup {
      let (run, hosts) = try await ping(["--connect-timeout", "3"])
      #expect(run.status == 1)
      #expect(hosts["node3"]?["status"] as? String == "unreachable")
      #expect(hosts["node1"]?["status"] as? String == "ok")
      #expect(hosts["node2"]?["status"] as? String == "ok")
    } cleanup: {
      _ = try? await Lab.lab(["fault", "node3", "sshd-start"])
    }
  }

  @Test func changedHostKeyIsRefusedNamingTheKnownHostsLine() async throws {
    try await Lab.lab(["fault", "node1", "hostkey-change"])
    try await withCleanup {
      let (run, hosts) = try await ping(["--limit", "node1", "--accept-new-host-keys"])
      #expect(run.status == 1)
      let message = try #require(hosts["node1"]?["message"] as? String)
      #expect(message.contains(Lab.knownHosts + ":"), "\(message)")
      #expect(hosts["node1"]?["status"] as? String == "unreachable")
    } cleanup: {
      _ = try? await Lab.lab(["fault", "node1", "hostkey-restore"])
    }
  }

  @Test func unknownHostIsRefusedThenAcceptedWithTheFlag() async throws {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("svct-e2e-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let knownHosts = scratch + "/known_hosts"
    let refused = try await Lab.svctrace(["ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts])
    #expect(refused.status == 1)
    #expect(refused.stdout.contains("SHA256:"), "\(refused.stdout)")
    let accepted = try await Lab.svctrace([
      "ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts, "--accept-new-host-keys",
    ])
    #expect(accepted.status == 0, "\(accepted.stdout)")
    let again = try await Lab.svctrace(["ping", "-i", Lab.inventory, "--limit", "node1", "--known-hosts", knownHosts])
    #expect(again.status == 0, "\(again.stdout)")
  }

  @Test func bastionHop() async throws {
    let (run, hosts) = try await ping(["--limit", "node2", "--jump", "root@10.250.0.11"])
    #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
    #expect(hosts["node2"]?["status"] as? String == "ok")
  }

  @Test func execGroupsOutputPerHostAndReportsFailures() async throws {
    let run = try await Lab.svctrace([
      "exec", "-i", Lab.inventory, "--known-hosts", Lab.knownHosts, "--", "hostname; test $(hostname) != node2",
    ])
    #expect(run.status == 1)
    for node in try Lab.cluster().nodes {
      #expect(run.stdout.contains("── \(node.name) (exit \(node.name == "node2" ? 1 : 0))"), "\(run.stdout)")
    }
  }

  @Test func interruptCancelsTheFanOutPromptly() async throws {
    let process = try await BackgroundProcess.start(
      [
        Lab.binary, "exec", "-i", Lab.inventory, "--known-hosts", Lab.knownHosts, "--timeout", "120", "--", "sleep 600",
      ], collectOutput: true)
    try await Task.sleep(for: .seconds(2))
    process.signal(SIGINT)
    let result = try await process.wait()
    let output = result.stdoutText
    // The run ended because of the interrupt (not by the 120 s host timeout), and said so.
    #expect(result.exitStatus == 130)
    #expect(output.contains("cancelled"), "\(output)")
  }
}
