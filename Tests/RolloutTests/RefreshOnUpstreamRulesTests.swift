import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// The whole `refresh.sh` on kube-proxy's own rules: each real dump (`Fixtures/kube-proxy`, the form a
/// node prints) is loaded into a scratch network namespace with real iptables (nft and legacy
/// backends) or nft, next to svctrace's chains or table; one refresh round must fill the
/// refresh-owned part with exactly the addresses svctrace's parser learns from the same dump.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct RefreshOnUpstreamRulesTests {
  struct Case: Sendable, CustomTestStringConvertible {
    var file: String
    var family: IPFamily
    var backend: Dataplane.Backend
    var testDescription: String { "\(backend.rawValue) \(file)" }
  }

  static let cases: [Case] =
    RealKubeProxyDumpTests.dumps.flatMap { dump in
      [Dataplane.Backend.iptablesNFT, .iptablesLegacy].map { Case(file: dump.file, family: dump.family, backend: $0) }
    }
    + RealKubeProxyDumpTests.nftDumps.map { Case(file: $0.file, family: $0.family, backend: .nftables) }

  @Test(arguments: cases)
  func oneRoundCoversWhatTheParserLearns(test: Case) async throws {
    let namespace = "svtrf-\(UUID().uuidString.prefix(6).lowercased())"
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svtrf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(
      at: directory.appendingPathComponent("state"), withIntermediateDirectories: true)
    try await withCleanup {
      try await check("ip netns add \(namespace)")
      var settings = RolloutSettings()
      settings.stateDirectory = directory.path + "/state"
      try Data("{}\n".utf8).write(to: URL(fileURLWithPath: settings.statePath))
      var scope = TraceScope()
      scope.families = [test.family]
      let learned: [LearnedService]
      switch test.backend {
      case .nftables:
        let listed = try RealKubeProxyDumpTests.load("listed/" + test.file)
        learned = NFTText.kubeProxyServices(listed, family: test.family).services
        try await check("ip netns exec \(namespace) nft -f -", stdin: listed)
        try await check(
          "ip netns exec \(namespace) nft -f -",
          stdin: Renderer.nftApplyFile(table: Renderer.nftTable(scope: scope, maxRate: nil, refresh: true)))
      case .iptablesNFT, .iptablesLegacy:
        let saved = try RealKubeProxyDumpTests.load("saved/" + test.file)
        learned =
          NodeProber.learnFromNat(try #require(IptablesSave(parsing: saved).tables["nat"]), family: test.family)
          .services
        let binary = try #require(test.backend.binary(test.family))
        try await check("ip netns exec \(namespace) \(binary)-restore", stdin: saved)
        let rules = Renderer.iptablesRules(scope: scope, family: test.family, maxRate: nil, refresh: true)
        try await check(
          "ip netns exec \(namespace) \(binary)-restore --noflush",
          stdin: rules.restoreFragment(from: IptablesRuleState()))
      }
      try #require(!learned.isEmpty)
      for includeClusterIPs in [false, true] {
        let script = try RefreshScript.render(
          settings: settings, backend: test.backend, families: [test.family], includeClusterIPs: includeClusterIPs)
        try script.write(toFile: settings.refreshScriptPath, atomically: true, encoding: .utf8)
        try await check("ip netns exec \(namespace) /bin/sh \(settings.refreshScriptPath)")
        let status = RefreshStatus(
          parsing: try String(contentsOfFile: settings.refreshStatusPath, encoding: .utf8))
        #expect(status.error.isEmpty && status.lastOK != nil, "\(status)")
        let expected = Set(learned.filter { includeClusterIPs || !$0.isClusterIP }.map(\.address.address))
        #expect(status.addresses == expected.count)
        #expect(try await Self.refreshOwned(namespace, test) == expected, "all=\(includeClusterIPs)")
      }
    } cleanup: {
      _ = try? await shell("ip netns del \(namespace) 2>/dev/null; true")
      try? FileManager.default.removeItem(at: directory)
    }
  }

  /// The addresses in the refresh-owned chains (iptables) or set (nft), read back from the kernel.
  static func refreshOwned(_ namespace: String, _ test: Case) async throws -> Set<IPAddress> {
    switch test.backend {
    case .nftables:
      let set = RefreshScript.nftSet(test.family)
      let text = try await check("ip netns exec \(namespace) nft list set inet svctrace \(set)").stdoutText
      return Set(NFTText.elements(of: set, in: text).compactMap { IPAddress($0) })
    case .iptablesNFT, .iptablesLegacy:
      let binary = try #require(test.backend.binary(test.family))
      let text = try await check("ip netns exec \(namespace) \(binary)-save -t mangle").stdoutText
      let table = try #require(IptablesSave(parsing: text).tables["mangle"])
      var pre = Set<IPAddress>()
      for spec in table.rules(of: RefreshScript.preChain) {
        let words = IptablesSave.words(spec)
        if let index = words.firstIndex(of: "-d"), index + 1 < words.count, let cidr = try? CIDR(words[index + 1]) {
          pre.insert(cidr.address)
        }
      }
      var post = Set<IPAddress>()
      for spec in table.rules(of: RefreshScript.postChain) {
        let words = IptablesSave.words(spec)
        if let index = words.firstIndex(of: "--ctorigdst"), index + 1 < words.count,
          let address = IPAddress(words[index + 1])
        {
          post.insert(address)
        }
      }
      #expect(pre == post, "SVCT-PRE-X and SVCT-POST-X cover different addresses")
      #expect(table.rules(of: RefreshScript.preChain).count == 3 * pre.count, "tcp, udp, sctp per address")
      return pre
    }
  }

  @discardableResult
  static func check(_ script: String, stdin: String? = nil) async throws -> CommandResult {
    let result = try await shell(script, stdin: stdin.map { Array($0.utf8) })
    guard result.succeeded else { throw ScratchError(message: "\(script.prefix(200)): \(result.failureSummary)") }
    return result
  }

  func check(_ script: String, stdin: String? = nil) async throws {
    try await Self.check(script, stdin: stdin)
  }
}
