import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// The Service CIDR sources, the fleet resolver, the plan's scope and its record, and staleness (pure).
@Suite struct ScopeResolverTests {
  static func cidrs(_ text: String) throws -> [CIDR] { try text.split(separator: ",").map { try CIDR($0) } }

  @Test func serviceCIDRListIsRead() throws {
    let json = """
      {"apiVersion":"v1","items":[{"apiVersion":"networking.k8s.io/v1","kind":"ServiceCIDR",
       "metadata":{"name":"kubernetes"},"spec":{"cidrs":["10.96.0.0/12","fd00:10:96::/108"]}},
       {"kind":"ServiceCIDR","metadata":{"name":"extra"},"spec":{"cidrs":["10.200.0.0/16"]}}],
       "kind":"List","metadata":{"resourceVersion":""}}
      """
    #expect(
      ServiceCIDRFacts.parseServiceCIDRList(json) == (try Self.cidrs("10.96.0.0/12,10.200.0.0/16,fd00:10:96::/108")))
    #expect(ServiceCIDRFacts.parseServiceCIDRList("") == nil)
    #expect(ServiceCIDRFacts.parseServiceCIDRList(#"{"kind":"List","items":[]}"#) == nil)
    #expect(ServiceCIDRFacts.parseServiceCIDRList("error: the server doesn't have a resource type") == nil)
  }

  @Test func apiServerFlagPrefersTheRunningProcess() throws {
    #expect(ServiceCIDRFacts.parseAPIServer("manifest 10.96.0.0/12\n") == (try Self.cidrs("10.96.0.0/12")))
    #expect(
      ServiceCIDRFacts.parseAPIServer("manifest 10.96.0.0/12\nprocess 10.96.0.0/12,fd00::/108\n")
        == (try Self.cidrs("10.96.0.0/12,fd00::/108")))
    #expect(ServiceCIDRFacts.parseAPIServer("manifest not-a-cidr\n") == nil)
    #expect(ServiceCIDRFacts.parseAPIServer("") == nil)
  }

  /// kube-proxy's own view, from its real nftables rules (`cluster-ips-check`: `ip daddr 172.30.0.0/16 drop`).
  @Test func kubeProxyClusterIPsCheckFromTheUpstreamFixture() throws {
    let listed = try RealKubeProxyDumpTests.load("listed/nft-k8s-030880a-TestOverallNFTablesRules.nft")
    #expect(ServiceCIDRFacts.parseClusterIPsCheck(listed) == (try Self.cidrs("172.30.0.0/16")))
    let probe = NodeProber.make(host: HostID("n1"), sections: ["kp4": listed])
    #expect(probe.serviceCIDRFacts.kubeProxy == (try Self.cidrs("172.30.0.0/16")))
    // The older alpha-era ruleset has no such chain: no answer, not a wrong one.
    let alpha = try RealKubeProxyDumpTests.load("listed/nft-knftables-0087e9e-TestFakeParseDump.nft")
    #expect(ServiceCIDRFacts.parseClusterIPsCheck(alpha).isEmpty)
  }

  /// The real probe script on this machine reads the API server's manifest (a kubeadm static-pod
  /// manifest, in a temp directory) into the `svc-cidr-apiserver` section.
  @Test func theProbeReadsTheAPIServerManifest() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-sc-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var settings = RolloutSettings()
    settings.rsyslogDropInPath = directory + "/10-svctrace.conf"
    settings.logrotatePath = directory + "/logrotate"
    settings.stateDirectory = directory + "/state"
    settings.legacyRsyslogConf = directory + "/rsyslog.conf"
    settings.legacyLogrotateFile = directory + "/syslog"
    settings.apiServerManifestPath = directory + "/kube-apiserver.yaml"
    try """
    spec:
      containers:
      - command:
        - kube-apiserver
        - --secure-port=6443
        - --service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/108
        - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    """.write(toFile: settings.apiServerManifestPath, atomically: true, encoding: .utf8)
    let session = LocalShellSession(host: HostID("cp1"))
    let probe = try await NodeProber.probe(session, settings: settings)
    #expect(probe.serviceCIDRFacts.apiServer == (try Self.cidrs("10.96.0.0/12,fd00:10:96::/108")))
    #expect(probe.sections["svc-cidr-apiserver"]?.hasPrefix("manifest 10.96.0.0/12,fd00:10:96::/108") == true)
  }

  @Test func strongestSourceWinsAndWorkersFollow() throws {
    let cp = ServiceCIDRFacts(
      serviceCIDRObjects: try Self.cidrs("10.96.0.0/12,10.200.0.0/16"), apiServer: try Self.cidrs("10.96.0.0/12"))
    let worker = ServiceCIDRFacts(kubeProxy: try Self.cidrs("10.96.0.0/12"))
    let resolved = try ServiceCIDRResolver.resolve([
      (HostID("w1"), worker), (HostID("cp1"), cp), (HostID("w2"), ServiceCIDRFacts()),
    ]).get()
    #expect(resolved.source == .serviceCIDRObjects)
    #expect(resolved.cidrs == (try Self.cidrs("10.96.0.0/12,10.200.0.0/16")))
    #expect(resolved.nodes == ["cp1"])
    #expect(resolved.summary == "service CIDRs 10.96.0.0/12, 10.200.0.0/16 from ServiceCIDR objects (cp1)")

    let flagOnly = try ServiceCIDRResolver.resolve([
      (HostID("cp1"), ServiceCIDRFacts(apiServer: try Self.cidrs("10.96.0.0/12,fd00::/108"))),
      (HostID("w1"), worker),
    ]).get()
    #expect(flagOnly.source == .apiServer)
    #expect(flagOnly.cidrs.map(\.family) == [.ipv4, .ipv6])

    let kubeProxyOnly = try ServiceCIDRResolver.resolve([(HostID("w1"), worker), (HostID("w2"), worker)]).get()
    #expect(kubeProxyOnly.source == .kubeProxy)
    #expect(kubeProxyOnly.nodes == ["w1", "w2"])

    let nothing = try ServiceCIDRResolver.resolve([(HostID("w1"), ServiceCIDRFacts())]).get()
    #expect(nothing.source == .learnedHosts)
    #expect(nothing.cidrs.isEmpty)
    #expect(nothing.summary.contains("no Service CIDR found"))
  }

  @Test func disagreeingNodesAreAConflictNamingThem() throws {
    let result = ServiceCIDRResolver.resolve([
      (HostID("cp1"), ServiceCIDRFacts(apiServer: try Self.cidrs("10.96.0.0/12"))),
      (HostID("cp2"), ServiceCIDRFacts(apiServer: try Self.cidrs("10.0.0.0/16"))),
      (HostID("cp3"), ServiceCIDRFacts(apiServer: try Self.cidrs("10.96.0.0/12"))),
    ])
    guard case .failure(let conflict) = result else {
      Issue.record("expected a conflict, got \(result)")
      return
    }
    #expect(conflict.source == .apiServer)
    #expect(conflict.description.contains("cp2 say 10.0.0.0/16"))
    #expect(conflict.description.contains("cp1, cp3 say 10.96.0.0/12"))
    #expect(conflict.description.contains("--service-cidr"))
    // kube-proxy is not authoritative: a node with only its IPv4 table and a dual-stack one are joined.
    let joined = try ServiceCIDRResolver.resolve([
      (HostID("w1"), ServiceCIDRFacts(kubeProxy: try Self.cidrs("10.96.0.0/12"))),
      (HostID("w2"), ServiceCIDRFacts(kubeProxy: try Self.cidrs("10.96.0.0/12,fd00::/108"))),
    ]).get()
    #expect(joined.source == .kubeProxy)
    #expect(joined.cidrs == (try Self.cidrs("10.96.0.0/12,fd00::/108")))
    #expect(joined.nodes == ["w1", "w2"])
  }

  // MARK: The plan

  static let natWithLB = """
    *nat
    :KUBE-SERVICES - [0:0]
    -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns/a:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAAA
    -A KUBE-SERVICES -d 192.0.2.50/32 -p tcp -m comment --comment "ns/a:http loadbalancer IP" -m tcp --dport 80 -j KUBE-EXT-AAAA
    COMMIT
    """

  static func probe(_ extra: [String: String] = [:], files: [String: [UInt8]?] = [:]) -> NodeProbe {
    var sections = ["nft-nat4": natWithLB, "nft-mangle4": "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"]
    sections.merge(extra) { $1 }
    return NodeProber.make(host: HostID("w1"), sections: sections, files: files)
  }

  @Test func planUsesTheClusterCIDRAndRecordsItsSource() throws {
    var settings = RolloutSettings()
    settings.clusterServiceCIDRs = ServiceCIDRs(
      source: .apiServer, cidrs: try Self.cidrs("10.96.0.0/12"), nodes: ["cp1"])
    let plan = try NodeRollout.plan(probe: Self.probe(), settings: settings)
    #expect(plan.scopeSource.source == .apiServer)
    // The load-balancer IP outside the CIDR is the refresh's (its own chains), not the main rules'.
    #expect(plan.scope.networks[.ipv4]?.map(\.cidr.description) == ["10.96.0.0/12"])
    #expect(plan.nodeState.scope?.source == .apiServer)
    let refresh = try #require(plan.files.first { $0.path == settings.refreshScriptPath }?.desired)
    #expect(String(decoding: refresh, as: UTF8.self).contains("want=external"))
    guard case .start(let method, let interval)? = plan.refreshAction else {
      Issue.record("no refresh start: \(String(describing: plan.refreshAction))")
      return
    }
    #expect(method == .loop)
    #expect(interval == 15)
    // The refresh-owned chains exist, empty, jumped last from SVCT-PRE/SVCT-POST.
    let rules = try #require(plan.iptables.first { $0.backend == .iptablesNFT && $0.family == .ipv4 }).desired
    #expect(rules.chains.contains(RefreshScript.preChain))
    #expect(rules.rules["SVCT-PRE"]?.last == "-m comment --comment svctrace -j SVCT-PRE-X")
    #expect(rules.rules["SVCT-POST"]?.last == "-m comment --comment svctrace -j SVCT-POST-X")
  }

  /// A worker has no CIDR source of its own: `verify` (and a single-node install) uses what the
  /// last fleet install recorded in its `state.json`; the node's own stronger answer would win.
  @Test func aWorkerUsesTheRecordedScope() throws {
    let settings = RolloutSettings()
    let recorded = NodeState(
      backend: "iptables-nft", createdBaseChains: [:], createdTables: [],
      scope: ServiceCIDRs(source: .serviceCIDRObjects, cidrs: try Self.cidrs("10.96.0.0/12"), nodes: ["cp1"]))
    let bytes = [UInt8](try JSONEncoder().encode(recorded))
    let probe = Self.probe(files: [settings.statePath: bytes])
    #expect(NodeRollout.scopeCIDRs(probe: probe, settings: settings).source == .serviceCIDRObjects)
    #expect(NodeRollout.scopeCIDRs(probe: Self.probe(), settings: settings).source == .learnedHosts)
    var given = settings
    given.serviceCIDRs = try Self.cidrs("10.0.0.0/8")
    #expect(NodeRollout.scopeCIDRs(probe: probe, settings: given).source == .settings)
  }

  /// What the refresh added stays: a second plan neither empties the refresh-owned chains or set
  /// nor counts them as drift.
  @Test func refreshOwnedRulesAreKeptByTheNextInstall() throws {
    let settings = RolloutSettings()
    let first = try NodeRollout.plan(probe: Self.probe(), settings: settings)
    let target = try #require(first.iptables.first { $0.backend == .iptablesNFT && $0.family == .ipv4 })
    var installed = target.desired
    installed.rules[RefreshScript.preChain] = [
      "-d 198.51.100.7/32 -p tcp -m comment --comment svctrace -g SVCT-LOG-PRE"
    ]
    let mangle = installed.restoreFragment(from: IptablesRuleState())
      .replacingOccurrences(of: "-I PREROUTING 1", with: "-A PREROUTING")
      .replacingOccurrences(of: "-I INPUT 1", with: "-A INPUT").replacingOccurrences(
        of: "-I OUTPUT 1", with: "-A OUTPUT"
      )
      .replacingOccurrences(of: "-I POSTROUTING 1", with: "-A POSTROUTING")
      .replacingOccurrences(of: "*mangle\n", with: "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n")
    let probe = Self.probe(["nft-mangle4": mangle, "refresh": "running loop\n"])
    let second = try NodeRollout.plan(probe: probe, settings: settings)
    #expect(second.ruleChanges.isEmpty, "\(second.ruleChanges)")
    let covered = ScopeCoverage.installed(probe, backend: .iptablesNFT)
    #expect(covered.contains(try CIDR("198.51.100.7/32")))
  }

  @Test func nftExtraSetIsRenderedAndKept() throws {
    var scope = TraceScope()
    scope.families = [.ipv4]
    let table = Renderer.nftTable(scope: scope, maxRate: nil, refresh: true, extras: [.ipv4: ["192.0.2.50"]])
    #expect(table.contains("\tset extra4 {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.50 }\n\t}"))
    #expect(table.contains("ip daddr @extra4 meta l4proto { tcp, udp, sctp } counter log prefix"))
    #expect(table.contains("ct original ip daddr @extra4 counter log prefix"))
    #expect(NFTText.elements(of: "extra4", in: table) == ["192.0.2.50"])
  }

  @Test func refreshSetting() throws {
    #expect(try RolloutSettings(variables: [:]).refreshInterval == 15)
    #expect(try RolloutSettings(variables: ["svctrace_refresh": "off"]).refreshInterval == nil)
    #expect(try RolloutSettings(variables: ["svctrace_refresh": "1m"]).refreshInterval == 60)
    #expect(try RolloutSettings(variables: ["svctrace_refresh": "5s"]).refreshInterval == 5)
    #expect(throws: SettingsError.self) { try RolloutSettings(variables: ["svctrace_refresh": "11m"]) }
    #expect(throws: SettingsError.self) { try RolloutSettings(variables: ["svctrace_refresh": "often"]) }
  }

  // MARK: Staleness

  @Test func staleScopeNamesTheMissingAddresses() throws {
    func service(_ text: String) throws -> LearnedService {
      LearnedService(address: try ServiceAddress(parsing: text), isClusterIP: true)
    }
    let services = try ["10.96.0.10:80/tcp", "10.96.5.1:53/udp", "192.0.2.50:443/tcp", "198.51.100.9:80/tcp"].map(
      service)
    let fresh = ScopeCoverage(services: services, covered: try Self.cidrs("10.96.0.0/12,192.0.2.50/32,198.51.100.9/32"))
    #expect(fresh.missing.isEmpty)
    let stale = ScopeCoverage(services: services, covered: try Self.cidrs("10.96.0.10/32,192.0.2.50/32"))
    #expect(stale.missing.map(\.description) == ["10.96.5.1", "198.51.100.9"])
  }

  @Test func verifyReportsAStaleScopeAndTheRefresh() throws {
    let settings = RolloutSettings()
    let first = try NodeRollout.plan(probe: Self.probe(), settings: settings)
    let target = try #require(first.iptables.first { $0.backend == .iptablesNFT && $0.family == .ipv4 })
    // What the refresh's rounds put in its own chain: the addresses kube-proxy forwarded then.
    var installed = target.desired
    installed.rules[RefreshScript.preChain] = ["10.96.0.10", "192.0.2.50"].map {
      "-d \($0)/32 -p tcp -m comment --comment svctrace -g SVCT-LOG-PRE"
    }
    let mangle = installed.restoreFragment(from: IptablesRuleState())
      .replacingOccurrences(of: "-I PREROUTING 1", with: "-A PREROUTING")
      .replacingOccurrences(of: "-I INPUT 1", with: "-A INPUT").replacingOccurrences(
        of: "-I OUTPUT 1", with: "-A OUTPUT"
      )
      .replacingOccurrences(of: "-I POSTROUTING 1", with: "-A POSTROUTING")
    // A Service created after install: kube-proxy forwards 10.96.7.7, svctrace's rules do not log it.
    let nat = Self.natWithLB.replacingOccurrences(
      of: "COMMIT",
      with:
        "-A KUBE-SERVICES -d 10.96.7.7/32 -p tcp -m comment --comment \"ns/new:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-BBBB\nCOMMIT"
    )
    let state = [settings.statePath: Optional(Array("{}".utf8))]
    let probe = Self.probe(
      [
        "nft-mangle4": mangle, "nft-nat4": nat, "facts": "time 1000\n",
        "refresh": "last-run 995\nlast-ok 995\naddresses 2\nerror \nrunning loop\n",
      ], files: state)
    let checks = Verifier.scopeChecks(probe, dataplane: try probe.dataplane.get(), settings: settings)
    let scope = try #require(checks.first { $0.name == "scope" })
    #expect(scope.status == .fail)
    #expect(scope.evidence.hasPrefix("scope stale: 1 Service addresses not logged (e.g. 10.96.7.7)"))
    #expect(scope.fix?.contains("svctrace install") == true)
    let refresh = try #require(checks.first { $0.name == "refresh" })
    #expect(refresh.status == .pass)
    #expect(refresh.evidence.contains("last good round 5 s ago"))

    let stopped = Self.probe(
      ["nft-mangle4": mangle, "facts": "time 1000\n", "refresh": "error nft: boom\n"], files: state)
    let stoppedChecks = Verifier.scopeChecks(stopped, dataplane: try stopped.dataplane.get(), settings: settings)
    #expect(stoppedChecks.first { $0.name == "refresh" }?.status == .fail)
    #expect(stoppedChecks.first { $0.name == "scope" }?.status == .pass)
    // Not installed at all: no refresh check (the rules and files checks say it).
    let bare = Self.probe(["facts": "time 1000\n"])
    #expect(
      !Verifier.scopeChecks(bare, dataplane: try bare.dataplane.get(), settings: settings).contains {
        $0.name == "refresh"
      })
  }
}

