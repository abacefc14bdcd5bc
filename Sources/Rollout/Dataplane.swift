public import Foundation
public import SVCTraceCore

/// What kube-proxy does on a node, and which netfilter backend svctrace must use there.
public struct Dataplane: Sendable, Hashable {
  /// kube-proxy's proxy mode.
  public enum ProxyMode: String, Sendable, Hashable, Codable {
    case iptables
    case nftables
    case ipvs
  }

  /// The netfilter front-end svctrace writes its rules with (the one kube-proxy uses).
  public enum Backend: String, Sendable, Hashable, Codable {
    /// `iptables-nft` (xtables over nf_tables).
    case iptablesNFT = "iptables-nft"
    /// `iptables-legacy` (x_tables).
    case iptablesLegacy = "iptables-legacy"
    /// kube-proxy nftables mode: svctrace uses its own `table inet svctrace`.
    case nftables

    /// Binary name prefix for `family` (`iptables-nft`, `ip6tables-legacy`); `nil` for nftables.
    public func binary(_ family: IPFamily) -> String? {
      let base = family == .ipv4 ? "iptables" : "ip6tables"
      switch self {
      case .iptablesNFT: return base + "-nft"
      case .iptablesLegacy: return base + "-legacy"
      case .nftables: return nil
      }
    }
  }

  public var mode: ProxyMode
  public var backend: Backend
  /// Families that have kube-proxy Service rules.
  public var families: [IPFamily]
  /// Service addresses found in kube-proxy's rules.
  public var services: [LearnedService]
  /// NodePorts found in kube-proxy's rules.
  public var nodePorts: [LearnedNodePort]
  /// How the decision was made, one fact per line (for `verify` evidence).
  public var evidence: [String]

  public init(
    mode: ProxyMode, backend: Backend, families: [IPFamily], services: [LearnedService] = [],
    nodePorts: [LearnedNodePort] = [], evidence: [String] = []
  ) {
    self.mode = mode
    self.backend = backend
    self.families = families
    self.services = services
    self.nodePorts = nodePorts
    self.evidence = evidence
  }
}

/// A Service address kube-proxy forwards.
public struct LearnedService: Sendable, Hashable, Comparable {
  public var address: ServiceAddress
  /// `true` for a ClusterIP, `false` for an externalIP / load-balancer IP.
  public var isClusterIP: Bool

  public init(address: ServiceAddress, isClusterIP: Bool) {
    self.address = address
    self.isClusterIP = isClusterIP
  }

  public static func < (lhs: LearnedService, rhs: LearnedService) -> Bool { lhs.address < rhs.address }
}

/// A NodePort kube-proxy forwards.
public struct LearnedNodePort: Sendable, Hashable {
  public var family: IPFamily
  public var port: UInt16
  public var proto: IPProtocol

  public init(family: IPFamily, port: UInt16, proto: IPProtocol) {
    self.family = family
    self.port = port
    self.proto = proto
  }
}

/// Everything one round trip learns about a node: dataplane, svctrace's current state, files.
public struct NodeProbe: Sendable {
  public var host: HostID
  /// The detected dataplane, or why it cannot be traced.
  public var dataplane: Result<Dataplane, RolloutError>
  /// Raw sections of the probe output, by name.
  public var sections: [String: String]
  /// Contents of svctrace's node files (drop-in, logrotate, state, remove script); `nil` = absent.
  public var files: [String: [UInt8]?]
  /// `true` when the node runs systemd (and its manager socket is reachable).
  public var hasSystemd: Bool
  /// `true` when `at` is installed.
  public var hasAt: Bool
  /// `true` when `/usr/lib/rsyslog/rsyslog-rotate` exists.
  public var hasRsyslogRotate: Bool
  /// `true` when the rsyslog "is active" command succeeded.
  public var rsyslogActive: Bool
  /// The node's clock at probe time (seconds since the epoch), when printed.
  public var nodeTime: Int64?
  /// rsyslog's input modules (section `rsyslog-conf`; svctrace's drop-in excluded).
  public var rsyslogInputs = RsyslogInputs()
  /// OS family, SELinux, firewalld (section `platform`).
  public var platform = NodePlatform()
  /// What this node says about the cluster's Service CIDRs (sections `svc-cidr-objects`,
  /// `svc-cidr-apiserver`, and kube-proxy's `cluster-ips-check` chain in `kp4`/`kp6`).
  public var serviceCIDRFacts = ServiceCIDRFacts()
  /// The node-side refresh (section `refresh`).
  public var refresh = RefreshStatus()

