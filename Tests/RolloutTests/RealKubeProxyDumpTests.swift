import Foundation
import Rollout
import SVCTraceCore
import Testing

/// Detection and Service scope on kube-proxy's own rules: the expected dumps of kubernetes' proxier tests
/// (`Fixtures/kube-proxy`, sources in its README), not our emulation's.
@Suite struct RealKubeProxyDumpTests {
  /// One fixture: an `iptables-restore` dump kube-proxy's iptables proxier writes for one family.
  struct Dump: Sendable, CustomTestStringConvertible {
    var file: String
    var family: IPFamily
    var testDescription: String { file }
  }

  static let dumps = [
    Dump(file: "iptables-k8s-0153b96-TestEndpointSliceE2E.txt", family: .ipv4),
    Dump(file: "iptables-danwinship-01b3ac1-TestOnlyLocalNodePorts.txt", family: .ipv4),
    Dump(file: "ip6tables-danwinship-01b3ac1-TestEnableLocalhostNodePortsIPv6.txt", family: .ipv6),
    Dump(file: "iptables-danwinship-01b3ac1-TestLoadBalancer.txt", family: .ipv4),
    Dump(file: "iptables-danwinship-01b3ac1-TestClusterIPEndpointsMore.txt", family: .ipv4),
  ]

  static func load(_ file: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/kube-proxy/\(file)", withExtension: nil))
    return try String(contentsOf: url, encoding: .utf8)
  }

  /// The probe section an `iptables-save` of `backend` and `family` lands in.
  static func section(_ backend: Dataplane.Backend, _ family: IPFamily) -> String {
    switch (backend, family) {
    case (.iptablesLegacy, .ipv4): return "legacy4"
    case (.iptablesLegacy, .ipv6): return "legacy6"
    case (_, .ipv4): return "nft-nat4"
    case (_, .ipv6): return "nft-nat6"
    }
  }

  static func probe(_ sections: [String: String]) -> NodeProbe {
    NodeProber.make(host: HostID("n1"), sections: sections)
  }

  /// The `-A` lines of `chain` in the dump's `*nat` table (the `*filter` table has KUBE-SERVICES too).
  static func natLines(_ dump: String, chain: String) -> [Substring] {
    var inNat = false
    var lines: [Substring] = []
    for line in dump.split(separator: "\n") {
      if line.hasPrefix("*") { inNat = line == "*nat" }
      if inNat, line.hasPrefix("-A \(chain) ") { lines.append(line) }
    }
    return lines
  }

  /// What the scope must hold, read with regexes straight from the dump: every `-d VIP … --dport P` of nat
  /// KUBE-SERVICES as `VIP:P/proto clusterIP|external` (cluster IP when kube-proxy's comment says so).
  static func expectedServices(_ dump: String) -> Set<String> {
    var result = Set<String>()
    for line in natLines(dump, chain: "KUBE-SERVICES") {
      guard let vip = line.firstMatch(of: #/ -d ([0-9a-fA-F.:]+)(?:/32|/128)? /#)?.1,
        let port = line.firstMatch(of: #/ --dport (\d+) /#)?.1,
        let proto = line.firstMatch(of: #/ -p (\w+) /#)?.1
      else { continue }
      let host = vip.contains(":") ? "[\(vip)]" : String(vip)
      let kind = line.contains("cluster IP\"") ? "clusterIP" : "external"
      result.insert("\(host):\(port)/\(proto) \(kind)")
    }
    return result
  }

  /// NodePorts of nat KUBE-NODEPORTS as `P/proto`.
  static func expectedNodePorts(_ dump: String) -> Set<String> {
    Set(
      natLines(dump, chain: "KUBE-NODEPORTS").compactMap { line in
        guard let port = line.firstMatch(of: #/ --dport (\d+) /#)?.1, let proto = line.firstMatch(of: #/ -p (\w+) /#)?.1
        else { return nil }
        return "\(port)/\(proto)"
      })
  }

  @Test(arguments: dumps, [Dataplane.Backend.iptablesNFT, .iptablesLegacy])
  func iptablesModeAndScope(dump: Dump, backend: Dataplane.Backend) throws {
    let text = try Self.load(dump.file)
    let expected = Self.expectedServices(text)
    try #require(!expected.isEmpty, "the fixture has no KUBE-SERVICES VIP rules")

    let dataplane = try Self.probe([Self.section(backend, dump.family): text]).dataplane.get()

    #expect(dataplane.mode == .iptables)
    #expect(dataplane.backend == backend)
    #expect(dataplane.families.contains(dump.family))
    let learned = dataplane.services.map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" }
    #expect(learned.count == Set(learned).count, "a Service address learned twice: \(learned)")
    #expect(Set(learned) == expected)
    #expect(Set(dataplane.nodePorts.map { "\($0.port)/\($0.proto)" }) == Self.expectedNodePorts(text))
    #expect(dataplane.nodePorts.allSatisfy { $0.family == dump.family })
  }

  /// The regexes above must see what they claim to, or the scope comparison proves nothing.
  @Test func expectationsReadTheDumps() throws {
    #expect(
      try Self.expectedServices(Self.load(Self.dumps[0].file)) == ["172.20.1.1:0/tcp clusterIP"])
    #expect(
      try Self.expectedServices(Self.load(Self.dumps[2].file)) == ["[fd00:ab34::20]:80/tcp clusterIP"])
    #expect(try Self.expectedNodePorts(Self.load(Self.dumps[1].file)) == ["3001/tcp"])
    #expect(
      try Self.expectedServices(Self.load(Self.dumps[3].file)) == [
        "172.30.0.41:80/tcp clusterIP", "1.2.3.4:80/tcp external", "5.6.7.8:80/tcp external",
      ])
    #expect(try Self.expectedServices(Self.load(Self.dumps[4].file)) == ["172.30.0.41:80/sctp clusterIP"])
  }
}
