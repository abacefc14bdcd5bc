import Rollout
import SVCTraceBenchmarks
import SVCTraceCore
import Testing

/// The pure parts of `svctrace-bench refresh`: the generated kube-proxy ruleset is what svctrace's
/// parser reads as N ClusterIPs and N/20 load-balancer IPs, the baseline is the whole-table script,
/// and the figures add up.
@Suite("Refresh benchmark")
struct RefreshBenchmarkTests {
  @Test(arguments: [1, 19, 20, 1000])
  func generatedRulesetIsWhatTheParserLearns(services: Int) throws {
    let text = KubeProxyNatRuleset.render(services: services)
    let nat = try #require(IptablesSave(parsing: text).tables["nat"])
    let loadBalancers = KubeProxyNatRuleset.loadBalancers(services: services)
    #expect(loadBalancers == services / 20)
    #expect(nat.rules(of: "KUBE-SERVICES").count == services + loadBalancers + 1, "one per address, then nodeports")
    #expect(nat.chains.count == 6 + services * (1 + KubeProxyNatRuleset.endpoints) + loadBalancers)
    #expect(Set(nat.chains).count == nat.chains.count, "no chain declared twice")

    let learned = NodeProber.learnFromNat(nat, family: .ipv4)
    let clusterIPs = Set(learned.services.filter(\.isClusterIP).map(\.address.address))
    let external = Set(learned.services.filter { !$0.isClusterIP }.map(\.address.address))
    #expect(clusterIPs == Set(KubeProxyNatRuleset.clusterIPs(services: services).compactMap { IPAddress($0) }))
    #expect(clusterIPs.count == services)
    #expect(external == Set(KubeProxyNatRuleset.loadBalancerIPs(services: services).compactMap { IPAddress($0) }))
    #expect(external.count == loadBalancers)
    #expect(learned.nodePorts.count == loadBalancers)
    #expect(learned.services.allSatisfy { $0.address.port == 80 && $0.address.proto == .tcp })
    #expect(NodeProber.learnFromNat(nat, family: .ipv6).services.isEmpty)

    #expect(
      RefreshBenchmark.expectedAddresses(services: services, includeClusterIPs: false)
        == Set(KubeProxyNatRuleset.loadBalancerIPs(services: services)))
    #expect(
      RefreshBenchmark.expectedAddresses(services: services, includeClusterIPs: true).count
        == services + loadBalancers)

    // iptables-restore takes it: every jump goes to a declared chain (or a target), each
    // KUBE-SVC- chain spreads over the endpoints, the last without a probability.
    let declared = Set(nat.chains)
    for rule in nat.rules {
      let words = IptablesSave.words(rule)
      if let index = words.firstIndex(of: "-j"), words[index + 1].hasPrefix("KUBE-") {
        #expect(declared.contains(words[index + 1]), "\(rule)")
      }
    }
    let first = "KUBE-SVC-0000000000000000"
    #expect(nat.rules(of: first).count == KubeProxyNatRuleset.endpoints)
    #expect(nat.rules(of: first).filter { $0.contains("-m statistic --mode random") }.count == 2)
    #expect(text.hasPrefix("*nat\n") && text.hasSuffix("\nCOMMIT\n"))
  }

  @Test func addressPlanHoldsTheLargestRuleset() {
    let services = KubeProxyNatRuleset.maxServices
    let clusterIPs = KubeProxyNatRuleset.clusterIPs(services: services)
    let loadBalancerIPs = KubeProxyNatRuleset.loadBalancerIPs(services: services)
    #expect(Set(clusterIPs).count == services && Set(loadBalancerIPs).count == services / 20)
    let serviceCIDR = try? CIDR(parsing: "10.96.0.0/16")
    #expect(clusterIPs.allSatisfy { IPAddress($0).map { serviceCIDR?.contains($0) == true } == true })
    #expect(loadBalancerIPs.allSatisfy { IPAddress($0).map { serviceCIDR?.contains($0) == false } == true })
    // The last load balancer's NodePort stays in the default range (30000–32767).
    #expect(30000 + loadBalancerIPs.count - 1 <= 32767)
  }

  @Test(arguments: [Dataplane.Backend.iptablesNFT, .iptablesLegacy])
  func baselineSavesWholeTables(backend: Dataplane.Backend) throws {
    var settings = RolloutSettings()
    settings.stateDirectory = "/tmp/svct-refresh-bench-state"
    for includeClusterIPs in [false, true] {
      let current = try RefreshScript.render(
        settings: settings, backend: backend, families: [.ipv4], includeClusterIPs: includeClusterIPs)
      let baseline = try RefreshBenchmark.baselineScript(
        settings: settings, backend: backend, includeClusterIPs: includeClusterIPs)
      #expect(current.contains("-t nat -S KUBE-SERVICES"), "the current script lists one chain")
      #expect(!baseline.contains(" -S "), "the baseline lists no chain")
      #expect(baseline.contains("mangle=$(\"$b-save\" -t mangle 2>&1)"))
      #expect(baseline.contains("nat=$(\"$b-save\" -t nat 2>&1)"))
      #expect(baseline.contains("b=\(backend.rawValue);"))
      #expect(baseline.contains("want=\(includeClusterIPs ? "all" : "external")"))
      // Everything else is the current script's: the same status, awk, restore.
      let onlyCurrent = Set(current.split(separator: "\n")).subtracting(baseline.split(separator: "\n"))
      #expect(onlyCurrent.allSatisfy { $0.contains(" -S ") || $0.hasPrefix("  fi") || $0.hasPrefix("    ") })
    }
  }

  @Test func figuresAndReport() {
    func rounds(_ cpu: [Double]) -> [RefreshRoundFigures] {
      cpu.map { RefreshRoundFigures(cpuSeconds: $0, wallSeconds: $0 * 1.5) }
    }
    let first = RefreshRoundFigures(cpuSeconds: 5, wallSeconds: 6)
    let baseline = RefreshVariantFigures(
      variant: "baseline", first: first, steady: rounds([4.0, 3.0, 3.6]), intervalSeconds: 15)
    let current = RefreshVariantFigures(
      variant: "current", first: first, steady: rounds([0.12, 0.1, 0.3, 0.09]), intervalSeconds: 15)
    #expect(baseline.medianCPUSeconds == 3.6 && baseline.minCPUSeconds == 3.0)
    #expect(abs(baseline.percentOfCore - 24) < 1e-9)
    #expect(abs(current.medianCPUSeconds - 0.11) < 1e-9 && current.minCPUSeconds == 0.09)
    let external = RefreshCaseFigures(want: "external", addresses: 250, baseline: baseline, current: current)
    #expect(abs(external.cpuRatio - 3.6 / 0.11) < 1e-9)
    let slow = RefreshVariantFigures(variant: "current", first: first, steady: rounds([0.3]), intervalSeconds: 15)
    var figures = RefreshBenchmarkFigures(
      backend: "iptables-nft", services: 5000, loadBalancerIPs: 250, rounds: 3, intervalSeconds: 15,
      baseline: "whole tables", current: "one chain", cases: [external])
    #expect(figures.meetsGoal)
    let report = figures.report()
    #expect(report.contains("Service CIDR known (want=external): 250 addresses"))
    #expect(report.contains("baseline/current: 32.7× CPU"))
    #expect(report.contains(": want=external 0.73 % met"))
    figures.cases.append(RefreshCaseFigures(want: "all", addresses: 5250, baseline: baseline, current: slow))
    #expect(!figures.meetsGoal)
    #expect(figures.report().contains(": want=external 0.73 % met, want=all 2.00 % NOT met"))
  }
}
