import Foundation
import Rollout
import SVCTraceCore

/// Which fake kube-proxy a scratch node runs.
enum FakeKubeProxy: String {
  case iptablesNFT = "nft"
  case iptablesLegacy = "legacy"
  case nftables = "nftables"
}

/// A scratch "node": three network namespaces of our own (node, pod A, pod B) joined by routed veths,
/// with fake kube-proxy rules, a pod server (TCP 8080, UDP 5353) and a hostNetwork server (TCP 9090).
///
/// Addresses (private, only inside these namespaces; no default route anywhere):
/// node `10.244.1.1/30` (to pod A) and `10.244.2.1/30` (to pod B); pod A `10.244.1.2`; pod B `10.244.2.2`.
/// Services: `10.96.0.10:80/tcp` → pod A:8080, `10.96.0.20:80/tcp` → node:9090 (hostNetwork),
/// `10.96.0.30:53/udp` → pod A:5353, NodePort `30080/tcp` → pod A:8080.
final class ScratchNode: @unchecked Sendable {
  let id: Int
  let kind: FakeKubeProxy
  let node: String
  let podA: String
  let podB: String
  let directory: URL
  private var pids: [Int32] = []

  /// Builds the node; a node that could not be built completely is torn down again.
  static func make(id: Int, kind: FakeKubeProxy) async throws -> ScratchNode {
    let scratch = try ScratchNode(id: id, kind: kind)
    do {
      try await scratch.build()
    } catch {
      await scratch.tearDown()
      throw error
    }
    return scratch
  }

  private init(id: Int, kind: FakeKubeProxy) throws {
    self.id = id
    self.kind = kind
    node = "svtro-\(id)-node"
    podA = "svtro-\(id)-a"
    podB = "svtro-\(id)-b"
    directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "svtro-\(id)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(
      at: directory.appendingPathComponent("rsyslog.d"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
      at: directory.appendingPathComponent("logrotate.d"), withIntermediateDirectories: true)
  }

  /// Creates the namespaces, links, rules and servers (undone by ``tearDown()`` on failure).
  private func build() async throws {
    await destroyNamespaces()
    let na = "svtr\(id)na"
    let pa = "svtr\(id)pa"
    let nb = "svtr\(id)nb"
    let pb = "svtr\(id)pb"
    let setup = """
      set -e
      ip netns add \(node); ip netns add \(podA); ip netns add \(podB)
      ip link add \(na) netns \(node) type veth peer name \(pa) netns \(podA)
      ip link add \(nb) netns \(node) type veth peer name \(pb) netns \(podB)
      ip -n \(node) link set lo up
      ip -n \(node) addr add 10.244.1.1/30 dev \(na); ip -n \(node) link set \(na) up
      ip -n \(node) addr add 10.244.2.1/30 dev \(nb); ip -n \(node) link set \(nb) up
      ip -n \(node) route add 10.96.0.0/12 dev \(na)
      ip netns exec \(node) sysctl -qw net.ipv4.ip_forward=1
      ip -n \(podA) link set lo up; ip -n \(podA) addr add 10.244.1.2/30 dev \(pa); ip -n \(podA) link set \(pa) up
      ip -n \(podA) route add 10.96.0.0/12 via 10.244.1.1; ip -n \(podA) route add 10.244.0.0/16 via 10.244.1.1
      ip -n \(podB) link set lo up; ip -n \(podB) addr add 10.244.2.2/30 dev \(pb); ip -n \(podB) link set \(pb) up
      ip -n \(podB) route add 10.96.0.0/12 via 10.244.2.1; ip -n \(podB) route add 10.244.0.0/16 via 10.244.2.1
      """
    try await check(setup)
    switch kind {
    case .iptablesNFT:
      try await check("ip netns exec \(node) iptables-nft-restore --noflush", stdin: Self.kubeProxyRules)
    case .iptablesLegacy:
      try await check("ip netns exec \(node) iptables-legacy-restore --noflush", stdin: Self.kubeProxyRules)
    case .nftables: try await check("ip netns exec \(node) nft -f -", stdin: Self.kubeProxyNFT)
    }
    let pidA = directory.path + "/server-a.pid"
    let pidNode = directory.path + "/server-node.pid"
    try await startServer(namespace: podA, pidFile: pidA, args: "tcp:10.244.1.2:8080 udp:10.244.1.2:5353")
    try await startServer(namespace: node, pidFile: pidNode, args: "tcp:10.244.1.1:9090")
    try await check(
      "for i in $(seq 50); do [ -s \(pidA) ] && [ -s \(pidNode) ] && ip netns exec \(podA) ss -ltn | grep -q ':8080' && ip netns exec \(node) ss -ltn | grep -q ':9090' && exit 0; sleep 0.1; done; exit 1"
    )
    for file in [pidA, pidNode] {
      if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = Int32(text) { pids.append(pid) }
    }
  }

