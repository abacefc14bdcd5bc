public import Foundation
public import SVCTraceCore

/// Where a Service CIDR came from, strongest first.
public enum ServiceCIDRSource: String, Sendable, Hashable, Codable, Comparable, CaseIterable {
  /// `--service-cidr` or the inventory's `svctrace_service_cidr`.
  case settings
  /// `networking.k8s.io/v1` ServiceCIDR objects (`kubectl get servicecidrs`), where the API has them.
  case serviceCIDRObjects = "servicecidr-objects"
  /// The API server's `--service-cluster-ip-range` (its static-pod manifest or its running command line).
  case apiServer = "kube-apiserver"
  /// kube-proxy's own view: the `cluster-ips-check` chain of its nftables table.
  case kubeProxy = "kube-proxy"
  /// Nothing found: the Service addresses kube-proxy's rules held at install, kept current by the refresh.
  case learnedHosts = "learned-hosts"

  private var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }

  /// How a report names the source.
  public var label: String {
    switch self {
    case .settings: "--service-cidr / svctrace_service_cidr"
    case .serviceCIDRObjects: "ServiceCIDR objects"
    case .apiServer: "kube-apiserver --service-cluster-ip-range"
    case .kubeProxy: "kube-proxy's cluster-ips-check chain"
    case .learnedHosts: "no Service CIDR found"
    }
  }

  /// ServiceCIDR objects and the API server's flag say what the cluster allocates from.
  public var isAuthoritative: Bool { self == .settings || self == .serviceCIDRObjects || self == .apiServer }
}

/// The Service CIDRs a trace scope is built on, where they came from, and on which nodes they were read.
/// Recorded in the node's `state.json` (``NodeState/scope``) so that `verify` can print it.
public struct ServiceCIDRs: Sendable, Hashable, Codable {
  public var source: ServiceCIDRSource
  /// One or more networks (a CIDR per family on a dual-stack cluster); empty for ``ServiceCIDRSource/learnedHosts``.
  public var cidrs: [CIDR]
  /// The nodes whose probe reported them (sorted), empty for settings.
  public var nodes: [String]

  public init(source: ServiceCIDRSource, cidrs: [CIDR], nodes: [String] = []) {
    self.source = source
    self.cidrs = cidrs
    self.nodes = nodes
  }

  /// `service CIDR 10.96.0.0/12 from ServiceCIDR objects (node1)`, or what happens without one.
  public var summary: String {
    guard source != .learnedHosts else {
      return "no Service CIDR found (scope: the Service addresses kube-proxy forwards, kept current by the refresh; "
        + "--service-cidr covers every ClusterIP)"
    }
    let list = cidrs.map(\.description).joined(separator: ", ")
    let shown = nodes.count > 3 ? nodes.prefix(3).joined(separator: ", ") + ", …" : nodes.joined(separator: ", ")
    return "service CIDR\(cidrs.count == 1 ? "" : "s") \(list) from \(source.label)"
      + (nodes.isEmpty ? "" : " (\(shown))")
  }
}

/// What one node's probe says about the cluster's Service CIDRs, per source (`nil`: the source is not there).
public struct ServiceCIDRFacts: Sendable, Hashable {
  public var serviceCIDRObjects: [CIDR]?
  public var apiServer: [CIDR]?
  public var kubeProxy: [CIDR]?

  public init(serviceCIDRObjects: [CIDR]? = nil, apiServer: [CIDR]? = nil, kubeProxy: [CIDR]? = nil) {
    self.serviceCIDRObjects = serviceCIDRObjects
    self.apiServer = apiServer
    self.kubeProxy = kubeProxy
  }

  /// The CIDRs of one source.
  public func cidrs(_ source: ServiceCIDRSource) -> [CIDR]? {
    switch source {
    case .serviceCIDRObjects: serviceCIDRObjects
    case .apiServer: apiServer
    case .kubeProxy: kubeProxy
    case .settings, .learnedHosts: nil
    }
  }

