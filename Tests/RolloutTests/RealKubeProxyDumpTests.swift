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
    Dump(file: "iptables-tnqn-8d903e3-TestHealthCheckNodePortE2E.txt", family: .ipv4),
    Dump(file: "iptables-danwinship-01b3ac1-TestOverallIPTablesRulesWithMultipleServices.txt", family: .ipv4),
  ]

  /// One nftables fixture: kube-proxy's transaction for one family, verbatim (`Fixtures/kube-proxy/*.nft`),
  /// and what `nft list table` prints once it is loaded (`listed/`).
  struct NFTDump: Sendable, CustomTestStringConvertible {
    var file: String
    var family: IPFamily
    var testDescription: String { file }
  }

  static let nftDumps = [
    NFTDump(file: "nft-k8s-030880a-TestOverallNFTablesRules.nft", family: .ipv4),
    NFTDump(file: "nft-knftables-0087e9e-TestFakeParseDump.nft", family: .ipv4),
    NFTDump(file: "nft6-knftables-0087e9e-TestFakeParseDump.nft", family: .ipv6),
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

  /// The same rules as `iptables-nft-save` prints them on a node (`saved/`: `-d VIP/32 -p tcp -m comment
  /// --comment "…" -m tcp --dport P`, another word order and quoting): the same scope as the upstream text.
  @Test(arguments: dumps, [Dataplane.Backend.iptablesNFT, .iptablesLegacy])
  func savedFormModeAndScope(dump: Dump, backend: Dataplane.Backend) throws {
    let upstream = try Self.load(dump.file)
    let saved = try Self.load("saved/" + dump.file)
    let dataplane = try Self.probe([Self.section(backend, dump.family): saved]).dataplane.get()

    #expect(dataplane.mode == .iptables)
    #expect(dataplane.backend == backend)
    #expect(dataplane.families.contains(dump.family))
    let learned = dataplane.services.map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" }
    #expect(Set(learned) == Self.expectedServices(upstream))
    #expect(Set(dataplane.nodePorts.map { "\($0.port)/\($0.proto)" }) == Self.expectedNodePorts(upstream))
  }

  /// What the nft scope must hold, read with regexes from kube-proxy's verbatim transaction: each
  /// `add element … service-ips { VIP . proto . port [comment "…"] : goto CHAIN }` as
  /// `VIP:port/proto clusterIP|external` (a `service-` chain is a ClusterIP's).
  static func expectedNFTServices(_ transaction: String) -> Set<String> {
    let element =
      #/^add element ip6? kube-proxy service-ips \{ ([0-9a-fA-F.:]+) \. (\w+) \. (\d+)(?: comment "[^"]*")? : goto (\S+) \}$/#
    var result = Set<String>()
    for line in transaction.split(separator: "\n") {
      guard let match = line.firstMatch(of: element) else { continue }
      let host = match.1.contains(":") ? "[\(match.1)]" : String(match.1)
      let kind = match.4.hasPrefix("service-") ? "clusterIP" : "external"
      result.insert("\(host):\(match.3)/\(match.2) \(kind)")
    }
    return result
  }

  /// NodePorts of `add element … service-nodeports { proto . port … }` as `port/proto`.
  static func expectedNFTNodePorts(_ transaction: String) -> Set<String> {
    let element = #/^add element ip6? kube-proxy service-nodeports \{ (\w+) \. (\d+) /#
    return Set(
      transaction.split(separator: "\n").compactMap { line in
        line.firstMatch(of: element).map { "\($0.2)/\($0.1)" }
      })
  }

  /// kube-proxy nftables mode, from its transaction as upstream's tests expect it and from the
  /// `nft list table` listing nft prints after loading it (the probe's `kp4`/`kp6` sections).
  @Test(arguments: nftDumps, [false, true])
  func nftablesModeAndScope(dump: NFTDump, listed: Bool) throws {
    let transaction = try Self.load(dump.file)
    let text = listed ? try Self.load("listed/" + dump.file) : transaction
    let expected = Self.expectedNFTServices(transaction)
    try #require(!expected.isEmpty, "the fixture has no service-ips elements")

    let dataplane = try Self.probe([dump.family == .ipv4 ? "kp4" : "kp6": text]).dataplane.get()

    #expect(dataplane.mode == .nftables)
    #expect(dataplane.backend == .nftables)
    #expect(dataplane.families.contains(dump.family))
    let learned = dataplane.services.map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" }
    #expect(learned.count == Set(learned).count, "a Service address learned twice: \(learned)")
    #expect(Set(learned) == expected)
    #expect(Set(dataplane.nodePorts.map { "\($0.port)/\($0.proto)" }) == Self.expectedNFTNodePorts(transaction))
    #expect(dataplane.nodePorts.allSatisfy { $0.family == dump.family })
  }

  /// A dual-stack node: kube-proxy's IPv4 and IPv6 rules side by side (iptables and ip6tables, or
  /// `table ip` and `table ip6 kube-proxy`) make one scope with both families.
  @Test func dualStackNodesLearnBothFamilies() throws {
    let v4 = try Self.load(Self.dumps[6].file)
    let v6 = try Self.load(Self.dumps[2].file)
    let iptables = try Self.probe(["nft-nat4": v4, "nft-nat6": v6]).dataplane.get()
    #expect(iptables.families == [.ipv4, .ipv6])
    #expect(
      Set(iptables.services.map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" })
        == Self.expectedServices(v4).union(Self.expectedServices(v6)))
    #expect(Set(iptables.nodePorts.map(\.family)) == [.ipv4, .ipv6])

    let nft4 = try Self.load(Self.nftDumps[0].file)
    let nft6 = try Self.load(Self.nftDumps[2].file)
    let nft = try Self.probe([
      "kp4": Self.load("listed/" + Self.nftDumps[0].file), "kp6": Self.load("listed/" + Self.nftDumps[2].file),
    ]).dataplane.get()
    #expect(nft.families == [.ipv4, .ipv6])
    #expect(
      Set(nft.services.map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" })
        == Self.expectedNFTServices(nft4).union(Self.expectedNFTServices(nft6)))
    #expect(Set(nft.nodePorts.map(\.family)) == [.ipv4, .ipv6])
  }

  /// kube-proxy's userspace mode (a real 2015 `iptables-save v1.4.21`, CentOS 7's iptables): nothing to
  /// trace, and the refusal says why instead of "is kube-proxy running?".
  @Test(arguments: ["legacy4", "nft-nat4"])
  func userspaceModeIsRefusedByName(section: String) throws {
    let text = try Self.load("iptables-save-userspace-k8s-0153b96-TestGetChainLinesMultipleTables.txt")
    let result = Self.probe([section: text]).dataplane
    guard case .failure(let error) = result else {
      Issue.record("detected \(result)")
      return
    }
    #expect(error.kind == .unsupportedDataplane)
    #expect(error.reason.contains("userspace mode"))
  }

  /// Rule shapes of kube-proxy releases whose tests kept no full dump (written from those releases'
  /// proxier.go, not copied): in the v1.1x era externalIPs jump straight to `KUBE-SVC-*` (only the comment
  /// tells them from the ClusterIP); before `KUBE-EXT-*` (v1.24) externalIPs and load-balancer IPs of an
  /// externalTrafficPolicy Local Service jump to `KUBE-XLB-*`; a negated `! -d` is no Service address.
  @Test func olderReleaseRuleShapes() {
    let save = """
      *nat
      :KUBE-SERVICES - [0:0]
      -A KUBE-SERVICES -d 10.20.30.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
      -A KUBE-SERVICES -d 50.60.70.81/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
      -A KUBE-SERVICES -d 50.60.70.81/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
      -A KUBE-SERVICES -d 50.60.70.81/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -m addrtype --dst-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
      -A KUBE-SERVICES -d 192.168.99.22/32 -p tcp -m comment --comment "ns2/svc2:p80 external IP" -m tcp --dport 80 -j KUBE-XLB-GNZBNJ2PO5MGZ6GT
      -A KUBE-SERVICES -d 1.2.3.4/32 -p udp -m comment --comment "ns2/svc2:p53 loadbalancer IP" -m udp --dport 53 -j KUBE-XLB-GNZBNJ2PO5MGZ6GT
      -A KUBE-SERVICES ! -d 10.9.9.9/32 -p tcp -m tcp --dport 81 -j KUBE-SVC-XPGD46QRK7WJZT7O
      COMMIT
      """
    let dataplane = try? Self.probe(["legacy4": save]).dataplane.get()
    let learned = (dataplane?.services ?? []).map { "\($0.address) \($0.isClusterIP ? "clusterIP" : "external")" }
    #expect(
      Set(learned) == [
        "10.20.30.41:80/tcp clusterIP", "50.60.70.81:80/tcp external", "192.168.99.22:80/tcp external",
        "1.2.3.4:53/udp external",
      ])
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
    #expect(try Self.expectedServices(Self.load(Self.dumps[5].file)) == ["172.20.1.1:0/tcp clusterIP"])
    #expect(try Self.expectedNodePorts(Self.load(Self.dumps[5].file)) == ["30010/tcp"])
    #expect(
      try Self.expectedServices(Self.load(Self.dumps[6].file)) == [
        "172.30.0.41:80/tcp clusterIP", "172.30.0.42:80/tcp clusterIP", "192.168.99.22:80/tcp external",
        "1.2.3.4:80/tcp external", "172.30.0.43:80/tcp clusterIP", "172.30.0.44:80/tcp clusterIP",
        "192.168.99.33:80/tcp external", "172.30.0.45:80/tcp clusterIP", "5.6.7.8:80/tcp external",
      ])
    #expect(try Self.expectedNodePorts(Self.load(Self.dumps[6].file)) == ["3001/tcp", "3002/tcp", "3003/tcp"])
    let overall = try Self.load(Self.nftDumps[0].file)
    #expect(
      Self.expectedNFTServices(overall) == [
        "172.30.0.41:80/tcp clusterIP", "172.30.0.42:80/tcp clusterIP", "192.168.99.22:80/tcp external",
        "1.2.3.4:80/tcp external", "172.30.0.43:80/tcp clusterIP", "172.30.0.44:80/tcp clusterIP",
        "192.168.99.33:80/tcp external", "172.30.0.45:80/tcp clusterIP", "5.6.7.8:80/tcp external",
      ])
    #expect(Self.expectedNFTNodePorts(overall) == ["3001/tcp", "3002/tcp", "3003/tcp"])
    let ipv6 = try Self.load(Self.nftDumps[2].file)
    #expect(Self.expectedNFTServices(ipv6) == ["[fd00:172:30::41]:80/tcp clusterIP"])
    #expect(Self.expectedNFTNodePorts(ipv6) == ["3001/tcp"])
  }
}