  /// The session svctrace uses on this node.
  func session() -> LocalNetnsSession { LocalNetnsSession(namespace: node) }

  /// Settings with every path inside this node's temp directory and rsyslog/logrotate commands stubbed.
  func settings(validate: String = "true", restart: String = "true") -> RolloutSettings {
    var settings = RolloutSettings()
    let base = directory.path
    settings.logPath = base + "/iptables.log"
    settings.rsyslogDropInPath = base + "/rsyslog.d/10-svctrace.conf"
    settings.logrotatePath = base + "/logrotate.d/svctrace"
    settings.stateDirectory = base + "/state"
    settings.legacyRsyslogConf = base + "/rsyslog.conf"
    settings.legacyLogrotateFile = base + "/logrotate.d/syslog"
    settings.expiryMethod = .sleeper
    // The refresh runs inside this node's namespace: a loop started by the apply script, never a
    // systemd timer (which would run in the machine's own namespace).
    settings.refreshMethod = .loop
    settings.commands = NodeCommands(
      rsyslogValidate: validate, rsyslogRestart: restart, rsyslogIsActive: "true", logrotateDebug: "true")
    return settings
  }

  /// Everything that must be identical before install and after remove: every iptables dump,
  /// `nft list ruleset` (counters stripped) and the files under the temp directory.
  func snapshot() async throws -> String {
    let rules = try await check(
      """
      ip netns exec \(node) sh -c 'iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; ip6tables-legacy-save; nft list ruleset' \
        | grep -v '^#' | sed -e 's/\\[[0-9]*:[0-9]*\\]//' -e 's/counter packets [0-9]* bytes [0-9]*//'
      """
    ).stdoutText
    let files = try await check(
      "cd \(ShellQuote.quote(directory.path)) && find . | sort && find . -type f | sort | xargs -r cat"
    )
    .stdoutText
    return rules + "\n--- files\n" + files
  }

  /// Opens one TCP connection from `namespace` (or sends one UDP datagram and waits for the answer).
  func connect(from namespace: String, to address: String, port: Int, udp: Bool = false) async throws {
    let script =
      udp
      ? "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3); s.sendto(b'x',(sys.argv[1],int(sys.argv[2]))); s.recvfrom(16)"
      : "import socket,sys; s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3); s.recv(16); s.close()"
    try await check("ip netns exec \(namespace) python3 -c \(ShellQuote.quote(script)) \(address) \(port)")
  }

