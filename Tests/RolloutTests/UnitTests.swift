import Foundation
import Rollout
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite struct SettingsTests {
  @Test(arguments: [
    "/var/log/with space.log", "/var/log/it's.log", "/var/log/a;rm -rf /", "/var/log/$(id).log",
    "/var/log/a\nb.log", "relative/path.log", "/var/log/../../etc/shadow", "/var//log", "/var/log/`id`",
  ])
  func hostilePathsAreRejected(_ path: String) {
    #expect(throws: SettingsError.self) {
      _ = try RolloutSettings(variables: [RolloutSettings.Key.logPath: path])
    }
  }

  @Test(arguments: [
    (RolloutSettings.Key.serviceCIDR, "10.96.0.0/12; reboot"), (RolloutSettings.Key.serviceCIDR, "10.96.0.0/33"),
    (RolloutSettings.Key.serviceCIDR, "$(id)"), (RolloutSettings.Key.services, "10.96.0.1:80/icmp"),
    (RolloutSettings.Key.services, "10.96.0.1:99999"), (RolloutSettings.Key.maxRate, "10/fortnight"),
    (RolloutSettings.Key.maxRate, "'1'/s"), (RolloutSettings.Key.nodePortRange, "32767-30000"),
    (RolloutSettings.Key.rotateSize, "200M\nsize 1"), (RolloutSettings.Key.captureFor, "2h; reboot"),
  ])
  func hostileValuesAreRejected(key: String, value: String) {
    #expect(throws: SettingsError.self) { _ = try RolloutSettings(variables: [key: value]) }
  }

  @Test func inventoryValuesAreOverriddenByCLI() throws {
    let settings = try RolloutSettings(
      variables: [
        "svctrace_log_path": "/var/log/inv.log", "svctrace_service_cidr": "10.96.0.1/12,fd00:10:96::/112",
        "svctrace_max_rate": "50/s", "svctrace_services": "10.96.0.10:53/udp [fd00::a]:443",
      ],
      overrides: ["svctrace_log_path": "/var/log/cli.log", "svctrace_for": "1h30m"])
    #expect(settings.logPath == "/var/log/cli.log")
    #expect(settings.serviceCIDRs?.map(\.description) == ["10.96.0.0/12", "fd00:10:96::/112"])
    #expect(settings.maxRate?.iptablesText == "50/sec")
    #expect(settings.services.map(\.description) == ["10.96.0.10:53/udp", "[fd00::a]:443/tcp"])
    #expect(settings.captureDuration == .seconds(5400))
  }

  @Test func errorsNameKeyAndValue() {
    do {
      _ = try RolloutSettings(variables: ["svctrace_service_cidr": "10.96.0.0/40"])
      Issue.record("accepted")
    } catch {
      #expect(error.description.contains("svctrace_service_cidr"))
      #expect(error.description.contains("10.96.0.0/40"))
    }
  }
}

@Suite struct RenderTests {
  static func dataplane() -> Dataplane {
    Dataplane(
      mode: .iptables, backend: .iptablesNFT, families: [.ipv4],
      services: [
        LearnedService(address: try! ServiceAddress(parsing: "10.96.0.10:80/tcp"), isClusterIP: true),
        LearnedService(address: try! ServiceAddress(parsing: "192.168.50.5:443/tcp"), isClusterIP: false),
      ])
  }

  @Test func iptablesRulesGolden() throws {
    var settings = RolloutSettings()
    settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")]
    settings.maxRate = try RateLimit(parsing: "100/s")
    let scope = TraceScope.make(settings: settings, dataplane: Self.dataplane())
    let rules = Renderer.iptablesRules(scope: scope, family: .ipv4, maxRate: settings.maxRate)
    let c = "-m comment --comment svctrace"
    let expected = [
      ":SVCT-LOG-POST", ":SVCT-LOG-PRE", ":SVCT-POST", ":SVCT-PRE",
      "-A PREROUTING ! -i lo -m conntrack --ctstate NEW \(c) -j SVCT-PRE",
      "-A INPUT ! -i lo -m conntrack --ctstate NEW -m conntrack --ctstate DNAT \(c) -j SVCT-POST",
      "-A OUTPUT -m conntrack --ctstate NEW \(c) -j SVCT-PRE",
      "-A POSTROUTING -m conntrack --ctstate NEW -m conntrack --ctstate DNAT \(c) -j SVCT-POST",
      "-A SVCT-LOG-POST \(c) -m limit --limit 100/sec -j LOG --log-prefix \"SVCT:POST \" --log-level 6",
      "-A SVCT-LOG-PRE \(c) -m limit --limit 100/sec -j LOG --log-prefix \"SVCT:PRE \" --log-level 6",
      "-A SVCT-POST -p tcp -m conntrack --ctorigdst 10.96.0.0/12 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p udp -m conntrack --ctorigdst 10.96.0.0/12 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p sctp -m conntrack --ctorigdst 10.96.0.0/12 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p tcp -m conntrack --ctorigdst 192.168.50.5 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p tcp -m conntrack --ctorigdstport 30000:32767 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p udp -m conntrack --ctorigdstport 30000:32767 \(c) -g SVCT-LOG-POST",
      "-A SVCT-POST -p sctp -m conntrack --ctorigdstport 30000:32767 \(c) -g SVCT-LOG-POST",
      "-A SVCT-PRE -d 10.96.0.0/12 -p tcp \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -d 10.96.0.0/12 -p udp \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -d 10.96.0.0/12 -p sctp \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -d 192.168.50.5/32 -p tcp \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 30000:32767 \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -p udp -m addrtype --dst-type LOCAL -m udp --dport 30000:32767 \(c) -g SVCT-LOG-PRE",
      "-A SVCT-PRE -p sctp -m addrtype --dst-type LOCAL -m sctp --dport 30000:32767 \(c) -g SVCT-LOG-PRE",
    ]
    #expect(rules.lines == expected)
    #expect(LogPrefix.pre.count <= 29 && LogPrefix.pre.hasSuffix(" "))
    #expect(LogPrefix.post.count <= 29 && LogPrefix.post.hasSuffix(" "))
  }