  /// The scope source a previous install recorded in `state.json`, when there is one.
  public func recordedScope(_ settings: RolloutSettings) -> ServiceCIDRs? {
    guard let bytes = files[settings.statePath] ?? nil, !bytes.isEmpty,
      let state = try? JSONDecoder().decode(NodeState.self, from: Data(bytes))
    else { return nil }
    return state.scope
  }

  /// The mangle table of `family` in `backend` (parsed `iptables-save -t mangle`).
  public func mangle(_ backend: Dataplane.Backend, _ family: IPFamily) -> IptablesSave.Table {
    let suffix = family == .ipv4 ? "4" : "6"
    switch backend {
    case .iptablesNFT:
      return IptablesSave(parsing: sections["nft-mangle" + suffix] ?? "").tables["mangle"] ?? .init()
    case .iptablesLegacy:
      return IptablesSave(parsing: sections["legacy" + suffix] ?? "").tables["mangle"] ?? .init()
    case .nftables:
      return .init()
    }
  }

  /// The nat table of `family` in an iptables backend.
  public func nat(_ backend: Dataplane.Backend, _ family: IPFamily) -> IptablesSave.Table {
    let suffix = family == .ipv4 ? "4" : "6"
    switch backend {
    case .iptablesNFT: return IptablesSave(parsing: sections["nft-nat" + suffix] ?? "").tables["nat"] ?? .init()
    case .iptablesLegacy: return IptablesSave(parsing: sections["legacy" + suffix] ?? "").tables["nat"] ?? .init()
    case .nftables: return .init()
    }
  }

  /// `nft list table inet svctrace`, or `nil` when the table does not exist.
  public var svctraceTable: String? {
    let text = sections["svct"] ?? ""
    return text.contains("table inet svctrace") ? text : nil
  }

  /// Names of the nft base chains that exist in iptables-nft's `mangle` table of `family`.
  public func nftMangleBaseChains(_ family: IPFamily) -> Set<String> {
    NFTText.baseChains(in: sections[family == .ipv4 ? "nftmangle4" : "nftmangle6"] ?? "")
  }

  /// `true` when iptables-nft's `table ip[6] mangle` exists.
  public func nftMangleTableExists(_ family: IPFamily) -> Bool {
    (sections[family == .ipv4 ? "nftmangle4" : "nftmangle6"] ?? "").contains("table ip")
  }

