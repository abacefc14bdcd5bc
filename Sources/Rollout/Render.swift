import Foundation
public import SVCTraceCore

/// The log prefixes svctrace's rules write (≤ 29 characters, ending in a space).
public enum LogPrefix {
  /// Before DNAT: destination is the Service address.
  public static let pre = "SVCT:PRE "
  /// After DNAT: destination is the endpoint (pod), source still the client.
  public static let post = "SVCT:POST "
  /// What the rsyslog filter looks for.
  public static let filter = "SVCT:"
}

/// The comment tagging every iptables rule svctrace owns.
public let svctraceComment = "svctrace"

/// One network of the trace scope with the protocols logged to it.
public struct ScopeNetwork: Sendable, Hashable, Comparable {
  public var cidr: CIDR
  public var protocols: [IPProtocol]

  public init(cidr: CIDR, protocols: [IPProtocol]) {
    self.cidr = cidr
    self.protocols = protocols
  }

  public static func < (lhs: ScopeNetwork, rhs: ScopeNetwork) -> Bool {
    if lhs.cidr.family != rhs.cidr.family { return lhs.cidr.family == .ipv4 }
    if lhs.cidr.address != rhs.cidr.address { return lhs.cidr.address < rhs.cidr.address }
    return lhs.cidr.prefixLength < rhs.cidr.prefixLength
  }
}

/// Which traffic svctrace logs on a node: Service networks, narrowed Service addresses, NodePorts.
public struct TraceScope: Sendable, Hashable {
  /// Networks (service CIDRs, learned VIPs) per family, sorted.
  public var networks: [IPFamily: [ScopeNetwork]] = [:]
  /// Narrowed Service addresses (`--services`), sorted; when set, networks and NodePorts are empty.
  public var services: [ServiceAddress] = []
  /// NodePort range logged on local destinations; `nil` when narrowed.
  public var nodePorts: PortRange?
  /// Families that get rules.
  public var families: [IPFamily] = []

  public init() {}

  /// Computes the scope from settings and what kube-proxy's rules revealed.
  ///
  /// `--services` narrows to exactly those addresses. Otherwise the given service CIDRs are used,
  /// plus every learned address outside them (externalIPs, LB IPs); with no CIDR given, every
  /// learned Service address is logged as a host (/32, /128) with the protocols kube-proxy forwards for it.
  /// With `learnedHosts` false (the node-side refresh keeps those addresses in rules of its own,
  /// ``RefreshScript``), only the CIDRs and the NodePort range are in the scope.
  public static func make(settings: RolloutSettings, dataplane: Dataplane, learnedHosts: Bool = true) -> TraceScope {
    var scope = TraceScope()
    if !settings.services.isEmpty {
      scope.services = settings.services.sorted()
      scope.families = IPFamily.allCases.filter { family in scope.services.contains { $0.family == family } }
      return scope
    }
    var byFamily: [IPFamily: [ScopeNetwork]] = [:]
    let given = settings.serviceCIDRs ?? []
    for cidr in given {
      byFamily[cidr.family, default: []].append(ScopeNetwork(cidr: cidr, protocols: IPProtocol.serviceProtocols))
    }
    var hosts: [IPAddress: Set<IPProtocol>] = [:]
    for service in dataplane.services
    where learnedHosts && !given.contains(where: { $0.contains(service.address.address) }) {
      hosts[service.address.address, default: []].insert(service.address.proto)
    }
    for (address, protocols) in hosts {
      let cidr = CIDR(host: address)
      byFamily[cidr.family, default: []].append(ScopeNetwork(cidr: cidr, protocols: protocols.sorted()))
    }
    scope.networks = byFamily.mapValues { $0.sorted() }
    scope.nodePorts = settings.nodePortRange
    var families = Set(dataplane.families)
    families.formUnion(given.map(\.family))
    scope.families = IPFamily.allCases.filter(families.contains)
    return scope
  }
}

/// An iptables jump from a built-in mangle chain into svctrace's chains.
public struct IptablesJump: Sendable, Hashable {
  /// Built-in chain (`PREROUTING`, `INPUT`, `OUTPUT`, `POSTROUTING`).
  public var chain: String
  /// Rule spec as `iptables-save` prints it (without `-A CHAIN`).
  public var spec: String
  /// 1-based position in the chain.
  public var position: Int

  public init(chain: String, spec: String, position: Int) {
    self.chain = chain
    self.spec = spec
    self.position = position
  }
}