  /// Packets counted by svctrace's PRE and POST log rules so far.
  func logCounters() async throws -> (pre: Int, post: Int) {
    switch kind {
    case .iptablesNFT, .iptablesLegacy:
      let binary = kind == .iptablesNFT ? "iptables-nft" : "iptables-legacy"
      func count(_ chain: String) async throws -> Int {
        let text = try await check("ip netns exec \(node) \(binary) -t mangle -L \(chain) -v -n -x").stdoutText
        let rows = text.split(separator: "\n").dropFirst(2)
        return rows.compactMap { $0.split(separator: " ").first.flatMap { Int($0) } }.reduce(0, +)
      }
      return (try await count("SVCT-LOG-PRE"), try await count("SVCT-LOG-POST"))
    case .nftables:
      func count(_ chain: String) async throws -> Int {
        let text = try await check("ip netns exec \(node) nft list chain inet svctrace \(chain)").stdoutText
        var total = 0
        for line in text.split(separator: "\n") {
          let words = line.split(separator: " ")
          if let index = words.firstIndex(of: "packets"), index + 1 < words.count, let value = Int(words[index + 1]) {
            total += value
          }
        }
        return total
      }
      return (try await count("pre-scope"), try await count("post-scope"))
    }
  }

  /// Stops the servers (by recorded pid), deletes the namespaces and the temp directory.
  func tearDown() async {
    for name in ["server-a.pid", "server-node.pid"] {
      if let text = try? String(contentsOfFile: directory.path + "/" + name, encoding: .utf8), let pid = Int32(text),
        !pids.contains(pid)
      {
        pids.append(pid)
      }
    }
    for pid in pids { kill(pid, SIGTERM) }
    pids.removeAll()
    for name in ["expiry.pid", "refresh.pid"] {
      if let pid = try? String(contentsOfFile: directory.path + "/state/" + name, encoding: .utf8)
        .trimmingCharacters(in: .whitespacesAndNewlines), let value = Int32(pid)
      {
        kill(-value, SIGTERM)
      }
    }
    await destroyNamespaces()
    try? FileManager.default.removeItem(at: directory)
  }

  private func destroyNamespaces() async {
    _ = try? await shell("for n in \(node) \(podA) \(podB); do ip netns del $n 2>/dev/null; done; true")
  }

  /// Starts the server in the background; it writes its own pid to `pidFile` (killed by that pid at teardown).
  private func startServer(namespace: String, pidFile: String, args: String) async throws {
    try await check(
      "ip netns exec \(namespace) python3 -c \(ShellQuote.quote(Self.serverScript)) \(pidFile) \(args) </dev/null >/dev/null 2>&1 &"
    )
  }

  @discardableResult
  func check(_ script: String, stdin: String? = nil) async throws -> CommandResult {
    let result = try await shell(script, stdin: stdin.map { Array($0.utf8) })
    guard result.succeeded else {
      throw ScratchError(message: "\(script.prefix(200)): \(result.failureSummary)")
    }
    return result
  }

  /// A bounded TCP/UDP answering server: exits by itself after 300 s.
  static let serverScript = """
    import os, socket, sys, threading, time
    def tcp(host, port):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(64)
        while True:
            c, _ = s.accept(); c.sendall(b"ok\\n"); c.close()
    def udp(host, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port))
        while True:
            d, a = s.recvfrom(2048); s.sendto(b"ok\\n", a)
    open(sys.argv[1], "w").write(str(os.getpid()))
    for spec in sys.argv[2:]:
        kind, host, port = spec.split(":")
        threading.Thread(target=tcp if kind == "tcp" else udp, args=(host, int(port)), daemon=True).start()
    time.sleep(300)
    """

