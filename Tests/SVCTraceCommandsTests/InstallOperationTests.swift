import Fleet
import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization
import Testing

@testable import Rollout
@testable import SVCTraceCommands

/// `install`'s two fan-outs: every node probed first, the Service CIDR resolved from all the
/// replies, then each node planned with it; one session and one probe exec per node.
@Suite struct InstallOperationTests {
  /// Answers each node's probe with canned sections (kube-proxy's nat rules, plus per-node extras).
  final class FakeConnector: SessionConnector {
    let extras: [String: [String: String]]
    let connects = Mutex<[String: Int]>([:])
    let execs = Mutex<[String: Int]>([:])

    init(extras: [String: [String: String]]) { self.extras = extras }

    static let nat = """
      *nat
      :KUBE-SERVICES - [0:0]
      -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns/a:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAAA
      COMMIT
      """

    func connect(_ host: FleetHost) async throws -> any RemoteSession {
      connects.withLock { $0[host.id.name, default: 0] += 1 }
      let sections = ["nft-nat4": Self.nat, "nft-mangle4": "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"].merging(
        extras[host.id.name] ?? [:]
      ) { $1 }
      let names = try NodeProber.sections(settings: RolloutSettings()).map(\.name)
      return ScriptedSession(host: host.id) { [self] command, _ in
        self.execs.withLock { $0[host.id.name, default: 0] += 1 }
        guard let nonce = command.firstMatch(of: #/SVCTRACE-REPLY 1 %s\\n' ([0-9a-f]+)/#)?.1 else {
          return CommandResult(exitStatus: 1, stderr: Array("unexpected command".utf8))
        }
        var out = Array("SVCTRACE-REPLY 1 \(nonce)\n".utf8)
        for name in names {
          let body = Array((sections[name] ?? "").utf8)
          let status = name.hasPrefix("file:") && body.isEmpty ? 3 : (body.isEmpty ? 1 : 0)
          out += Array("S \(name) \(status) \(body.count)\n".utf8) + body + [10]
        }
        out += Array("E \(nonce) \(names.count)\n".utf8)
        return CommandResult(exitStatus: 0, stdout: out)
      }
    }
  }

  static func hosts(_ names: [String]) -> [FleetHost] {
    names.map { FleetHost(id: HostID($0), address: "192.0.2.1", user: "root") }
  }

  @Test func workersTakeTheControlPlanesCIDR() async throws {
    let connector = FakeConnector(extras: ["cp1": ["svc-cidr-apiserver": "manifest 10.96.0.0/12\n"]])
    let pool = SessionPool(connector)
    let results = await InstallOperation.run(
      hosts: Self.hosts(["w1", "cp1", "w2"]), runner: FleetRunner(), connector: pool, overrides: [:], check: true,
      includeDiff: false, printDiff: nil)
    await pool.closeAll()
    #expect(results.map(\.host.name) == ["w1", "cp1", "w2"])
    for result in results {
      #expect(result.status == .changed, "\(result.host): \(result.message ?? "")")
      #expect(
        result.payload?.scope == "service CIDR 10.96.0.0/12 from kube-apiserver --service-cluster-ip-range (cp1)",
        "\(result.host): \(result.payload?.scope ?? "no report")")
      #expect(result.message?.contains("10.96.0.0/12") == true)
    }
    // One session and one exec (the probe) per node: --check applies nothing.
    #expect(connector.connects.withLock { $0 } == ["w1": 1, "cp1": 1, "w2": 1])
    #expect(connector.execs.withLock { $0 } == ["w1": 1, "cp1": 1, "w2": 1])
  }

  @Test func disagreeingControlPlanesFailEveryNodeNamingThem() async throws {
    let connector = FakeConnector(extras: [
      "cp1": ["svc-cidr-apiserver": "manifest 10.96.0.0/12\n"],
      "cp2": ["svc-cidr-apiserver": "process 10.0.0.0/16\n"],
    ])
    let results = await InstallOperation.run(
      hosts: Self.hosts(["cp1", "cp2", "w1"]), runner: FleetRunner(), connector: connector, overrides: [:],
      check: true, includeDiff: false, printDiff: nil)
    #expect(results.count == 3)
    for result in results {
      #expect(result.status == .failed)
      #expect(result.message?.contains("cp1 say 10.96.0.0/12") == true, "\(result.message ?? "")")
      #expect(result.message?.contains("cp2 say 10.0.0.0/16") == true)
    }
    // A given CIDR needs no resolution: that node is planned.
    let given = await InstallOperation.run(
      hosts: Self.hosts(["cp1", "cp2"]), runner: FleetRunner(), connector: connector,
      overrides: [RolloutSettings.Key.serviceCIDR: "10.96.0.0/12"], check: true, includeDiff: false, printDiff: nil)
    #expect(given.allSatisfy { $0.status == .changed })
    #expect(given.first?.payload?.scope.contains("from --service-cidr") == true)
  }

  /// `install --limit w1`: the worker alone knows no CIDR; it keeps the one its last install recorded.
  @Test func aWorkerAloneKeepsItsRecordedCIDR() async throws {
    let recorded = NodeState(
      backend: "iptables-nft", createdBaseChains: [:], createdTables: [],
      scope: ServiceCIDRs(source: .apiServer, cidrs: [try CIDR("10.96.0.0/12")], nodes: ["cp1"]))
    let state = String(decoding: try JSONEncoder().encode(recorded), as: UTF8.self)
    let results = await InstallOperation.run(
      hosts: Self.hosts(["w1"]), runner: FleetRunner(), connector: FakeConnector(extras: ["w1": ["file:state": state]]),
      overrides: [:], check: true, includeDiff: false, printDiff: nil)
    #expect(
      results.first?.payload?.scope == "service CIDR 10.96.0.0/12 from kube-apiserver --service-cluster-ip-range (cp1)")
  }

  @Test func nothingFoundFallsBackToLearnedHostsAndSaysSo() async throws {
    let results = await InstallOperation.run(
      hosts: Self.hosts(["w1"]), runner: FleetRunner(), connector: FakeConnector(extras: [:]), overrides: [:],
      check: true, includeDiff: false, printDiff: nil)
    #expect(results.first?.payload?.scope.hasPrefix("no Service CIDR found") == true)
  }
}