/// svctrace's part of one mangle table: its chains, their rules, the jumps into them.
public struct IptablesRuleState: Sendable, Hashable {
  /// svctrace chain names, sorted.
  public var chains: [String] = []
  /// Rules per svctrace chain, in order (specs without `-A CHAIN`).
  public var rules: [String: [String]] = [:]
  /// Jumps from built-in chains, in built-in chain order.
  public var jumps: [IptablesJump] = []

  public init() {}

  /// Built-in mangle chains in `iptables-save` order.
  public static let builtins = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]

  /// Extracts svctrace's chains (`SVCT-*`) and the built-in rules tagged `--comment svctrace`.
  public init(table: IptablesSave.Table) {
    chains = table.chains.filter { $0.hasPrefix("SVCT-") }.sorted()
    for chain in chains { rules[chain] = table.rules(of: chain) }
    for builtin in Self.builtins {
      for (index, spec) in table.rules(of: builtin).enumerated() where Self.isSvctraceRule(spec) {
        jumps.append(IptablesJump(chain: builtin, spec: spec, position: index + 1))
      }
    }
  }

  /// `true` when a rule spec carries svctrace's comment.
  public static func isSvctraceRule(_ spec: String) -> Bool {
    let words = IptablesSave.words(spec)
    return zip(words, words.dropFirst()).contains { $0 == "--comment" && $1 == svctraceComment }
  }

  /// `true` when svctrace has nothing in this table.
  public var isEmpty: Bool { chains.isEmpty && jumps.isEmpty }

  /// Canonical lines for comparison and diffs (`:CHAIN`, `-A CHAIN spec`, jumps annotated when not at position 1).
  public var lines: [String] {
    var result = chains.map { ":" + $0 }
    for jump in jumps {
      result.append("-A \(jump.chain) \(jump.spec)" + (jump.position == 1 ? "" : "   # at position \(jump.position)"))
    }
    for chain in chains { result += (rules[chain] ?? []).map { "-A \(chain) \($0)" } }
    return result
  }

  /// An `iptables-restore --noflush` fragment turning `current` into `self` while touching only svctrace's
  /// chains and jumps (chains are created or flushed by their `:` line, jumps deleted by exact spec).
  public func restoreFragment(from current: IptablesRuleState) -> String {
    var lines = ["*mangle"]
    let allChains = Array(Set(chains).union(current.chains)).sorted()
    lines += allChains.map { ":\($0) - [0:0]" }
    lines += current.jumps.map { "-D \($0.chain) \($0.spec)" }
    for chain in chains { lines += (rules[chain] ?? []).map { "-A \(chain) \($0)" } }
    for jump in jumps.sorted(by: { ($0.position, $0.chain) < ($1.position, $1.chain) }) {
      lines.append("-I \(jump.chain) \(jump.position) \(jump.spec)")
    }
    lines += current.chains.filter { !chains.contains($0) }.map { "-X \($0)" }
    lines.append("COMMIT")
    return lines.joined(separator: "\n") + "\n"
  }
}

/// Pure rendering of svctrace's desired node state.
public enum Renderer {
  private static let tag = "-m comment --comment \(svctraceComment)"

