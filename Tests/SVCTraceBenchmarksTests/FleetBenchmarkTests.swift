import ArgumentParser
import Foundation
import Rollout
import SVCTraceCommands
import SVCTraceCore
import Testing

@testable import SVCTraceBenchmarks

/// The pure pieces of `svctrace-bench fleet`: its arguments, ratios, goals, percentiles, the
/// table, the ground-truth comparison and the shell-script floor.
@Suite("Fleet benchmark")
struct FleetBenchmarkTests {
  let inventory = ["-i", "/nonexistent/inventory.ini"]

  @Test func argumentsAreValidated() throws {
    let good = try SVCTraceBench.parseAsRoot(["fleet"] + inventory) as? BenchFleet
    #expect(good?.nodes == 100)
    #expect(good?.fleet.forks == 20)
    #expect(good?.floorNodes == 20)
    let bad: [[String]] = [
      ["fleet"],  // no inventory
      ["fleet", "--nodes", "0"] + inventory,
      ["fleet", "--nodes", "10", "--floor-nodes", "11"] + inventory,
      ["fleet", "--follow-interval", "0.1"] + inventory,
      ["fleet", "--follow-wait", "0"] + inventory,
      ["fleet", "--traffic-count", "0"] + inventory,
      ["fleet", "--traffic-timeout", "0"] + inventory,
      ["fleet", "--burst", "-1"] + inventory,
      ["fleet", "--follow-connections", "-5"] + inventory,
    ]
    for arguments in bad {
      #expect(throws: (any Error).self, "\(arguments)") { try SVCTraceBench.parseAsRoot(arguments) }
    }
    _ = try SVCTraceBench.parseAsRoot(
      ["fleet", "--nodes", "20", "--floor-nodes", "0", "--follow-connections", "0"] + inventory)
  }

  @Test func countPerKindAndLimit() {
    #expect(BenchFleet.countPerKind(250) == 50)
    #expect(BenchFleet.countPerKind(201) == 41)
    #expect(BenchFleet.countPerKind(1) == 1)
    #expect(BenchFleet.limit(first: 2, of: ["node1", "node2", "node3"]) == "node1:node2")
    #expect(BenchFleet.limit(first: 3, of: ["node1", "node2", "node3"]) == nil)
  }

  @Test func nearestRankPercentiles() {
    let values = (1...20).map(Double.init)
    #expect(Percentile.nearestRank(values, 50) == 10)
    #expect(Percentile.nearestRank(values, 95) == 19)
    #expect(Percentile.nearestRank(values, 100) == 20)
    #expect(Percentile.nearestRank([4], 95) == 4)
    #expect(Percentile.nearestRank([], 50) == nil)
    let latency = FollowLatency(delays: [3, 1, 2, 0.5], connections: 5, interval: 1, peakRSSKiB: 0)
    #expect(latency.p50 == 1 && latency.p95 == 3 && latency.max == 3)
    #expect(latency.neverPrinted == 1)
    #expect(!latency.passes, "one connection was never printed")
    #expect(FollowLatency(delays: [0.5, 2.9], connections: 2, interval: 1, peakRSSKiB: 0).passes)
    #expect(!FollowLatency(delays: [0.5, 3.1], connections: 2, interval: 1, peakRSSKiB: 0).passes)
  }

  private func step(_ name: String, _ seconds: Double, goal: Double?, status: Int32 = 0, rss: Int = 50_000)
    -> FleetStep
  {
    FleetStep(
      name: name, seconds: seconds, status: status, peakRSSKiB: rss, goal: goal.map { FleetGoal(maxRatio: $0) },
      memoryGoalApplies: true, log: "/dev/null")
  }

