/// A kube-proxy-shaped nat table (iptables mode), as `iptables-save -t nat` prints it, for the
/// refresh benchmark: `services` ClusterIP Services (`10.96.0.0/16`, tcp/80), each with a
/// `KUBE-SVC-` chain over 3 endpoints (`-m statistic`) and one `KUBE-SEP-` chain per endpoint
/// (masquerade mark + DNAT), the shape of `/work/helpers/gen-kube-proxy-nat.py`; every 20th Service
/// is also a LoadBalancer: a `loadbalancer IP` rule in `KUBE-SERVICES` (`198.18.0.0/15`, the
/// benchmarking range) and a NodePort, both jumping to its `KUBE-EXT-` chain, so the refresh's
/// external-only path (Service CIDR known) has addresses to keep.
public enum KubeProxyNatRuleset {
  /// The most Services the address plan holds (ClusterIPs in `10.96.0.0/16`, 250 per /24;
  /// NodePorts of the load balancers within 30000–32767).
  public static let maxServices = 50_000

  /// Endpoints behind each Service.
  public static let endpoints = 3

  /// Whether Service `index` is also a LoadBalancer (every 20th).
  public static func isLoadBalancer(_ index: Int) -> Bool { index % 20 == 19 }

  /// How many of `services` Services are LoadBalancers (`services / 20`).
  public static func loadBalancers(services: Int) -> Int { services / 20 }

  /// The ClusterIP of Service `index`: `10.96.(index / 250).(index % 250 + 1)`.
  public static func clusterIP(_ index: Int) -> String { "10.96.\(index / 250).\(index % 250 + 1)" }

  /// The load-balancer ingress IP of the `number`th LoadBalancer: `198.18.(n / 250).(n % 250 + 1)`.
  public static func loadBalancerIP(_ number: Int) -> String { "198.18.\(number / 250).\(number % 250 + 1)" }

  /// The ClusterIPs of `services` Services, in order.
  public static func clusterIPs(services: Int) -> [String] { (0..<services).map(clusterIP) }

  /// The load-balancer IPs of `services` Services, in order.
  public static func loadBalancerIPs(services: Int) -> [String] {
    (0..<loadBalancers(services: services)).map(loadBalancerIP)
  }

  /// The whole nat table for `services` Services (`*nat` … `COMMIT`, newline-terminated), for
  /// `iptables-restore`. `services` must be in `0...maxServices`.
  public static func render(services: Int) -> String {
    precondition((0...maxServices).contains(services), "services out of range")
    var chains = [
      "*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
      ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-MARK-MASQ - [0:0]",
    ]
    var rules = [
      "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
      "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
      "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
    ]
    chains.reserveCapacity(services * 5 + 8)
    rules.reserveCapacity(services * 10 + 8)
    for index in 0..<services {
      let name = "ns\(index)/svc\(index):http"
      let service = "KUBE-SVC-" + hex(index, width: 16)
      chains.append(":\(service) - [0:0]")
      rules.append(
        "-A KUBE-SERVICES -d \(clusterIP(index))/32 -p tcp -m comment --comment \"\(name) cluster IP\" -m tcp --dport 80 -j \(service)"
      )
      if isLoadBalancer(index) {
        let number = index / 20
        let external = "KUBE-EXT-" + hex(index, width: 16)
        chains.append(":\(external) - [0:0]")
        rules += [
          "-A KUBE-SERVICES -d \(loadBalancerIP(number))/32 -p tcp -m comment --comment \"\(name) loadbalancer IP\" -m tcp --dport 80 -j \(external)",
          "-A KUBE-NODEPORTS -p tcp -m comment --comment \"\(name)\" -m tcp --dport \(30000 + number) -j \(external)",
          "-A \(external) -m comment --comment \"masquerade traffic for \(name) external destinations\" -j KUBE-MARK-MASQ",
          "-A \(external) -j \(service)",
        ]
      }
      for endpoint in 0..<endpoints {
        let endpointChain = "KUBE-SEP-" + hex(index, width: 12) + hex(endpoint, width: 4)
        let pod = "10.244.\(endpoint).\(index % 250)"
        chains.append(":\(endpointChain) - [0:0]")
        let probability = endpoint < endpoints - 1 ? " -m statistic --mode random --probability 0.3333" : ""
        rules += [
          "-A \(service) -m comment --comment \"\(name) -> \(pod):8080\"\(probability) -j \(endpointChain)",
          "-A \(endpointChain) -s \(pod)/32 -m comment --comment \"\(name)\" -j KUBE-MARK-MASQ",
          "-A \(endpointChain) -p tcp -m comment --comment \"\(name)\" -m tcp -j DNAT --to-destination \(pod):8080",
        ]
      }
    }
    rules.append(
      "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    )
    return (chains + rules + ["COMMIT"]).joined(separator: "\n") + "\n"
  }

  /// `value` in upper-case hexadecimal, zero-padded to `width` digits.
  static func hex(_ value: Int, width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
  }
}