  /// Reads the probe's sections: `svc-cidr-objects` (kubectl's ServiceCIDRList JSON),
  /// `svc-cidr-apiserver` (`process RANGE` / `manifest RANGE` lines) and kube-proxy's nft tables (`kp4`, `kp6`).
  public init(sections: [String: String]) {
    self.init()
    serviceCIDRObjects = Self.parseServiceCIDRList(sections["svc-cidr-objects"] ?? "")
    apiServer = Self.parseAPIServer(sections["svc-cidr-apiserver"] ?? "")
    let fromKubeProxy =
      Self.parseClusterIPsCheck(sections["kp4"] ?? "") + Self.parseClusterIPsCheck(sections["kp6"] ?? "")
    kubeProxy = fromKubeProxy.isEmpty ? nil : fromKubeProxy
  }

  private struct List: Decodable {
    struct Item: Decodable {
      struct Spec: Decodable { var cidrs: [String]? }
      var spec: Spec?
    }
    var kind: String?
    var items: [Item]?
  }

  /// The `spec.cidrs` of every item of a `networking.k8s.io/v1` ServiceCIDRList; `nil` when the text is
  /// not one or holds no CIDR (old API servers have no such resource: kubectl fails, the text is empty).
  public static func parseServiceCIDRList(_ text: String) -> [CIDR]? {
    guard let data = text.data(using: .utf8), let list = try? JSONDecoder().decode(List.self, from: data),
      list.kind == nil || list.kind == "ServiceCIDRList" || list.kind == "List"
    else { return nil }
    let cidrs = (list.items ?? []).flatMap { $0.spec?.cidrs ?? [] }.compactMap { try? CIDR($0) }
    return cidrs.isEmpty ? nil : unique(cidrs)
  }

  /// `--service-cluster-ip-range` values: the running API server's (`process …`) wins over its manifest's.
  public static func parseAPIServer(_ text: String) -> [CIDR]? {
    var byKind: [String: [CIDR]] = [:]
    for line in text.split(separator: "\n") {
      let words = line.split(separator: " ", maxSplits: 1).map(String.init)
      guard words.count == 2 else { continue }
      let value = words[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"' \t"))
      let cidrs = value.split(separator: ",").compactMap { try? CIDR($0.trimmingCharacters(in: .whitespaces)) }
      if !cidrs.isEmpty, byKind[words[0]] == nil { byKind[words[0]] = cidrs }
    }
    return (byKind["process"] ?? byKind["manifest"]).map(unique)
  }

  /// The networks kube-proxy's `cluster-ips-check` chain drops ("Drop traffic to unallocated ClusterIPs":
  /// `ip daddr 10.96.0.0/12 drop`), from an `nft list table ip[6] kube-proxy` listing.
  public static func parseClusterIPsCheck(_ listing: String) -> [CIDR] {
    var inChain = false
    var result: [CIDR] = []
    for raw in listing.split(separator: "\n") {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("chain ") {
        inChain = line == "chain cluster-ips-check {" || line.hasPrefix("chain cluster-ips-check ")
      }
      if line == "}" { inChain = false }
      guard inChain else { continue }
      let words = line.split(separator: " ").map(String.init)
      for (index, word) in words.enumerated() where word == "daddr" && index + 1 < words.count {
        let value = words[index + 1]
        guard !value.hasPrefix("@"), value.contains("/"), let cidr = try? CIDR(value) else { continue }
        result.append(cidr)
      }
    }
    return unique(result)
  }

  static func unique(_ cidrs: [CIDR]) -> [CIDR] {
    var seen = Set<CIDR>()
    return cidrs.filter { seen.insert($0).inserted }.sorted {
      ($0.family == .ipv4 ? 0 : 1, $0.address) < ($1.family == .ipv4 ? 0 : 1, $1.address)
    }
  }
}

/// Nodes that disagree about the Service CIDR at the strongest source found.
public struct ServiceCIDRConflict: Error, Sendable, Hashable, CustomStringConvertible {
  public var source: ServiceCIDRSource
  /// Each distinct answer with the nodes that gave it.
  public var answers: [(cidrs: [CIDR], nodes: [String])]

  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.source == rhs.source && lhs.answers.map(\.cidrs) == rhs.answers.map(\.cidrs)
      && lhs.answers.map(\.nodes) == rhs.answers.map(\.nodes)
  }
  public func hash(into hasher: inout Hasher) {
    hasher.combine(source)
    for answer in answers {
      hasher.combine(answer.cidrs)
      hasher.combine(answer.nodes)
    }
  }

  public var description: String {
    "the nodes disagree about the Service CIDR (\(source.label)): "
      + answers.map { "\($0.nodes.joined(separator: ", ")) say \($0.cidrs.map(\.description).joined(separator: ","))" }
      .joined(separator: "; ") + "; pass --service-cidr (or set svctrace_service_cidr) to choose"
  }
}