  @Test func ratiosGoalsAndTable() {
    var report = FleetReport(
      nodes: 100, forks: 20, trafficConnections: 1000, baseline: step("ssh NODE true", 10, goal: nil),
      steps: [
        step("svctrace ping", 8, goal: 0.8), step("svctrace verify", 16, goal: 1.5),
        step("svctrace remove", 5, goal: 1.5, status: 1), step("svctrace install (again)", 12, goal: nil, rss: 300_000),
      ])
    #expect(report.ratio(report.steps[0]) == 0.8)
    #expect(report.verdict(report.steps[0]) == "≤ 0.800× PASS", "the goal's edge passes")
    #expect(report.verdict(report.steps[1]) == "≤ 1.500× MISS")
    #expect(report.verdict(report.steps[2]) == "≤ 1.500× MISS (exit 1)", "a failed step misses whatever its time")
    #expect(report.verdict(report.steps[3]) == "—")
    #expect(report.memoryVerdict(report.steps[0]) == "PASS")
    #expect(report.memoryVerdict(report.steps[3]) == "MISS", "300,000 KiB is over 200 MB")
    report.floor = FloorComparison(
      nodes: 20, svctrace: step("svctrace install", 14.5, goal: nil), shellScripts: step("scripts", 3.25, goal: nil),
      notVerified: [])
    #expect(!report.floor!.passes)
    let text = report.render()
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines.contains { $0.contains("svctrace ping") && $0.contains("0.800×") && $0.contains("0.080 s") })
    #expect(lines.contains { $0.contains("svctrace verify") && $0.contains("1.600×") && $0.contains("MISS") })
    #expect(text.contains("ratio svctrace/scripts 4.462×; goal ≤ 2.000×: MISS"))
    // Columns line up: in every row of the main table the time column starts at the same place.
    let rows = lines.filter { $0.hasPrefix("  svctrace ") || $0.hasPrefix("  ssh NODE true") }.prefix(5)
    let starts = Set(rows.map { Self.secondColumn($0) })
    #expect(rows.count == 5 && starts.count == 1, "\(rows)")
  }

  /// Where the second column of a table row starts: after the first run of two or more spaces
  /// past the indentation.
  static func secondColumn(_ line: String) -> Int {
    let characters = Array(line)
    var index = 2
    while index + 1 < characters.count, !(characters[index] == " " && characters[index + 1] == " ") { index += 1 }
    while index < characters.count, characters[index] == " " { index += 1 }
    return index
  }

  @Test func groundTruthComparison() {
    let nodeIPs = ["node1": "10.250.0.11", "node2": "10.250.0.12"]
    let clusterIP: [String: Any] = [
      "kind": "pod-clusterip", "proto": "tcp", "client_ip": "10.244.1.10", "client_port": 40000,
      "service_ip": "10.96.0.10", "service_port": 80, "dnat_node": "node1", "pod_ip": "10.244.2.10", "pod_port": 8080,
    ]
    let nodePort: [String: Any] = [
      "kind": "nodeport", "proto": "tcp", "client_ip": "10.250.0.250", "client_port": 40001,
      "service_ip": "10.96.0.12", "service_port": 80, "dnat_node": "node2", "pod_ip": "10.244.1.10", "pod_port": 8080,
    ]
    let udp: [String: Any] = [
      "kind": "udp", "proto": "udp", "client_ip": "10.244.2.11", "client_port": 40002,
      "service_ip": "10.96.0.53", "service_port": 53, "dnat_node": "node2", "pod_ip": "10.244.1.11", "pod_port": 8080,
    ]
    let lost: [String: Any] = [
      "kind": "host-clusterip", "proto": "tcp", "client_ip": "10.250.0.11", "client_port": 40003,
      "service_ip": "10.96.0.10", "service_port": 80, "dnat_node": "node1", "pod_ip": "10.244.1.10", "pod_port": 8080,
    ]
    let records: [[String: Any]] = [
      [
        "proto": "tcp", "client_ip": "10.244.1.10", "client_port": 40000, "service_ip": "10.96.0.10",
        "service_port": 80, "pod_ip": "10.244.2.10", "pod_port": 8080, "node": "node1",
      ],
      // NodePort: the service address is the node's own IP and the node port.
      [
        "proto": "tcp", "client_ip": "10.250.0.250", "client_port": 40001, "service_ip": "10.250.0.12",
        "service_port": 30080, "pod_ip": "10.244.1.10", "pod_port": 8080, "node": "node2",
      ],
      // Wrong pod and node.
      [
        "proto": "udp", "client_ip": "10.244.2.11", "client_port": 40002, "service_ip": "10.96.0.53",
        "service_port": 53, "pod_ip": "10.244.2.11", "pod_port": 8080, "node": "node1",
      ],
    ]
    let result = GroundTruth.compare(truth: [clusterIP, nodePort, udp, lost], records: records, nodeIPs: nodeIPs)
    #expect(result.connections == 4 && result.right == 2)
    #expect(result.missingCount == 1 && result.missing.first?.hasPrefix("host-clusterip tcp|10.250.0.11:40003") == true)
    #expect(result.wrongCount == 1 && result.wrong.first?.contains("pod_ip 10.244.2.11") == true)
    #expect(result.wrong.first?.contains("node node1 instead of node2") == true)
    #expect(result.kinds == ["pod-clusterip": 1, "nodeport": 1, "udp": 1, "host-clusterip": 1])
    #expect(!result.passes)
    // A connection with two records is ambiguous, not right.
    let twice = GroundTruth.compare(truth: [clusterIP], records: [records[0], records[0]], nodeIPs: nodeIPs)
    #expect(twice.right == 0 && twice.missingCount == 1)
    // Unless their times tell them apart: a later run reused the client ip:port 18 s later.
    var timed = clusterIP
    timed["time"] = "2026-12-07T13:55:04.351074Z"
    var early = records[0]
    early["time"] = "2026-12-07T13:55:04.041646Z"
    var late = records[0]
    late["time"] = "2026-12-07T13:55:22.273530Z"
    late["pod_ip"] = "10.244.16.10"
    let reused = GroundTruth.compare(truth: [timed], records: [late, early], nodeIPs: nodeIPs)
    #expect(reused.passes, "\(reused.missing) \(reused.wrong)")
    early["time"] = "2026-12-07T13:55:03.9Z"
    late["time"] = "2026-12-07T13:55:05.0Z"
    #expect(GroundTruth.compare(truth: [timed], records: [late, early], nodeIPs: nodeIPs).missingCount == 1)
    #expect(GroundTruth.compare(truth: [clusterIP], records: records, nodeIPs: nodeIPs).passes)
    // A pre line of the same client without a post line (method pod-unknown, no pod) answers
    // nothing: it neither makes the connection ambiguous nor stands in for a missing one.
    var podUnknown = records[0]
    podUnknown["method"] = "pod-unknown"
    podUnknown["pod_ip"] = NSNull()
    podUnknown["pod_port"] = NSNull()
    #expect(GroundTruth.compare(truth: [clusterIP], records: [records[0], podUnknown], nodeIPs: nodeIPs).passes)
    #expect(GroundTruth.compare(truth: [clusterIP], records: [podUnknown], nodeIPs: nodeIPs).missingCount == 1)
  }

  @Test func trafficTimestamps() throws {
    let base = try #require(GroundTruth.epochSeconds("2026-11-27T13:00:00Z"))
    #expect(base == 1_795_784_400)
    #expect(GroundTruth.epochSeconds("2026-11-27T13:00:00.123456Z") == base + 0.123456)
    #expect(GroundTruth.epochSeconds("2026-11-27T13:00:01.5Z") == base + 1.5)
    for bad in [
      "", "2026-11-27T13:00:00", "2026-11-27T13:00:00.Z", "2026-13-27T13:00:00Z", "2026-11-27 13:00:00Z",
      "x026-11-27T13:00:00Z",
    ] {
      #expect(GroundTruth.epochSeconds(bad) == nil, "\(bad)")
    }
    let lines = try GroundTruth.objects(jsonLines: "{\"a\":1}\n\n{\"b\":2}\n")
    #expect(lines.count == 2)
    #expect(throws: BenchmarkFailure.self) { try GroundTruth.objects(jsonLines: "{\"a\":1}\nnot json\n") }
  }

  @Test func floorScriptMakesTheSameEditsInOneShellScript() throws {
    var fixture = Fixture(vars: [:], files: [:])
    fixture.vars = [
      "svct_backend": "iptables-legacy", "svct_state_dir": "/var/lib/svctrace",
      "svct_dropin": "/etc/rsyslog.d/10-svctrace.conf", "svct_logrotate": "/etc/logrotate.d/svctrace",
      "svct_iptables_chains": ["SVCT-PRE", "SVCT-OUT"],
    ]
    fixture.files = [
      "state.json": Array("{}\n".utf8), "remove.sh": Array("#!/bin/sh\n".utf8), "rsyslog.conf": Array("x\n".utf8),
      "logrotate": Array("y\n".utf8), "mangle.rules": Array("-A SVCT-PRE -j LOG\n-I PREROUTING 1 -j SVCT-PRE".utf8),
    ]
    let script = try fixture.shellScript()
    #expect(script.contains("[ \"$backend\" = iptables-legacy ]"))
    #expect(script.contains("echo ':SVCT-PRE - [0:0]'") && script.contains("echo ':SVCT-OUT - [0:0]'"))
    #expect(script.contains("iptables-legacy-save -t mangle") && script.contains("| iptables-legacy-restore --noflush"))
    #expect(script.contains(Data("-A SVCT-PRE -j LOG\n-I PREROUTING 1 -j SVCT-PRE".utf8).base64EncodedString()))
    #expect(script.contains("rsyslogd -N1 -f /etc/rsyslog.d/10-svctrace.conf.svct-floor"))
    #expect(script.contains("systemctl restart rsyslog"))
    #expect(script.contains("mv -f /var/lib/svctrace/remove.sh.svct-floor /var/lib/svctrace/remove.sh"))
    #expect(!script.contains("nft -f"))

    fixture.vars["svct_backend"] = "nftables"
    fixture.files["svctrace.nft"] = Array("table inet svctrace {}\n".utf8)
    let nft = try fixture.shellScript()
    #expect(nft.contains("nft list table inet svctrace >/dev/null 2>&1 || base64 -d <<'SVCT_EOF' | nft -f -"))
    #expect(!nft.contains("iptables-legacy-restore"))

    fixture.vars["svct_state_dir"] = nil
    #expect(throws: BenchmarkFailure.self) { try fixture.shellScript() }
  }

  /// A dual-stack iptables node: the floor script restores the IPv6 rules with the ip6tables tool of
  /// the same backend, after the IPv4 ones; a node without IPv6 rules gets no ip6tables at all.
  @Test func floorScriptLoadsTheIPv6RulesWithIp6tables() throws {
    var fixture = Fixture(vars: [:], files: [:])
    fixture.vars = [
      "svct_backend": "iptables-legacy", "svct_state_dir": "/var/lib/svctrace",
      "svct_dropin": "/etc/rsyslog.d/10-svctrace.conf", "svct_logrotate": "/etc/logrotate.d/svctrace",
      "svct_iptables_chains": ["SVCT-PRE"], "svct_ip6tables_chains": ["SVCT-PRE", "SVCT-LOG-PRE"],
    ]
    let rules6 = "-A SVCT-PRE -d fd00::/108 -j LOG\n-I PREROUTING 1 -j SVCT-PRE"
    fixture.files = [
      "state.json": [], "remove.sh": [], "rsyslog.conf": [], "logrotate": [],
      "mangle.rules": Array("-A SVCT-PRE -d 10.96.0.0/12 -j LOG\n-I PREROUTING 1 -j SVCT-PRE".utf8),
      "mangle6.rules": Array(rules6.utf8),
    ]
    let script = try fixture.shellScript()
    let v4 = try #require(script.range(of: "| iptables-legacy-restore --noflush\n"))
    let v6 = try #require(script.range(of: "| ip6tables-legacy-restore --noflush\n"))
    #expect(v4.upperBound <= v6.lowerBound, "IPv4 first, then IPv6")
    let block6 = String(script[v4.upperBound..<v6.upperBound])
    #expect(block6.contains("echo ':SVCT-PRE - [0:0]'") && block6.contains("echo ':SVCT-LOG-PRE - [0:0]'"))
    #expect(block6.contains("ip6tables-legacy-save -t mangle | { grep -E -e"))
    #expect(block6.contains("| sed 's/^-A /-D /'"))
    func base64(_ text: String) -> String {
      Data(text.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
    }
    #expect(block6.contains(base64(rules6)))
    #expect(!block6.contains("iptables-legacy"), "no IPv4 tool in the IPv6 restore")
    let rules4 = base64("-A SVCT-PRE -d 10.96.0.0/12 -j LOG\n-I PREROUTING 1 -j SVCT-PRE")
    #expect(script[..<v4.upperBound].contains(rules4) && !block6.contains(rules4))

    fixture.vars["svct_backend"] = "iptables-nft"
    #expect(try fixture.shellScript().contains("| ip6tables-nft-restore --noflush\n"))

    fixture.vars["svct_ip6tables_chains"] = [String]()
    fixture.files["mangle6.rules"] = []
    let v4Only = try fixture.shellScript()
    #expect(v4Only.contains("| iptables-nft-restore --noflush\n"))
    #expect(!v4Only.contains("ip6tables-nft-save -t mangle") && !v4Only.contains("ip6tables-nft-restore"))

    fixture.vars["svct_backend"] = "ipchains"
    #expect(throws: BenchmarkFailure.self) { try fixture.shellScript() }
  }

  /// `Fixture(plan:)` on a dual-stack iptables-nft node: both families' chains, restore bodies and
  /// compared lines are svctrace's own desired rules, the IPv6 ones with the IPv6 Service CIDR.
  @Test func fixtureCarriesTheIPv6IptablesRules() throws {
    let nat4 = """
      *nat
      :KUBE-SERVICES - [0:0]
      -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns/a:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAAA
      COMMIT
      """
    let nat6 = """
      *nat
      :KUBE-SERVICES - [0:0]
      -A KUBE-SERVICES -d fd00::a/128 -p tcp -m comment --comment "ns/a6:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-BBBB
      COMMIT
      """
    let hint = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"
    let probe = NodeProber.make(
      host: HostID("w1"),
      sections: ["nft-nat4": nat4, "nft-nat6": nat6, "nft-mangle4": hint, "nft-mangle6": hint], files: [:])
    var settings = RolloutSettings()
    settings.clusterServiceCIDRs = ServiceCIDRs(
      source: .apiServer, cidrs: [try CIDR("10.96.0.0/12"), try CIDR("fd00::/108")], nodes: ["cp1"])
    let plan = try NodeRollout.plan(probe: probe, settings: settings)
    #expect(plan.scope.families.contains(.ipv6))
    let fixture = try Fixture(plan: plan)
    #expect(fixture.vars["svct_backend"] as? String == "iptables-nft")
    #expect(fixture.vars["svct_refresh_chains"] as? [String] == ["SVCT-PRE-X", "SVCT-POST-X"])

    for family in IPFamily.allCases {
      let desired = try #require(
        plan.iptables.first { $0.backend == .iptablesNFT && $0.family == family }?.desired, "\(family)")
      #expect(!desired.chains.isEmpty && !desired.jumps.isEmpty, "\(family)")
      let names = Fixture.iptablesNames(family)
      #expect(fixture.vars[names.chains] as? [String] == desired.chains)
      // The compared lines are svctrace's canonical lines, in iptables-save's spelling, without
      // the rules of the refresh-owned chains.
      let canonical = desired.lines.filter { line in
        !Fixture.refreshChains.contains { line.hasPrefix("-A \($0) ") }
      }.map {
        $0.hasPrefix(":") ? $0 + " - [0:0]" : String($0.prefix { $0 != "#" }).trimmingCharacters(in: .whitespaces)
      }
      #expect((fixture.vars[names.expected] as? [String])?.sorted() == canonical.sorted(), "\(family)")
      // The restore body: every rule appended, every jump inserted at its position.
      let body = String(decoding: try #require(fixture.files[names.rules]), as: UTF8.self)
        .split(separator: "\n").map(String.init)
      let rules = desired.chains.flatMap { chain in (desired.rules[chain] ?? []).map { "-A \(chain) \($0)" } }
      #expect(body.filter { $0.hasPrefix("-A ") } == rules, "\(family)")
      #expect(
        Set(body.filter { $0.hasPrefix("-I ") })
          == Set(desired.jumps.map { "-I \($0.chain) \($0.position) \($0.spec)" }), "\(family)")
    }
    let rules4 = String(decoding: fixture.files["mangle.rules"] ?? [], as: UTF8.self)
    let rules6 = String(decoding: fixture.files["mangle6.rules"] ?? [], as: UTF8.self)
    #expect(rules4.contains("-d 10.96.0.0/12 ") && !rules4.contains("fd00::"))
    #expect(rules6.contains("-d fd00::/108 ") && !rules6.contains("10.96.0.0"))

    let script = try fixture.shellScript()
    #expect(
      script.contains("| iptables-nft-restore --noflush\n") && script.contains("| ip6tables-nft-restore --noflush\n"))

    // Installed, with a rule the refresh added in SVCT-PRE-X: the playbook does not compare it.
    var installed = try #require(plan.iptables.first { $0.backend == .iptablesNFT && $0.family == .ipv6 }).desired
    let added = "-d fd00:1::7/128 -p tcp -m comment --comment svctrace -g SVCT-LOG-PRE"
    installed.rules["SVCT-PRE-X"] = [added]
    let mangle6 = installed.restoreFragment(from: IptablesRuleState())
      .replacingOccurrences(of: #"-I ([A-Z]+) 1 "#, with: "-A $1 ", options: .regularExpression)
    let again = try Fixture(
      plan: NodeRollout.plan(
        probe: NodeProber.make(
          host: HostID("w1"),
          sections: ["nft-nat4": nat4, "nft-nat6": nat6, "nft-mangle4": hint, "nft-mangle6": mangle6], files: [:]),
        settings: settings))
    let expected6 = try #require(again.vars["svct_ip6tables_expected"] as? [String])
    #expect(expected6.contains(":SVCT-PRE-X - [0:0]") && !expected6.contains("-A SVCT-PRE-X \(added)"))
    #expect(expected6.sorted() == (fixture.vars["svct_ip6tables_expected"] as? [String])?.sorted())
  }
}
