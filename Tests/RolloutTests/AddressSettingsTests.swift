import Rollout
import SVCTraceCore
import Testing

/// Service CIDR and Service address settings on top of SVCTraceCore's IPAddress and CIDR.
@Suite struct AddressSettingsTests {
  @Test func serviceAddressesParseAndPrint() throws {
    let v4 = try ServiceAddress(parsing: "10.96.0.10:53/UDP")
    #expect(v4.address == IPAddress("10.96.0.10"))
    #expect(v4.proto == .udp)
    #expect(v4.family == .ipv4)
    #expect(v4.description == "10.96.0.10:53/udp")
    let v6 = try ServiceAddress(parsing: "[fd00:10:96:0:0:0:0:a]:443")
    #expect(v6.proto == .tcp)
    #expect(v6.family == .ipv6)
    #expect(v6.description == "[fd00:10:96::a]:443/tcp")
    #expect(try ServiceAddress(parsing: "[64:ff9b::192.0.2.33]:80/sctp").description == "[64:ff9b::c000:221]:80/sctp")
    // IPv4 before IPv6, then by address, port and protocol (tcp, udp, sctp).
    let sorted = try ["[fd00::a]:80", "10.96.0.10:80/sctp", "10.96.0.10:80/udp", "10.96.0.9:443", "10.96.0.10:53"]
      .map { try ServiceAddress(parsing: $0) }.sorted().map(\.description)
    #expect(
      sorted == [
        "10.96.0.9:443/tcp", "10.96.0.10:53/tcp", "10.96.0.10:80/udp", "10.96.0.10:80/sctp", "[fd00::a]:80/tcp",
      ])
  }

  @Test(arguments: [
    "10.96.0.10", "10.96.0.10:0", "10.96.0.10:53/icmp", "10.96.0.10:53/6", "010.96.0.10:53", "[::ffff:10.96.0.10]:53",
    "[::ffff:a60:a]:53", "fd00::a:443", "[fd00::a]443", "10.96.0.10:+53",
  ])
  func badServiceAddressesAreRejected(text: String) {
    #expect(throws: SettingsError.self) { try ServiceAddress(parsing: text) }
  }

  @Test func cidrSettingErrorsGiveTheReason() {
    #expect(throws: SettingsError(key: "service CIDR", value: "fd00::/129", reason: "prefix length must be 1…128")) {
      try CIDR(parsing: "fd00::/129")
    }
    #expect(
      throws: SettingsError(
        key: "service CIDR", value: "::ffff:10.96.0.0/108", reason: "not an IPv4 or IPv6 network like 10.96.0.0/12")
    ) { try CIDR(parsing: "::ffff:10.96.0.0/108") }
  }

  @Test func dualStackScopeRendersEachFamily() throws {
    var settings = RolloutSettings()
    settings.serviceCIDRs = [try CIDR(parsing: "fd00:10:96::1/112"), try CIDR(parsing: "10.96.0.0/12")]
    let dataplane = Dataplane(
      mode: .iptables, backend: .iptablesNFT, families: [.ipv4, .ipv6],
      services: [
        LearnedService(address: try ServiceAddress(parsing: "[fd00:10:96::a]:80/udp"), isClusterIP: true),
        LearnedService(address: try ServiceAddress(parsing: "[2001:db8::5]:443"), isClusterIP: false),
        LearnedService(address: try ServiceAddress(parsing: "[2001:db8::5]:53/udp"), isClusterIP: false),
      ])
    let scope = TraceScope.make(settings: settings, dataplane: dataplane)
    #expect(scope.families == [.ipv4, .ipv6])
    #expect(scope.networks[.ipv4]?.map(\.cidr.description) == ["10.96.0.0/12"])
    #expect(scope.networks[.ipv6]?.map(\.cidr.description) == ["2001:db8::5/128", "fd00:10:96::/112"])
    #expect(scope.networks[.ipv6]?.first?.protocols == [.tcp, .udp])
    let rules = Renderer.iptablesRules(scope: scope, family: .ipv6, maxRate: nil)
    let c = "-m comment --comment svctrace"
    #expect(
      rules.rules["SVCT-PRE"]?.prefix(3) == [
        "-d 2001:db8::5/128 -p tcp \(c) -g SVCT-LOG-PRE", "-d 2001:db8::5/128 -p udp \(c) -g SVCT-LOG-PRE",
        "-d fd00:10:96::/112 -p tcp \(c) -g SVCT-LOG-PRE",
      ])
    #expect(rules.rules["SVCT-POST"]?.first == "-p tcp -m conntrack --ctorigdst 2001:db8::5 \(c) -g SVCT-LOG-POST")
  }
}