  /// svctrace's mangle rules for one family (iptables backends), as `iptables-save` prints them.
  ///
  /// - `SVCT-PRE` (jumped from PREROUTING except `lo`, and from OUTPUT, for conntrack NEW) sees the
  ///   Service address: mangle runs at −150, before nat DNAT at −100.
  /// - `SVCT-POST` (jumped from POSTROUTING, and from INPUT except `lo`, for NEW *and* DNAT) sees the
  ///   endpoint after DNAT and before SNAT; `--ctorigdst`/`--ctorigdstport` keep it to Service traffic.
  /// - Scope rules `-g` (goto) a one-rule log chain, so a packet is logged at most once per direction.
  /// - With `refresh`, `SVCT-PRE`/`SVCT-POST` end with a jump to the refresh-owned chains
  ///   (``RefreshScript/preChain``, ``RefreshScript/postChain``), created empty here and filled by the
  ///   node-side refresh; their rules `-g` the same log chains.
  public static func iptablesRules(
    scope: TraceScope, family: IPFamily, maxRate: RateLimit?, refresh: Bool = false
  ) -> IptablesRuleState {
    var state = IptablesRuleState()
    guard scope.families.contains(family) else { return state }
    let limit = maxRate.map { " -m limit --limit \($0.iptablesText)" } ?? ""
    let logPre = "\(tag)\(limit) -j LOG --log-prefix \"\(LogPrefix.pre)\" --log-level 6"
    let logPost = "\(tag)\(limit) -j LOG --log-prefix \"\(LogPrefix.post)\" --log-level 6"
    var pre: [String] = []
    var post: [String] = []
    for network in scope.networks[family] ?? [] {
      for proto in network.protocols {
        pre.append("-d \(network.cidr) -p \(proto.name) \(tag) -g SVCT-LOG-PRE")
        let original = network.cidr.isHost ? network.cidr.addressText : network.cidr.description
        post.append("-p \(proto.name) -m conntrack --ctorigdst \(original) \(tag) -g SVCT-LOG-POST")
      }
    }
    for service in scope.services where service.family == family {
      let proto = service.proto.name
      let host = CIDR(host: service.address)
      pre.append("-d \(host) -p \(proto) -m \(proto) --dport \(service.port) \(tag) -g SVCT-LOG-PRE")
      post.append(
        "-p \(proto) -m conntrack --ctorigdst \(service.addressText) --ctorigdstport \(service.port) \(tag) -g SVCT-LOG-POST"
      )
    }
    if let range = scope.nodePorts {
      for proto in IPProtocol.serviceProtocols.map(\.name) {
        pre.append(
          "-p \(proto) -m addrtype --dst-type LOCAL -m \(proto) --dport \(range.iptablesText) \(tag) -g SVCT-LOG-PRE")
        post.append("-p \(proto) -m conntrack --ctorigdstport \(range.iptablesText) \(tag) -g SVCT-LOG-POST")
      }
    }
    state.chains = ["SVCT-LOG-POST", "SVCT-LOG-PRE", "SVCT-POST", "SVCT-PRE"]
    state.rules = ["SVCT-LOG-PRE": [logPre], "SVCT-LOG-POST": [logPost]]
    if refresh {
      pre.append("\(tag) -j \(RefreshScript.preChain)")
      post.append("\(tag) -j \(RefreshScript.postChain)")
      state.chains = (state.chains + [RefreshScript.preChain, RefreshScript.postChain]).sorted()
      state.rules[RefreshScript.preChain] = []
      state.rules[RefreshScript.postChain] = []
    }
    state.rules["SVCT-PRE"] = pre
    state.rules["SVCT-POST"] = post
    let new = "-m conntrack --ctstate NEW"
    let newDNAT = "-m conntrack --ctstate NEW -m conntrack --ctstate DNAT"
    state.jumps = [
      IptablesJump(chain: "PREROUTING", spec: "! -i lo \(new) \(tag) -j SVCT-PRE", position: 1),
      IptablesJump(chain: "INPUT", spec: "! -i lo \(newDNAT) \(tag) -j SVCT-POST", position: 1),
      IptablesJump(chain: "OUTPUT", spec: "\(new) \(tag) -j SVCT-PRE", position: 1),
      IptablesJump(chain: "POSTROUTING", spec: "\(newDNAT) \(tag) -j SVCT-POST", position: 1),
    ]
    return state
  }