/// Decides the cluster's Service CIDRs from what every node's probe found (pure).
public enum ServiceCIDRResolver {
  /// The strongest source any node has wins: ServiceCIDR objects, then the API server's flag, then
  /// kube-proxy's `cluster-ips-check` chain. Nodes without that source (workers, usually) take the
  /// answer of the nodes that have it; nodes that disagree are a conflict at an authoritative source
  /// (ServiceCIDR objects, the API server's flag); kube-proxy's differing views are joined. Nothing found
  /// anywhere: ``ServiceCIDRSource/learnedHosts`` with no CIDR.
  public static func resolve(_ facts: [(host: HostID, facts: ServiceCIDRFacts)]) -> Result<
    ServiceCIDRs, ServiceCIDRConflict
  > {
    for source in [ServiceCIDRSource.serviceCIDRObjects, .apiServer, .kubeProxy] {
      var answers: [[CIDR]: [String]] = [:]
      for (host, nodeFacts) in facts {
        guard let cidrs = nodeFacts.cidrs(source) else { continue }
        answers[cidrs, default: []].append(host.name)
      }
      guard !answers.isEmpty else { continue }
      let sorted = answers.map { (cidrs: $0.key, nodes: $0.value.sorted()) }.sorted {
        $0.nodes.lexicographicallyPrecedes($1.nodes)
      }
      if sorted.count > 1 && !source.isAuthoritative {
        // kube-proxy's views differ (a node with only one family's table): their union is logged.
        let union = ServiceCIDRFacts.unique(sorted.flatMap(\.cidrs))
        return .success(ServiceCIDRs(source: source, cidrs: union, nodes: sorted.flatMap(\.nodes).sorted()))
      }
      if sorted.count > 1 { return .failure(ServiceCIDRConflict(source: source, answers: sorted)) }
      return .success(ServiceCIDRs(source: source, cidrs: sorted[0].cidrs, nodes: sorted[0].nodes))
    }
    return .success(ServiceCIDRs(source: .learnedHosts, cidrs: []))
  }
}

/// Is the trace scope of a node still covering what kube-proxy forwards? (pure; `verify`)
public struct ScopeCoverage: Sendable, Hashable {
  /// Networks svctrace's installed rules log (CIDRs, host addresses, refresh extras).
  public var covered: [CIDR]
  /// Service addresses kube-proxy forwards that no covered network contains, sorted.
  public var missing: [IPAddress]

  /// Compares kube-proxy's Service addresses with the networks svctrace's rules on the node cover.
  public init(services: [LearnedService], covered: [CIDR]) {
    self.covered = covered
    let addresses = Set(services.map(\.address.address))
    missing = addresses.filter { address in !covered.contains { $0.contains(address) } }.sorted()
  }

  /// The networks svctrace's rules on the node log (read from the probe): the destinations of
  /// `SVCT-PRE` and `SVCT-PRE-X` (iptables), the `scope`, `services` and `extra` sets (nftables).
  public static func installed(_ probe: NodeProbe, backend: Dataplane.Backend) -> [CIDR] {
    var result: [CIDR] = []
    switch backend {
    case .nftables:
      let table = probe.svctraceTable ?? ""
      for name in ["scope4", "scope6", "extra4", "extra6", "services4", "services6"] {
        for element in NFTText.elements(of: name, in: table) {
          let first = element.split(separator: " ").first.map(String.init) ?? ""
          if let cidr = try? CIDR(first) { result.append(cidr) }
        }
      }
    case .iptablesNFT, .iptablesLegacy:
      for family in IPFamily.allCases {
        let table = probe.mangle(backend, family)
        for chain in ["SVCT-PRE", RefreshScript.preChain] {
          for spec in table.rules(of: chain) {
            let words = IptablesSave.words(spec)
            for (index, word) in words.enumerated() where word == "-d" && index + 1 < words.count {
              if index == 0 || words[index - 1] != "!", let cidr = try? CIDR(words[index + 1]) { result.append(cidr) }
            }
          }
        }
      }
    }
    return result
  }
}