/// The refresh's shell extraction, run by `/bin/sh` and `awk` on EVERY kube-proxy fixture, finds
/// exactly the Service addresses the Swift parser learns (all of them, or only the load-balancer and
/// external IPs): the node-side script is tied to the tested parser.
@Suite struct RefreshExtractionTests {
  static func run(_ program: String, _ input: String, want: String, family: IPFamily) async throws -> Set<String> {
    let result = try await shell(
      "awk -v want=\(want) -v fam=\(family == .ipv4 ? 4 : 6) \(try ShellQuote.quote(program))", stdin: Array(input.utf8)
    )
    try #require(result.exitStatus == 0, "awk failed: \(result.stderrText)")
    return Set(result.stdoutText.split(separator: "\n").compactMap { IPAddress($0)?.description })
  }

  static func expected(_ services: [LearnedService], external: Bool) -> Set<String> {
    Set(services.filter { !external || !$0.isClusterIP }.map(\.address.address.description))
  }

  @Test(arguments: RealKubeProxyDumpTests.dumps, [false, true])
  func iptablesFixtures(dump: RealKubeProxyDumpTests.Dump, saved: Bool) async throws {
    let text = try RealKubeProxyDumpTests.load((saved ? "saved/" : "") + dump.file)
    let nat = try #require(IptablesSave(parsing: text).tables["nat"])
    let learned = NodeProber.learnFromNat(nat, family: dump.family).services
    try #require(!learned.isEmpty)
    for external in [false, true] {
      let found = try await Self.run(
        RefreshScript.iptablesAwk, text, want: external ? "external" : "all", family: dump.family)
      #expect(found == Self.expected(learned, external: external), "\(dump.file) external=\(external)")
    }
    // The other family's run finds nothing.
    let other = try await Self.run(
      RefreshScript.iptablesAwk, text, want: "all", family: dump.family == .ipv4 ? .ipv6 : .ipv4)
    #expect(other.isEmpty)
  }