  /// Expiry time of a time-boxed capture, when one is scheduled.
  public var expiry: Date? {
    let text = (sections["expiry"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    return Int64(text).map { Date(timeIntervalSince1970: TimeInterval($0)) }
  }

  /// Lines of the old script found in rsyslog.conf / logrotate.d/syslog, with `file:line:` heads.
  public var legacyConfigLines: [String] {
    ((sections["legacy-conf"] ?? "").split(separator: "\n").map { "rsyslog.conf:" + $0 })
      + ((sections["legacy-rotate"] ?? "").split(separator: "\n").map { "logrotate.d/syslog:" + $0 })
  }
}

/// Probing and dataplane detection.
public enum NodeProber {
  /// The probe's sections, each a name and a shell body (read-only). `file:*` sections are added by
  /// ``addSections(to:settings:prefix:)`` from the settings' paths.
  ///
  /// `iptables-legacy-save` runs without `-t`: asking legacy for a table would create it
  /// (the iptables-wrappers rule).
  static func sections(settings: RolloutSettings) throws(ShellQuoteError) -> [(name: String, body: String)] {
    var sections: [(name: String, body: String)] = [
      ("nft-mangle4", "have iptables-nft-save && iptables-nft-save -t mangle 2>/dev/null"),
      ("nft-mangle6", "have ip6tables-nft-save && ip6tables-nft-save -t mangle 2>/dev/null"),
      ("nft-nat4", "have iptables-nft-save && iptables-nft-save -t nat 2>/dev/null"),
      ("nft-nat6", "have ip6tables-nft-save && ip6tables-nft-save -t nat 2>/dev/null"),
      ("legacy4", "have iptables-legacy-save && iptables-legacy-save 2>/dev/null"),
      ("legacy6", "have ip6tables-legacy-save && ip6tables-legacy-save 2>/dev/null"),
      ("kp4", "have nft && nft list table ip kube-proxy 2>/dev/null"),
      ("kp6", "have nft && nft list table ip6 kube-proxy 2>/dev/null"),
      ("svct", "have nft && nft list table inet svctrace 2>/dev/null"),
      ("nftmangle4", "have nft && nft list table ip mangle 2>/dev/null"),
      ("nftmangle6", "have nft && nft list table ip6 mangle 2>/dev/null"),
      ("ipvs", "ip link show kube-ipvs0 >/dev/null 2>&1 && echo kube-ipvs0"),
      (
        "cilium",
        "ip link show cilium_host >/dev/null 2>&1 && echo 'interface cilium_host'; "
          + "ls /sys/fs/bpf/tc/globals 2>/dev/null | grep -m3 '^cilium_' | sed 's/^/bpf map /'; "
          + "[ -e /var/run/cilium/cilium.sock ] && echo 'socket /var/run/cilium/cilium.sock'; "
          + "grep -rls 'kube-proxy-replacement' /etc/cilium 2>/dev/null | head -1 | sed 's/^/config /'; true"
      ),
      (
        "facts",
        "[ -d /run/systemd/system ] && [ -S /run/systemd/private ] && echo systemd; have at && echo at; "
          + "[ -x /usr/lib/rsyslog/rsyslog-rotate ] && echo rsyslog-rotate; date +%s | sed 's/^/time /'"
      ),
      ("rsyslog", "\(settings.commands.rsyslogIsActive) >/dev/null 2>&1 && echo active"),
      try rsyslogConfSection(settings),
      (
        "platform",
        "[ -r /etc/os-release ] && sed -n 's/^ID=/id=/p; s/^ID_LIKE=/like=/p' /etc/os-release; "
          + "have getenforce && echo \"selinux=$(getenforce 2>/dev/null)\"; "
          + "{ systemctl is-active --quiet firewalld 2>/dev/null || { have nft && nft list table inet firewalld >/dev/null 2>&1; }; } "
          + "&& echo firewalld; have restorecon && echo restorecon; true"
      ),
    ]
    for (name, path) in fileSections(settings) {
      let quoted = try ShellQuote.quote(path)
      // Status 3: absent. Otherwise the body is the file's bytes, exactly.
      sections.append((name, "[ -f \(quoted) ] || exit 3; cat \(quoted)"))
    }
    sections += try [
      (
        "legacy-conf",
        "grep -n '^[[:space:]]*kern\\.\\*.*/var/log/iptables' \(ShellQuote.quote(settings.legacyRsyslogConf)) 2>/dev/null"
      ),
      (
        "legacy-rotate",
        "grep -n '^[[:space:]]*/var/log/iptables[[:space:]]*$' \(ShellQuote.quote(settings.legacyLogrotateFile)) 2>/dev/null"
      ),
      ("expiry", "cat \(ShellQuote.quote(settings.expiryMarkerPath)) 2>/dev/null"),
      (
        "svc-cidr-objects",
        "have kubectl || exit 0; command -v timeout >/dev/null 2>&1 && t='timeout 10' || t=; "
          + "[ -n \"${KUBECONFIG:-}\" ] || { [ -r /etc/kubernetes/admin.conf ] && export KUBECONFIG=/etc/kubernetes/admin.conf; }; "
          + "$t kubectl get servicecidrs -o json 2>/dev/null"
      ),
      try apiServerSection(settings),
      ("refresh", try RefreshScript.probeBody(settings: settings)),
    ]
    return sections
  }

  /// The `svc-cidr-apiserver` section: `manifest RANGE` from the API server's static-pod manifest and
  /// `process RANGE` from a running `kube-apiserver`'s command line (`/proc/PID/comm` read with the
  /// shell's `read`: no process per entry).
  static func apiServerSection(_ settings: RolloutSettings) throws(ShellQuoteError) -> (name: String, body: String) {
    let manifest = try ShellQuote.quote(settings.apiServerManifestPath)
    return (
      "svc-cidr-apiserver",
      "[ -r \(manifest) ] && sed -n 's/.*--service-cluster-ip-range=\\([^\" ]*\\).*/manifest \\1/p' \(manifest) | head -n 1; "
        + "for c in /proc/[0-9]*/comm; do read -r n < \"$c\" 2>/dev/null || continue; [ \"$n\" = kube-apiserver ] || continue; "
        + "tr '\\000' '\\n' < \"${c%/comm}/cmdline\" | sed -n 's/^--service-cluster-ip-range=/process /p' | head -n 1; break; done; true"
    )
  }

  /// The sections ``NodeRollout/presentArtifacts(_:settings:)`` needs, and no more: the mangle
  /// tables (legacy's cut to `*mangle`, without asking for it by name), `table inet svctrace`, the
  /// expiry marker, and whether each file exists (status 3: absent; no contents).
  static func presenceSections(settings: RolloutSettings) throws(ShellQuoteError) -> [(name: String, body: String)] {
    let mangleOnly = " | sed -n '/^\\*mangle/,/^COMMIT/p'"
    var sections: [(name: String, body: String)] = [
      ("nft-mangle4", "have iptables-nft-save && iptables-nft-save -t mangle 2>/dev/null"),
      ("nft-mangle6", "have ip6tables-nft-save && ip6tables-nft-save -t mangle 2>/dev/null"),
      ("legacy4", "have iptables-legacy-save && iptables-legacy-save 2>/dev/null" + mangleOnly),
      ("legacy6", "have ip6tables-legacy-save && ip6tables-legacy-save 2>/dev/null" + mangleOnly),
      ("svct", "have nft && nft list table inet svctrace 2>/dev/null"),
      ("expiry", "cat \(try ShellQuote.quote(settings.expiryMarkerPath)) 2>/dev/null"),
    ]
    for (name, path) in fileSections(settings) {
      sections.append((name, "[ -f \(try ShellQuote.quote(path)) ] || exit 3"))
    }
    return sections
  }

  /// The `rsyslog-conf` section: the text of rsyslog's main configuration (the
  /// ``RolloutSettings/legacyRsyslogConf`` path) and of every `*.conf` beside svctrace's drop-in,
  /// each after a line `==> PATH`, svctrace's own drop-in excluded (it may load imklog itself; the
  /// plan must see the node's configuration, not svctrace's answer to it). Read by ``RsyslogInputs``.
  static func rsyslogConfSection(_ settings: RolloutSettings) throws(ShellQuoteError) -> (name: String, body: String) {
    let directory = (settings.rsyslogDropInPath as NSString).deletingLastPathComponent
    let conf = try ShellQuote.quote(settings.legacyRsyslogConf)
    let dropIn = try ShellQuote.quote(settings.rsyslogDropInPath)
    return (
      "rsyslog-conf",
      "for f in \(conf) \(try ShellQuote.quote(directory))/*.conf; do [ \"$f\" = \(dropIn) ] && continue; "
        + "[ -f \"$f\" ] || continue; echo \"==> $f\"; cat \"$f\" 2>/dev/null; echo; done; true"
    )
  }

  /// The section names of svctrace's node files, with their paths.
  static func fileSections(_ settings: RolloutSettings) -> [(name: String, path: String)] {
    [
      ("file:dropin", settings.rsyslogDropInPath), ("file:logrotate", settings.logrotatePath),
      ("file:state", settings.statePath), ("file:remove", settings.removeScriptPath),
      ("file:refresh", settings.refreshScriptPath),
    ]
  }

  /// Shell function `have CMD` the probe's sections use: `true` when `CMD` is installed.
  static let haveFunction = "have() { command -v \"$1\" >/dev/null 2>&1; }"

  /// Appends the probe's sections (names prefixed with `prefix`) to a reply script. The caller puts
  /// ``ApplyScript/probePrelude(settings:)`` and ``haveFunction`` in the script's prelude first.
  public static func addSections(to script: inout NodeReply.Script, settings: RolloutSettings, prefix: String = "")
    throws(ShellQuoteError)
  {
    for (name, body) in try sections(settings: settings) {
      // svctrace's own files travel byte for byte; the rest is command output (text).
      if name.hasPrefix("file:") {
        script.binarySection(prefix + name, body)
      } else {
        script.section(prefix + name, body)
      }
    }
  }

  /// The reply script of a probe: first the recovery of an interrupted apply or remove
  /// (``ApplyScript/probePrelude(settings:)``, which changes only svctrace's own state), then the
  /// read-only sections that gather the node's facts.
  public static func script(settings: RolloutSettings, nonce: String = NodeReply.makeNonce())
    throws(ShellQuoteError) -> NodeReply.Script
  {
    var script = NodeReply.Script(nonce: nonce)
    try script.prelude(ApplyScript.probePrelude(settings: settings))
    script.prelude(haveFunction)
    try addSections(to: &script, settings: settings)
    return script
  }

  /// Runs the probe script on the node (one exec) and parses its reply strictly.
  /// - Throws: ``RemoteError`` when the session fails or the reply is garbled (`.protocolError`,
  ///   naming the node); never for an unsupported dataplane (that is reported in
  ///   ``NodeProbe/dataplane``).
  public static func probe(_ session: any RemoteSession, settings: RolloutSettings) async throws -> NodeProbe {
    let script: NodeReply.Script
    do {
      script = try Self.script(settings: settings)
    } catch {
      throw RemoteError(host: session.host, operation: "probe", kind: .commandFailed, message: error.description)
    }
    let (reply, _, _) = try await session.exchange(script, timeout: .seconds(120), operation: "probe")
    return try parse(host: session.host, reply: reply, settings: settings)
  }

  /// Reads a probe from a reply (pure; unit-tested). Every probe section (named `prefix` + name)
  /// must be there.
  /// - Throws: ``RemoteError`` of kind `.protocolError` naming the node when a section is missing.
  public static func parse(host: HostID, reply: NodeReply, settings: RolloutSettings, prefix: String = "")
    throws(RemoteError) -> NodeProbe
  {
    try parse(host: host, reply: reply, settings: settings, prefix: prefix, presenceOnly: false)
  }

  /// Same, for either the probe's sections or (`presenceOnly`) ``presenceSections(settings:)``.
  static func parse(
    host: HostID, reply: NodeReply, settings: RolloutSettings, prefix: String, presenceOnly: Bool
  ) throws(RemoteError) -> NodeProbe {
    var sections: [String: String] = [:]
    var files: [String: [UInt8]?] = [:]
    let names: [String]
    do {
      names = try (presenceOnly ? presenceSections(settings: settings) : Self.sections(settings: settings)).map(\.name)
    } catch {
      throw RemoteError(host: host, operation: "probe", kind: .commandFailed, message: error.description)
    }
    let fileNames = Dictionary(uniqueKeysWithValues: fileSections(settings).map { ($0.name, $0.path) })
    for name in names {
      guard let section = reply.section(prefix + name) else {
        throw RemoteError(
          host: host, operation: "probe", kind: .protocolError,
          message: "the node's reply is garbled: no section \(prefix + name)")
      }
      if let path = fileNames[name] {
        files[path] = section.status == 3 ? .some(nil) : section.body
      } else {
        sections[name] = section.text
      }
    }
    return make(host: host, sections: sections, files: files)
  }

  /// A probe from section texts (missing sections are empty, missing files absent): for tests and
  /// the parser.
  public static func make(host: HostID, sections: [String: String], files: [String: [UInt8]?] = [:]) -> NodeProbe {
    let facts = Set((sections["facts"] ?? "").split(separator: "\n").map(String.init))
    let nodeTime = facts.first { $0.hasPrefix("time ") }.flatMap { Int64($0.dropFirst(5)) }
    var probe = NodeProbe(
      host: host,
      dataplane: .failure(RolloutError(host: host, operation: "detect dataplane", kind: .noKubeProxy, reason: "")),
      sections: sections, files: files, hasSystemd: facts.contains("systemd"), hasAt: facts.contains("at"),
      hasRsyslogRotate: facts.contains("rsyslog-rotate"),
      rsyslogActive: (sections["rsyslog"] ?? "").contains("active"), nodeTime: nodeTime)
    probe.rsyslogInputs = RsyslogInputs(parsing: sections["rsyslog-conf"] ?? "")
    probe.platform = NodePlatform(parsing: sections["platform"] ?? "")
    probe.serviceCIDRFacts = ServiceCIDRFacts(sections: sections)
    probe.refresh = RefreshStatus(parsing: sections["refresh"] ?? "")
    probe.dataplane = detect(probe)
    return probe
  }

  /// Decides kube-proxy's mode and backend from probe sections, the iptables-wrappers way.
  static func detect(_ probe: NodeProbe) -> Result<Dataplane, RolloutError> {
    let host = probe.host
    func fail(_ kind: RolloutError.Kind, _ reason: String) -> Result<Dataplane, RolloutError> {
      .failure(RolloutError(host: host, operation: "detect dataplane", kind: kind, reason: reason))
    }
    let sections = probe.sections
    let hint = #/(?m)^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /#
    var evidence: [String] = []
    if (sections["ipvs"] ?? "").contains("kube-ipvs0") {
      return fail(
        .unsupportedDataplane,
        "kube-proxy runs in IPVS mode (interface kube-ipvs0 exists): IPVS translates outside the conntrack DNAT "
          + "path that svctrace's post-DNAT rules select on; use `conntrack -E` or switch kube-proxy to iptables or nftables mode"
      )
    }
    let nftHinted = [sections["nft-mangle4"], sections["nft-mangle6"]].contains { ($0 ?? "").contains(hint) }
    let legacyHinted = !nftHinted && [sections["legacy4"], sections["legacy6"]].contains { ($0 ?? "").contains(hint) }
    let nftServices =
      probe.nat(.iptablesNFT, .ipv4).chains.contains("KUBE-SERVICES")
      || probe.nat(.iptablesNFT, .ipv6).chains.contains("KUBE-SERVICES")
    let legacyServices =
      probe.nat(.iptablesLegacy, .ipv4).chains.contains("KUBE-SERVICES")
      || probe.nat(.iptablesLegacy, .ipv6).chains.contains("KUBE-SERVICES")
    let kp4 = sections["kp4"] ?? ""
    let kp6 = sections["kp6"] ?? ""
    if kp4.contains("table ip kube-proxy") || kp6.contains("table ip6 kube-proxy") {
      evidence.append("nft table ip kube-proxy exists → kube-proxy nftables mode")
      var services: [LearnedService] = []
      var nodePorts: [LearnedNodePort] = []
      var families: [IPFamily] = []
      for (family, text) in [(IPFamily.ipv4, kp4), (.ipv6, kp6)] where text.contains("kube-proxy") {
        let learned = NFTText.kubeProxyServices(text, family: family)
        services += learned.services
        nodePorts += learned.nodePorts
        if !learned.services.isEmpty || family == .ipv4 { families.append(family) }
      }
      return .success(
        Dataplane(
          mode: .nftables, backend: .nftables, families: families, services: services.sorted(),
          nodePorts: nodePorts, evidence: evidence))
    }
    let backend: Dataplane.Backend
    if nftHinted && nftServices {
      backend = .iptablesNFT
      evidence.append(
        ":KUBE-IPTABLES-HINT/:KUBE-KUBELET-CANARY in iptables-nft-save -t mangle; :KUBE-SERVICES in nft nat")
    } else if legacyHinted && legacyServices {
      backend = .iptablesLegacy
      evidence.append(":KUBE-IPTABLES-HINT/:KUBE-KUBELET-CANARY in iptables-legacy-save; :KUBE-SERVICES in legacy nat")
    } else if nftServices {
      backend = .iptablesNFT
      evidence.append(":KUBE-SERVICES in iptables-nft nat (no hint chain)")
    } else if legacyServices {
      backend = .iptablesLegacy
      evidence.append(":KUBE-SERVICES in iptables-legacy nat (no hint chain)")
    } else {
      let portals = [IPFamily.ipv4, .ipv6].flatMap { family in
        [Dataplane.Backend.iptablesNFT, .iptablesLegacy].map { probe.nat($0, family).chains }
      }.contains { $0.contains("KUBE-PORTALS-CONTAINER") || $0.contains("KUBE-PORTALS-HOST") }
      if portals {
        return fail(
          .unsupportedDataplane,
          "kube-proxy runs in userspace mode (:KUBE-PORTALS-CONTAINER/:KUBE-PORTALS-HOST in nat): it accepts "
            + "each Service connection itself and opens a new one to the pod, so no packet is translated for "
            + "LOG rules to see; switch kube-proxy to iptables mode (--proxy-mode=iptables)")
      }
      let cilium = (sections["cilium"] ?? "").split(separator: "\n").map(String.init)
      if !cilium.isEmpty {
        return fail(
          .unsupportedDataplane,
          "no kube-proxy rules (no KUBE-SERVICES chain, no nft kube-proxy table) and Cilium is present ("
            + cilium.joined(separator: ", ")
            + "): an eBPF kube-proxy replacement picks backends at the socket, before any packet reaches "
            + "netfilter, so LOG rules cannot see Service translation")
      }
      return fail(
        .noKubeProxy,
        "no kube-proxy rules found: no :KUBE-SERVICES chain in iptables-nft or iptables-legacy nat, "
          + "no nft table ip kube-proxy, no kube-ipvs0 (is kube-proxy running on this node?)")
    }
    var services: [LearnedService] = []
    var nodePorts: [LearnedNodePort] = []
    var families: [IPFamily] = []
    for family in IPFamily.allCases {
      let nat = probe.nat(backend, family)
      guard nat.chains.contains("KUBE-SERVICES") else { continue }
      let learned = learnFromNat(nat, family: family)
      if family == .ipv4 || !learned.services.isEmpty { families.append(family) }
      services += learned.services
      nodePorts += learned.nodePorts
    }
    return .success(
      Dataplane(
        mode: .iptables, backend: backend, families: families, services: services.sorted(), nodePorts: nodePorts,
        evidence: evidence))
  }

  /// Whether a `KUBE-SERVICES` rule jumping to `target` forwards a ClusterIP (`true`), an externalIP or
  /// load-balancer IP (`false`), or is not a Service jump (`nil`).
  ///
  /// kube-proxy's comment decides when it has one (`"ns/svc:port cluster IP"`, `"… external IP"`,
  /// `"… loadbalancer IP"`): in older releases externalIP rules jump straight to `KUBE-SVC-*`. Otherwise
  /// the target does: `KUBE-SVC-`/`KUBE-SVL-` for ClusterIPs; `KUBE-EXT-` (v1.24+), `KUBE-XLB-`
  /// (externalTrafficPolicy Local before `KUBE-EXT-`) and `KUBE-FW-` (load-balancer IPs) for the others.
  static func serviceKind(target: String, comment: String?) -> Bool? {
    let isServiceJump = ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-XLB-", "KUBE-FW-"].contains {
      target.hasPrefix($0)
    }
    guard isServiceJump else { return nil }
    if let comment {
      if comment.hasSuffix(" cluster IP") { return true }
      if comment.hasSuffix(" external IP") || comment.hasSuffix(" loadbalancer IP") { return false }
    }
    return target.hasPrefix("KUBE-SVC-") || target.hasPrefix("KUBE-SVL-")
  }

  /// Learns Service addresses (`KUBE-SERVICES -d VIP -p P --dport N -j KUBE-SVC/SVL/EXT/XLB/FW-…`) and
  /// NodePorts (`KUBE-NODEPORTS -p P --dport N`) from a nat table.
  public static func learnFromNat(_ nat: IptablesSave.Table, family: IPFamily)
    -> (services: [LearnedService], nodePorts: [LearnedNodePort])
  {
    var services = Set<LearnedService>()
    var nodePorts = Set<LearnedNodePort>()
    for (chain, isServices) in [("KUBE-SERVICES", true), ("KUBE-NODEPORTS", false)] {
      for spec in nat.rules(of: chain) {
        let words = IptablesSave.words(spec)
        var destination: String?
        var proto: IPProtocol?
        var port: UInt16?
        var target: String?
        var comment: String?
        var index = 0
        while index < words.count {
          let word = words[index]
          let next = index + 1 < words.count ? words[index + 1] : nil
          switch word {
          // `! -d X` matches every destination but X: not a Service address.
          case "-d": destination = index > 0 && words[index - 1] == "!" ? nil : next
          case "-p": proto = next.flatMap { IPProtocol(serviceName: $0) }
          case "--dport": port = next.flatMap(UInt16.init)
          case "-j", "-g": target = next
          case "--comment": comment = next
          default: break
          }
          index += 1
        }
        guard let proto, let port, let target, target.hasPrefix("KUBE-") else { continue }
        if isServices {
          guard let destination, let cidr = try? CIDR(parsing: destination), cidr.isHost, cidr.family == family else {
            continue
          }
          guard let clusterIP = serviceKind(target: target, comment: comment) else { continue }
          services.insert(
            LearnedService(
              address: ServiceAddress(address: cidr.address, port: port, proto: proto), isClusterIP: clusterIP))
        } else {
          nodePorts.insert(LearnedNodePort(family: family, port: port, proto: proto))
        }
      }
    }
    return (services.sorted(), nodePorts.sorted { ($0.port, $0.proto) < ($1.port, $1.proto) })
  }
}

/// Detects the dataplane of a node (one ``NodeProber/probe(_:settings:)``).
/// - Throws: ``RolloutError`` for an unsupported or missing kube-proxy, ``RemoteError`` for session failures.
public func detectDataplane(_ session: any RemoteSession, settings: RolloutSettings = RolloutSettings()) async throws
  -> Dataplane
{
  try await NodeProber.probe(session, settings: settings).dataplane.get()
}
