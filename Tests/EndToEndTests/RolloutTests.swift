import Foundation
import SVCTraceTestSupport
import Testing

/// `install` / `remove` on real nodes of every kind (iptables-nft, iptables-legacy, kube-proxy
/// nftables mode), proven with real traffic and compared byte for byte with the state before.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct RolloutEndToEndTests {
  private let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]

  /// Everything install may touch, normalized: rulesets without counters and without the expiry times of
  /// kube-proxy's session-affinity set elements (`nft -s`: they count down), svctrace-relevant files hashed.
  private func nodeState(_ node: String) async throws -> String {
    let script = """
      for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do \
        echo "## $s"; $s 2>/dev/null | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]/[0:0]/'; done; \
      echo '## nft'; nft -s list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'; \
      echo '## files'; find /etc/rsyslog.d /etc/logrotate.d /var/lib/svctrace -type f 2>/dev/null | sort | xargs -r sha256sum; \
      sha256sum /etc/rsyslog.conf; echo "rsyslog $(systemctl is-active rsyslog)"
      """
    let run = try await Lab.onNode(node, script)
    #expect(run.status == 0, "\(node): \(run.stderr)")
    return run.stdout
  }

  private func statuses(_ run: Lab.Run) throws -> [String: String] {
    let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    var result: [String: String] = [:]
    for host in document?["hosts"] as? [[String: Any]] ?? [] {
      result[host["host"] as? String ?? "?"] = host["status"] as? String
    }
    return result
  }

  private func messages(_ run: Lab.Run) throws -> [String: String] {
    let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    var result: [String: String] = [:]
    for host in document?["hosts"] as? [[String: Any]] ?? [] {
      result[host["host"] as? String ?? "?"] = host["message"] as? String ?? ""
    }
    return result
  }

  @Test func installCapturesEveryKindOfServiceTrafficAndRemoveRestoresTheNode() async throws {
    let nodes = try Lab.cluster().nodes
    try await Lab.svctrace(["remove"] + fleet)
    var before: [String: String] = [:]
    for node in nodes { before[node.name] = try await nodeState(node.name) }

    // Install, then again: the second run changes nothing.
    let first = try await Lab.svctrace(["install", "--json"] + fleet)
    #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
    #expect(try statuses(first).values.allSatisfy { $0 == "changed" })
    let second = try await Lab.svctrace(["install", "--json"] + fleet)
    #expect(try statuses(second) == Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, "ok") }), "\(second.stdout)")

    // Traffic of every kind, with ground truth; plus one pod-to-pod connection that is not service traffic.
    for node in nodes { try await Lab.onNode(node.name, ": > /var/log/iptables.log") }
    let truthFile = FileManager.default.temporaryDirectory.appendingPathComponent(
      "svct-truth-\(UUID().uuidString).jsonl"
    ).path
    defer { try? FileManager.default.removeItem(atPath: truthFile) }
    let traffic = try await Lab.lab(["traffic", "--count", "30", "--check", "--out", truthFile])
    #expect(traffic.status == 0, "\(traffic.stdout)\(traffic.stderr)")
    let direct = try await Lab.lab([
      "pod", "web-1", "--", "python3", "-c",
      "import socket; s=socket.socket(); s.bind(('0.0.0.0', 45678)); s.settimeout(5); s.connect(('10.244.2.10', 8080)); s.recv(512)",
    ])
    #expect(direct.status == 0, "\(direct.stderr)")
    let truth = try String(contentsOfFile: truthFile, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    #expect(truth.count >= 180)
    let nodeIPs = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.ip) })
    var kinds: Set<String> = []
    var missing: [String] = []
    var logs: [String: String] = [:]
    // rsyslog writes asynchronously: read the logs until every connection is there (bounded).
    let deadline = Date().addingTimeInterval(20)
    repeat {
      try await Task.sleep(for: .seconds(1))
      for node in nodes { logs[node.name] = try await Lab.onNode(node.name, "cat /var/log/iptables.log").stdout }
      missing = []
      for connection in truth {
        let kind = connection["kind"] as? String ?? "?"
        kinds.insert(kind)
        let node = connection["dnat_node"] as? String ?? "?"
        let proto = (connection["proto"] as? String ?? "").uppercased()
        let client = "SRC=\(connection["client_ip"] ?? "") "
        let clientPort = "SPT=\(connection["client_port"] ?? "") "
        var service = ("DST=\(connection["service_ip"] ?? "") ", "DPT=\(connection["service_port"] ?? "") ")
        if kind == "nodeport" { service = ("DST=\(nodeIPs[node] ?? "") ", "DPT=30080 ") }
        let pod = ("DST=\(connection["pod_ip"] ?? "") ", "DPT=\(connection["pod_port"] ?? "") ")
        let lines = (logs[node] ?? "").split(separator: "\n").filter {
          $0.contains(client) && $0.contains(clientPort) && $0.contains("PROTO=\(proto) ")
        }
        let pre = lines.filter { $0.contains("SVCT:PRE ") && $0.contains(service.0) && $0.contains(service.1) }
        let post = lines.filter { $0.contains("SVCT:POST ") && $0.contains(pod.0) && $0.contains(pod.1) }
        // Each packet logged once per rule: svctrace's LOG rules match conntrack state NEW, so a
        // SYN retransmitted before any reply is logged again, pre and post, with its own IP ID
        // (seen under load: 2 pre, 2 post lines, IDs 54654 and 54655), and the correlator folds
        // it; a duplicated rule would log the same packet (same ID) twice.
        func ids(_ lines: [Substring]) -> [Substring] {
          lines.map { $0.split(separator: " ").first { $0.hasPrefix("ID=") } ?? "" }
        }
        let packetsOnce = Set(ids(pre)).count == pre.count && Set(ids(post)).count == post.count
        if pre.isEmpty || post.isEmpty || !packetsOnce {
          // With the lines themselves, to tell a repeated packet from a reused client port.
          missing.append(
            "\(kind) \(client)\(clientPort)on \(node): \(pre.count) pre, \(post.count) post lines \(lines)")
        }
      }
    } while !missing.isEmpty && Date() < deadline
    #expect(
      missing.isEmpty,
      "\(missing.count) connections without a pre and a post line, each packet once: \(missing.prefix(10))")
    #expect(kinds.isSuperset(of: ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hairpin", "hostnetwork"]))
    let allLogs = logs.values.joined(separator: "\n")
    // The direct flow web-1 → 10.244.2.10:8080 from port 45678, if logged, would show up as a PRE
    // line to the pod's own address; a service connection's PRE line always shows the Service
    // address (a service client may well use port 45678 too: matching on the port alone is flaky).
    let directLogged = allLogs.split(separator: "\n").filter {
      $0.contains("SVCT:PRE ") && $0.contains("SRC=10.244.1.10 DST=10.244.2.10 ") && $0.contains("SPT=45678 ")
    }
    #expect(directLogged.isEmpty, "pod-to-pod traffic that is not service traffic was logged: \(directLogged)")

    // kube-proxy's periodic sync hides nothing and changes nothing.
    try await Lab.lab(["resync"])
    let afterResync = try await Lab.svctrace(["install", "--check", "--json"] + fleet)
    #expect(try statuses(afterResync).values.allSatisfy { $0 == "ok" }, "\(afterResync.stdout)")

    // A reboot loses the rules; a second install restores them on that node only.
    try await Lab.lab(["reboot", "node2"])
    let repaired = try await Lab.svctrace(["install", "--json"] + fleet)
    let repairedStatuses = try statuses(repaired)
    #expect(repairedStatuses["node2"] == "changed", "\(repaired.stdout)")
    #expect(repairedStatuses.filter { $0.key != "node2" }.values.allSatisfy { $0 == "ok" }, "\(repaired.stdout)")

    // remove leaves rulesets (counters aside) and files exactly as before install.
    let removed = try await Lab.svctrace(["remove"] + fleet)
    #expect(removed.status == 0, "\(removed.stdout)")
    for node in nodes {
      let after = try await nodeState(node.name)
      #expect(
        after == before[node.name], "\(node.name) differs after remove:\n\(lineDiff(before[node.name] ?? "", after))")
    }
  }

  @Test func failingNodesAreRolledBackAndTheOthersInstalled() async throws {
    let nodes = try Lab.cluster().nodes
    try await Lab.svctrace(["remove"] + fleet)
    try await Lab.lab(["fault", "node1", "rsyslogd-readonly"])
    try await Lab.lab(["fault", "node2", "sudo-remove"])
    try await Lab.lab(["fault", "node3", "rsyslog-break"])
    try await withCleanup {
      var before: [String: String] = [:]
      for node in nodes { before[node.name] = try await nodeState(node.name) }
      let sudo = ["-i", Lab.directory + "/inventory-sudo.ini", "--known-hosts", Lab.knownHosts]
      let run = try await Lab.svctrace(["install", "--json"] + sudo)
      #expect(run.status == 1)
      let status = try statuses(run)
      let message = try messages(run)
      #expect(
        status["node1"] == "failed" && message["node1"]?.contains("rsyslog.d") == true, "\(message["node1"] ?? "")")
      #expect(status["node2"] == "failed" && message["node2"]?.contains("sudo") == true, "\(message["node2"] ?? "")")
      #expect(
        status["node3"] == "failed" && message["node3"]?.lowercased().contains("rsyslog") == true,
        "\(message["node3"] ?? "")")
      for node in nodes {
        var after = try await nodeState(node.name)
        var expected = before[node.name] ?? ""
        if node.name == "node3" {
          // rsyslog on node3 cannot start at all while the fault lasts: the restart that failed took it
          // down and the rollback's restart fails too. Rules and files are still exactly as before.
          after = after.replacingOccurrences(of: "rsyslog failed", with: "rsyslog ?")
          expected = expected.replacingOccurrences(of: "rsyslog active", with: "rsyslog ?")
        }
        #expect(after == expected, "\(node.name) was not left as it was:\n\(lineDiff(expected, after))")
      }
      // With the faults gone, the same command installs every node.
      try await Lab.lab(["fault", "node1", "rsyslogd-writable"])
      try await Lab.lab(["fault", "node2", "sudo-restore"])
      try await Lab.lab(["fault", "node3", "rsyslog-unbreak"])
      let retry = try await Lab.svctrace(["install", "--json"] + sudo)
      #expect(retry.status == 0, "\(retry.stdout)")
    } cleanup: {
      _ = try? await Lab.lab(["fault", "node1", "rsyslogd-writable"])
      _ = try? await Lab.lab(["fault", "node2", "sudo-restore"])
      _ = try? await Lab.lab(["fault", "node3", "rsyslog-unbreak"])
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }

  @Test func hostileSettingsAreRejectedBeforeTouchingNodes() async throws {
    for value in ["/var/log/x;touch /tmp/pwned", "/var/log/$(id).log", "relative.log", "/var/log/a\nb"] {
      let run = try await Lab.svctrace(["install", "--check", "--log-path", value] + fleet)
      #expect(run.status == 2, "\(value.debugDescription) was accepted: \(run.stdout)")
    }
    #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
  }
}

/// Lines only in one side, for readable failure messages.
func lineDiff(_ old: String, _ new: String) -> String {
  let oldLines = Set(old.split(separator: "\n"))
  let newLines = Set(new.split(separator: "\n"))
  return (oldLines.subtracting(newLines).map { "- \($0)" } + newLines.subtracting(oldLines).map { "+ \($0)" }).joined(
    separator: "\n")
}