  /// `table inet svctrace` for kube-proxy nftables mode, in the form `nft list table` prints.
  ///
  /// Priorities: −160 on prerouting/output (before kube-proxy's filter chains at −110 and DNAT at −100),
  /// 90 on postrouting/input (after DNAT, before SNAT at 100). kube-proxy's table is never touched.
  /// With `refresh`, each family gets the refresh-owned set `extra4`/`extra6` (elements `extras`,
  /// which the node-side refresh keeps current) and one pre and one post rule on it.
  public static func nftTable(
    scope: TraceScope, maxRate: RateLimit?, refresh: Bool = false, extras: [IPFamily: [String]] = [:]
  ) -> String {
    let limit = maxRate.map { "limit rate \($0.nftText) " } ?? ""
    let logPre = "\(limit)counter log prefix \"\(LogPrefix.pre)\" level info accept"
    let logPost = "\(limit)counter log prefix \"\(LogPrefix.post)\" level info accept"
    var out = ["table inet svctrace {"]
    var pre: [String] = []
    var post: [String] = []
    for family in scope.families {
      let (name, type, selector) = family == .ipv4 ? ("4", "ipv4_addr", "ip") : ("6", "ipv6_addr", "ip6")
      let networks = scope.networks[family] ?? []
      if !networks.isEmpty {
        let elements = networks.map { $0.cidr.isHost ? $0.cidr.addressText : $0.cidr.description }
        out += [
          "\tset scope\(name) {", "\t\ttype \(type)", "\t\tflags interval",
          "\t\telements = { " + elements.joined(separator: ", ") + " }", "\t}", "",
        ]
        pre.append("\(selector) daddr @scope\(name) meta l4proto { tcp, udp, sctp } \(logPre)")
        post.append("ct original \(selector) daddr @scope\(name) \(logPost)")
      }
      let services = scope.services.filter { $0.family == family }
      if !services.isEmpty {
        let elements = services.map { "\($0.addressText) . \($0.proto.name) . \($0.port)" }
        out += [
          "\tset services\(name) {", "\t\ttype \(type) . inet_proto . inet_service",
          "\t\telements = { " + elements.joined(separator: ", ") + " }", "\t}", "",
        ]
        pre.append("\(selector) daddr . meta l4proto . th dport @services\(name) \(logPre)")
        for service in services {
          post.append(
            "meta l4proto \(service.proto.name) ct original \(selector) daddr \(service.addressText) "
              + "ct original proto-dst \(service.port) \(logPost)")
        }
      }
      if refresh {
        let set = RefreshScript.nftSet(family)
        out += ["\tset \(set) {", "\t\ttype \(type)"]
        if let elements = extras[family], !elements.isEmpty {
          out.append("\t\telements = { " + elements.joined(separator: ", ") + " }")
        }
        out += ["\t}", ""]
        pre.append("\(selector) daddr @\(set) meta l4proto { tcp, udp, sctp } \(logPre)")
        post.append("ct original \(selector) daddr @\(set) \(logPost)")
      }
    }
    if let range = scope.nodePorts {
      pre.append("fib daddr type local meta l4proto { tcp, udp, sctp } th dport \(range.nftText) \(logPre)")
      for proto in IPProtocol.serviceProtocols {
        post.append("meta l4proto \(proto.name) ct original proto-dst \(range.nftText) \(logPost)")
      }
    }
    out += ["\tchain pre-scope {"] + pre.map { "\t\t" + $0 } + ["\t}", ""]
    out += ["\tchain post-scope {"] + post.map { "\t\t" + $0 } + ["\t}", ""]
    let bases: [(String, String, Int, String)] = [
      ("prerouting", "prerouting", -160, "iifname != \"lo\" ct state new jump pre-scope"),
      ("output", "output", -160, "ct state new jump pre-scope"),
      ("postrouting", "postrouting", 90, "ct state new ct status dnat jump post-scope"),
      ("input", "input", 90, "iifname != \"lo\" ct state new ct status dnat jump post-scope"),
    ]
    for (index, base) in bases.enumerated() {
      out += [
        "\tchain \(base.0) {", "\t\ttype filter hook \(base.1) priority \(base.2); policy accept;", "\t\t\(base.3)",
        "\t}",
      ]
      if index < bases.count - 1 { out.append("") }
    }
    out.append("}")
    return out.joined(separator: "\n") + "\n"
  }

  /// The nft file that replaces `table inet svctrace` atomically (one transaction).
  public static func nftApplyFile(table: String) -> String {
    "table inet svctrace\ndelete table inet svctrace\n" + table
  }