  @Test func narrowedServicesOnlyLogThoseAddresses() throws {
    var settings = RolloutSettings()
    settings.services = [try ServiceAddress(parsing: "10.96.0.10:53/udp")]
    let scope = TraceScope.make(settings: settings, dataplane: Self.dataplane())
    let rules = Renderer.iptablesRules(scope: scope, family: .ipv4, maxRate: nil)
    #expect(
      rules.rules["SVCT-PRE"] == [
        "-d 10.96.0.10/32 -p udp -m udp --dport 53 -m comment --comment svctrace -g SVCT-LOG-PRE"
      ])
    #expect(
      rules.rules["SVCT-POST"] == [
        "-p udp -m conntrack --ctorigdst 10.96.0.10 --ctorigdstport 53 -m comment --comment svctrace -g SVCT-LOG-POST"
      ])
    let nft = Renderer.nftTable(scope: scope, maxRate: nil)
    #expect(nft.contains("elements = { 10.96.0.10 . udp . 53 }"))
    #expect(!nft.contains("fib daddr type local"))
  }

  @Test func nftListingNormalisesToTheRenderedTable() throws {
    var settings = RolloutSettings()
    settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")]
    let scope = TraceScope.make(settings: settings, dataplane: Self.dataplane())
    let rendered = Renderer.nftTable(scope: scope, maxRate: nil)
    // What `nft list table` prints back: symbolic priorities, counters, wrapped elements.
    let listing =
      rendered
      .replacingOccurrences(of: "priority -160;", with: "priority mangle - 10;")
      .replacingOccurrences(of: "postrouting priority 90;", with: "postrouting priority srcnat - 10;")
      .replacingOccurrences(of: "counter log", with: "counter packets 12 bytes 720 log")
      .replacingOccurrences(of: "{ 10.96.0.0/12, 192.168.50.5 }", with: "{ 192.168.50.5,\n\t\t\t     10.96.0.0/12 }")
    #expect(NFTText.normalize(listing) == NFTText.normalize(rendered))
    #expect(NFTText.normalize(Renderer.nftApplyFile(table: rendered)) == NFTText.normalize(rendered))
  }

  @Test func rsyslogAndLogrotateFiles() {
    let dropIn = Renderer.rsyslogDropIn(
      logPath: "/var/log/iptables.log", rotateSize: "200M", logrotatePath: "/etc/logrotate.d/svctrace")
    #expect(dropIn.contains("%timegenerated:::date-rfc3339%"))
    #expect(dropIn.contains("$msg contains \"SVCT:\""))
    #expect(dropIn.contains("file=\"/var/log/iptables.log\""))
    #expect(dropIn.contains("  stop\n"))
    #expect(!dropIn.contains("kern.*"))
    // The size cap between daily runs: one byte past maxsize, logrotate on svctrace's entry only.
    #expect(dropIn.contains("rotation.sizeLimit=\"\(200 * 1024 * 1024 + 1)\""))
    #expect(dropIn.contains("rotation.sizeLimitCommand=\"/usr/sbin/logrotate /etc/logrotate.d/svctrace\""))
    let rotate = Renderer.logrotate(logPath: "/var/log/iptables.log", size: "200M", rotate: 7, hasRsyslogRotate: true)
    for word in [
      "/var/log/iptables.log {", "missingok", "maxsize 200M", "notifempty", "compress", "delaycompress",
      "sharedscripts", "/usr/lib/rsyslog/rsyslog-rotate", "    nodateext\n", "    create\n",
    ] {
      #expect(rotate.contains(word))
    }
    #expect(!rotate.contains("copytruncate"))
    let noHelper = Renderer.logrotate(logPath: "/x.log", size: "1G", rotate: 3, hasRsyslogRotate: false)
    #expect(noHelper.contains("systemctl kill -s HUP rsyslog.service"))
  }

  @Test func logrotateSizesReadAsLogrotateReadsThem() {
    #expect(Renderer.logrotateBytes("200M") == 200 << 20)
    #expect(Renderer.logrotateBytes("500k") == 500 << 10)
    #expect(Renderer.logrotateBytes("1G") == 1 << 30)
    #expect(Renderer.logrotateBytes("4096") == 4096)
    #expect(Renderer.logrotateBytes("12T") == nil)
    #expect(Renderer.logrotateBytes("M") == nil)
  }

  /// The rendered drop-in passes the real `rsyslogd -N1` and the logrotate entry `logrotate -d`
  /// (both installed by scripts/install-deps), as install checks them on a node.
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/rsyslogd")))
  func renderedFilesPassRsyslogAndLogrotateValidation() async throws {
    let directory = NSTemporaryDirectory() + "svctrace-render-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let dropIn = Renderer.rsyslogDropIn(
      logPath: directory + "/iptables.log", rotateSize: "1M", logrotatePath: directory + "/logrotate")
    try dropIn.write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
    let validation = try await LocalProcess.run(["/usr/sbin/rsyslogd", "-N1", "-f", directory + "/rsyslog.conf"])
    #expect(validation.exitStatus == 0, "\(validation.stderrText)")
    #expect(!validation.stderrText.contains("error"), "\(validation.stderrText)")
    if FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate") {
      let entry = Renderer.logrotate(
        logPath: directory + "/iptables.log", size: "1M", rotate: 3, hasRsyslogRotate: false)
      try entry.write(toFile: directory + "/logrotate", atomically: true, encoding: .utf8)
      let check = try await LocalProcess.run(
        ["/usr/sbin/logrotate", "-d", "-s", directory + "/state", directory + "/logrotate"])
      #expect(check.exitStatus == 0, "\(check.stderrText)")
    }
  }
}