  @Test(arguments: RealKubeProxyDumpTests.nftDumps)
  func nftablesFixtures(dump: RealKubeProxyDumpTests.NFTDump) async throws {
    let text = try RealKubeProxyDumpTests.load("listed/" + dump.file)
    let learned = NFTText.kubeProxyServices(text, family: dump.family).services
    try #require(!learned.isEmpty)
    for external in [false, true] {
      let found = try await Self.run(
        RefreshScript.nftAwk, text, want: external ? "external" : "all", family: dump.family)
      #expect(found == Self.expected(learned, external: external), "\(dump.file) external=\(external)")
    }
  }

  /// Some fixture has load-balancer or external IPs, so the `external` comparison is not vacuous.
  @Test func externalAddressesExistInTheFixtures() throws {
    let text = try RealKubeProxyDumpTests.load("saved/iptables-danwinship-01b3ac1-TestLoadBalancer.txt")
    let nat = try #require(IptablesSave(parsing: text).tables["nat"])
    #expect(NodeProber.learnFromNat(nat, family: .ipv4).services.contains { !$0.isClusterIP })
    let nft = try RealKubeProxyDumpTests.load("listed/nft-k8s-030880a-TestOverallNFTablesRules.nft")
    #expect(NFTText.kubeProxyServices(nft, family: .ipv4).services.contains { !$0.isClusterIP })
  }
}