  /// The rsyslog drop-in: own template with RFC 3339 µs receive time, kernel lines containing
  /// `SVCT:` go to svctrace's file only (`stop`).
  ///
  /// The file's size is also enforced between logrotate's daily runs: when it passes the
  /// logrotate `maxsize` (`rotateSize`), omfile's `rotation.sizeLimit` makes rsyslog run logrotate
  /// on svctrace's entry at once. rsyslog 8.2302 passes everything after the first space of
  /// `rotation.sizeLimitCommand` as **one** argument, hence exactly one: the entry's path. The
  /// limit is one byte above `maxsize` so that logrotate, which rotates files *larger* than
  /// `maxsize`, always rotates when called. Should rotation fail, rsyslog drops the size limit and
  /// the daily run still applies.
  ///
  /// `source` says which input svctrace's lines must come from (``KernelLineSource``): with
  /// ``KernelLineSource/anyInput`` (no imjournal: Debian-style nodes) the text is the historical
  /// drop-in, byte for byte. Otherwise only that input's copy is written, the copies from every
  /// other input (imjournal) are dropped, and with ``KernelLineSource/ownImklog`` the drop-in loads
  /// imklog (``imklogLoad``, whose rate limit is off by default) and drops imklog's other kernel messages, which reach
  /// the node's usual files through imjournal as before.
  public static func rsyslogDropIn(
    logPath: String, rotateSize: String, logrotatePath: String, source: KernelLineSource = .anyInput
  ) -> String {
    let limit = (logrotateBytes(rotateSize) ?? 200 << 20) + 1
    let header = """
      # Managed by svctrace (svctrace install); do not edit — verify reports changes and install rewrites them.
      # Kernel LOG lines of svctrace's rules (prefixes SVCT:PRE / SVCT:POST) go to \(logPath) only.
      # Past \(rotateSize) the file is rotated at once by logrotate (\(logrotatePath)), not only daily.

      """
    let template = """
      template(name="SvcTrace" type="string"
        string="%timegenerated:::date-rfc3339% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n")

      """
    let filter = "if ($syslogfacility-text == \"kern\") and ($msg contains \"\(LogPrefix.filter)\") then {\n"
    let action = """
      action(type="omfile" file="\(logPath)" template="SvcTrace"
        rotation.sizeLimit="\(limit)" rotation.sizeLimitCommand="/usr/sbin/logrotate \(logrotatePath)")

      """
    func indented(_ text: String, _ prefix: String) -> String {
      text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : prefix + $0 }
        .joined(separator: "\n")
    }
    guard let input = source.inputName else {
      return header + template + filter + indented(action, "  ") + "  stop\n}\n"
    }
    var text = header
    switch source {
    case .ownImklog:
      text += """
        # This node's rsyslog reads the kernel from journald through imjournal, whose rate limit drops
        # lines of a busy node: svctrace's lines are read through imklog (loaded here; no rate limit)
        # and taken from imklog only; journald's copies (imjournal) are dropped, and so are imklog's
        # other kernel messages, which imjournal delivers as before.
        \(imklogLoad)

        """
    default:
      text += """
        # This node's rsyslog reads kernel messages twice (\(input) and imjournal): svctrace's lines
        # are taken from \(input) only (no rate limit); their copies from other inputs are dropped.

        """
    }
    text += template + filter
    text += "  if ($inputname == \"\(input)\") then {\n" + indented(action, "    ") + "  }\n  stop\n}\n"
    if source == .ownImklog { text += "if ($inputname == \"imklog\") then stop\n" }
    return text
  }

  /// The module statement of a drop-in that reads the kernel itself (``KernelLineSource/ownImklog``).
  ///
  /// No parameter: imklog's rate limit is off by default (`RatelimitInterval` 0 since rsyslog
  /// 8.35, where the parameter appeared; no limit before), and naming the parameter would make
  /// older rsyslogs (CentOS 7's 8.24) refuse the configuration.
  public static let imklogLoad = "module(load=\"imklog\")"

  /// A logrotate size (`200M`, `500k`, `1G`, `1048576`) in bytes, as logrotate reads it
  /// (k, M, G are powers of 1024); `nil` when it is not one.
  public static func logrotateBytes(_ size: String) -> Int? {
    let digits = size.prefix { $0.isASCII && $0.isNumber }
    guard let number = Int(digits) else { return nil }
    let (result, overflow): (Int, Bool)
    switch size.dropFirst(digits.count) {
    case "": return number
    case "k", "K": (result, overflow) = number.multipliedReportingOverflow(by: 1 << 10)
    case "M": (result, overflow) = number.multipliedReportingOverflow(by: 1 << 20)
    case "G": (result, overflow) = number.multipliedReportingOverflow(by: 1 << 30)
    default: return nil
    }
    return overflow ? nil : result
  }

  /// The logrotate file (`/etc/logrotate.d/svctrace`) for svctrace's log.
  public static func logrotate(logPath: String, size: String, rotate: Int, hasRsyslogRotate: Bool) -> String {
    let postrotate =
      hasRsyslogRotate
      ? "/usr/lib/rsyslog/rsyslog-rotate" : "systemctl kill -s HUP rsyslog.service >/dev/null 2>&1 || true"
    return """
      # Managed by svctrace (svctrace install); do not edit.
      # Also run by rsyslog as soon as the file passes maxsize (see the rsyslog drop-in). Every
      # option svctrace relies on is set here, not inherited: rotated files are named .1, .2.gz…
      # (nodateext, whatever the global dateext), which is what svctrace collect follows.
      \(logPath) {
          daily
          rotate \(rotate)
          maxsize \(size)
          nodateext
          create
          missingok
          notifempty
          compress
          delaycompress
          sharedscripts
          postrotate
              \(postrotate)
          endscript
      }

      """
  }
}