@Suite struct DiffTests {
  @Test func unifiedDiffHasHunksWithCounts() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\n"
    let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\n"
    let diff = LineDiff.unified(old: old, new: new, oldName: "a/x", newName: "b/x", context: 1)
    #expect(diff == "--- a/x\n+++ b/x\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n@@ -8 +8,2 @@\n h\n+i\n")
    #expect(LineDiff.unified(old: old, new: old, oldName: "a", newName: "b").isEmpty)
    #expect(
      LineDiff.unified(old: "", new: "x\n", oldName: "/dev/null", newName: "b/x")
        == "--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n")
  }
}

@Suite struct DetectionTests {
  static func probe(_ sections: [String: String]) -> NodeProbe {
    NodeProber.make(host: HostID("n1"), sections: sections)
  }

  @Test func ciliumReplacementIsRefused() {
    let probe = Self.probe(["cilium": "interface cilium_host\nbpf map cilium_lb4_services_v2"])
    guard case .failure(let error) = probe.dataplane else {
      Issue.record("accepted")
      return
    }
    #expect(error.kind == .unsupportedDataplane)
    #expect(error.reason.contains("eBPF"))
  }

  @Test func ipvsIsRefusedAndNoKubeProxyIsExplained() {
    guard case .failure(let ipvs) = Self.probe(["ipvs": "kube-ipvs0"]).dataplane else {
      Issue.record("accepted")
      return
    }
    #expect(ipvs.reason.contains("IPVS"))
    guard case .failure(let none) = Self.probe([:]).dataplane else {
      Issue.record("accepted")
      return
    }
    #expect(none.kind == .noKubeProxy)
  }

  @Test func legacyHintWinsOnlyWithKubeServices() throws {
    let legacy = """
      *mangle
      :KUBE-IPTABLES-HINT - [0:0]
      COMMIT
      *nat
      :KUBE-SERVICES - [0:0]
      -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
      -A KUBE-SERVICES -d 172.16.0.9/32 -p tcp -m comment --comment "default/lb:http loadbalancer IP" -m tcp --dport 80 -j KUBE-EXT-ABC
      COMMIT
      """
    let dataplane = try Self.probe(["legacy4": legacy, "nft-mangle4": "*mangle\nCOMMIT\n"]).dataplane.get()
    #expect(dataplane.backend == .iptablesLegacy)
    #expect(dataplane.services.map(\.address.description) == ["10.96.0.1:443/tcp", "172.16.0.9:80/tcp"])
    #expect(dataplane.services.map(\.isClusterIP) == [true, false])
  }

  @Test func nftablesModeLearnsServiceMaps() throws {
    let listing = """
      table ip kube-proxy {
      	map service-ips {
      		type ipv4_addr . inet_proto . inet_service : verdict
      		elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https,
      			     10.96.0.10 . udp . 53 : goto service-XYZ-kube-system/kube-dns/udp/dns }
      	}
      	map service-nodeports {
      		type inet_proto . inet_service : verdict
      		elements = { tcp . 30080 : goto external-ABC-default/web/tcp/http }
      	}
      }
      """
    let dataplane = try Self.probe(["kp4": listing]).dataplane.get()
    #expect(dataplane.backend == .nftables)
    #expect(dataplane.services.map(\.address.description) == ["10.96.0.1:443/tcp", "10.96.0.10:53/udp"])
    #expect(dataplane.nodePorts.map(\.port) == [30080])
  }
}