  /// kube-proxy iptables-mode rules in their real shape (nat + mangle hint), for three Services and a NodePort.
  static let kubeProxyRules = """
    *mangle
    :KUBE-IPTABLES-HINT - [0:0]
    :KUBE-PROXY-CANARY - [0:0]
    COMMIT
    *nat
    :PREROUTING ACCEPT [0:0]
    :INPUT ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-NODEPORTS - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-SVC-WEB - [0:0]
    :KUBE-SEP-WEB - [0:0]
    :KUBE-EXT-WEB - [0:0]
    :KUBE-SVC-HOSTNET - [0:0]
    :KUBE-SEP-HOSTNET - [0:0]
    :KUBE-SVC-DNS - [0:0]
    :KUBE-SEP-DNS - [0:0]
    -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
    -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB
    -A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/hostnet:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-HOSTNET
    -A KUBE-SERVICES -d 10.96.0.30/32 -p udp -m comment --comment "default/dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-DNS
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j KUBE-EXT-WEB
    -A KUBE-EXT-WEB -m comment --comment "masquerade traffic for default/web:http external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-WEB -j KUBE-SVC-WEB
    -A KUBE-SVC-WEB ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
    -A KUBE-SVC-WEB -m comment --comment "default/web:http -> 10.244.1.2:8080" -j KUBE-SEP-WEB
    -A KUBE-SEP-WEB -s 10.244.1.2/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ
    -A KUBE-SEP-WEB -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
    -A KUBE-SVC-HOSTNET ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m comment --comment "default/hostnet:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
    -A KUBE-SVC-HOSTNET -m comment --comment "default/hostnet:http -> 10.244.1.1:9090" -j KUBE-SEP-HOSTNET
    -A KUBE-SEP-HOSTNET -s 10.244.1.1/32 -m comment --comment "default/hostnet:http" -j KUBE-MARK-MASQ
    -A KUBE-SEP-HOSTNET -p tcp -m comment --comment "default/hostnet:http" -m tcp -j DNAT --to-destination 10.244.1.1:9090
    -A KUBE-SVC-DNS ! -s 10.244.0.0/16 -d 10.96.0.30/32 -p udp -m comment --comment "default/dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ
    -A KUBE-SVC-DNS -m comment --comment "default/dns:dns -> 10.244.1.2:5353" -j KUBE-SEP-DNS
    -A KUBE-SEP-DNS -s 10.244.1.2/32 -m comment --comment "default/dns:dns" -j KUBE-MARK-MASQ
    -A KUBE-SEP-DNS -p udp -m comment --comment "default/dns:dns" -m udp -j DNAT --to-destination 10.244.1.2:5353
    COMMIT

    """

  /// kube-proxy nftables-mode table in its real shape (service-ips / service-nodeports maps).
  static let kubeProxyNFT = """
    table ip kube-proxy {
      chain mark-for-masquerade { mark set mark or 0x4000; }
      chain masquerading { mark and 0x4000 == 0 return; mark set mark xor 0x4000; masquerade fully-random; }
      chain endpoint-web { ip saddr 10.244.1.2 jump mark-for-masquerade; meta l4proto tcp dnat to 10.244.1.2:8080; }
      chain service-web { ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade; goto endpoint-web; }
      chain external-web { jump mark-for-masquerade; goto service-web; }
      chain endpoint-hostnet { ip saddr 10.244.1.1 jump mark-for-masquerade; meta l4proto tcp dnat to 10.244.1.1:9090; }
      chain service-hostnet { ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade; goto endpoint-hostnet; }
      chain endpoint-dns { ip saddr 10.244.1.2 jump mark-for-masquerade; meta l4proto udp dnat to 10.244.1.2:5353; }
      chain service-dns { ip daddr 10.96.0.30 udp dport 53 ip saddr != 10.244.0.0/16 jump mark-for-masquerade; goto endpoint-dns; }
      map service-ips {
        type ipv4_addr . inet_proto . inet_service : verdict
        elements = { 10.96.0.10 . tcp . 80 : goto service-web, 10.96.0.20 . tcp . 80 : goto service-hostnet, 10.96.0.30 . udp . 53 : goto service-dns }
      }
      map service-nodeports {
        type inet_proto . inet_service : verdict
        elements = { tcp . 30080 : goto external-web }
      }
      chain services {
        ip daddr . meta l4proto . th dport vmap @service-ips
        fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
      }
      chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }
      chain nat-output { type nat hook output priority -100; policy accept; jump services; }
      chain nat-postrouting { type nat hook postrouting priority srcnat; policy accept; jump masquerading; }
    }

    """
}

/// A scratch testbed setup failure.
struct ScratchError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}
