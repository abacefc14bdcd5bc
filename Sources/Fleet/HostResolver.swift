public import Inventory
public import SSH
public import SVCTraceCore

/// Connection settings given on the command line; each overrides inventory and ssh_config.
public struct ConnectionOverrides: Sendable {
  public var user: String?
  public var port: Int?
  public var identityFiles: [String] = []
  public var password: String?
  /// `--become` / `--no-become`; `nil` keeps the inventory's `ansible_become`.
  public var become: Bool?
  public var becomeUser: String?
  public var becomePassword: String?
  /// `--jump HOST`: a bastion for every host (`user@host:port`, comma-separated chain).
  public var jump: String?

  public init() {}
}

/// Turns inventory hosts into ``FleetHost``s: inventory variables first, then ssh_config, then
/// defaults — with command-line overrides above all.
public struct HostResolver: Sendable {
  public var sshConfig: SSHConfig?
  public var overrides: ConnectionOverrides
  /// The workstation user, the default login like `ssh` uses.
  public var localUser: String

  public init(sshConfig: SSHConfig?, overrides: ConnectionOverrides, localUser: String) {
    self.sshConfig = sshConfig
    self.overrides = overrides
    self.localUser = localUser
  }

  /// Resolves every host.
  /// - Throws: ``UnsafeValueError`` for the first host with a value that must not reach a shell.
  public func resolve(_ hosts: [InventoryHost]) throws(UnsafeValueError) -> [FleetHost] {
    var resolved: [FleetHost] = []
    for host in hosts { resolved.append(try resolve(host)) }
    return resolved
  }

  /// Resolves one inventory host.
  ///
  /// Every value that can reach the node's shell is checked first (``RemoteValue``): the user
  /// names, passwords, `ansible_host` and the path variables, from the inventory and from the
  /// command line, so every command refuses a hostile inventory before connecting.
  /// - Throws: ``UnsafeValueError`` naming the host and the variable (or option).
  public func resolve(_ host: InventoryHost) throws(UnsafeValueError) -> FleetHost {
    try check(host)
    let alias = host.address
    let entry = sshConfig?.resolve(alias)
    let address = host.vars["ansible_host"] == nil ? (entry?.hostName ?? alias) : alias
    let user = overrides.user ?? host.user ?? entry?.user ?? localUser
    let port = overrides.port ?? host.port ?? entry?.port ?? 22
    var keys = overrides.identityFiles
    if keys.isEmpty { keys = host.privateKeyFile.map { [$0] } ?? entry?.identityFiles ?? [] }
    let becomeEnabled = overrides.become ?? host.svctraceBecome ?? false
    let become = BecomeConfig(
      enabled: becomeEnabled, user: overrides.becomeUser ?? host.becomeUser ?? "root",
      password: overrides.becomePassword ?? host.becomePassword)
    let configJump = entry.flatMap {
      $0.proxyJump.isEmpty ? nil : $0.proxyJump.map(\.description).joined(separator: ",")
    }
    let jumpSpec = overrides.jump ?? host.proxyJump ?? configJump
    return FleetHost(
      id: HostID(host.name), address: address, port: port, user: user, identityFiles: keys,
      password: overrides.password ?? host.password, jumpHosts: jumpHosts(jumpSpec, fallbackKeys: keys),
      become: become, vars: host.vars.compactMapValues(\.stringValue), groups: host.groups)
  }

  /// Checks the values of `host` (variables merged, overrides on top) that reach a shell.
  private func check(_ host: InventoryHost) throws(UnsafeValueError) {
    do {
      for key in host.vars.keys.sorted() {
        if let value = host.vars[key]?.stringValue { try RemoteValue.check(variable: key, value: value) }
      }
      if let user = overrides.user { try RemoteValue.loginName(user, variable: "--user") }
      if let user = overrides.becomeUser { try RemoteValue.userName(user, variable: "--become-user") }
      if let password = overrides.password { try RemoteValue.secret(password, variable: "SSH password") }
      if let password = overrides.becomePassword { try RemoteValue.secret(password, variable: "become password") }
    } catch {
      var named = error
      named.host = host.name
      throw named
    }
  }

  /// Resolves a `ProxyJump` value (`[user@]host[:port][,…]`) into hops, each through ssh_config.
  ///
  /// A hop without keys of its own (from flags or ssh_config) uses the target host's keys.
  func jumpHosts(_ spec: String?, fallbackKeys: [String]) -> [FleetHost] {
    guard let spec, !spec.isEmpty, spec.lowercased() != "none" else { return [] }
    return spec.split(separator: ",").map { hop in
      var rest = Substring(hop.trimmingSpaces())
      var user: String?
      if let at = rest.lastIndex(of: "@") {
        user = String(rest[..<at])
        rest = rest[rest.index(after: at)...]
      }
      var port: Int?
      if let colon = rest.lastIndex(of: ":"), let number = Int(rest[rest.index(after: colon)...]) {
        port = number
        rest = rest[..<colon]
      }
      let alias = String(rest)
      let entry = sshConfig?.resolve(alias)
      return FleetHost(
        id: HostID(alias), address: entry?.hostName ?? alias, port: port ?? entry?.port ?? 22,
        user: user ?? entry?.user ?? localUser,
        identityFiles: entry?.identityFiles.isEmpty == false ? (entry?.identityFiles ?? []) : fallbackKeys)
    }
  }
}

extension StringProtocol {
  func trimmingSpaces() -> String {
    var text = Substring(self)
    while text.first?.isWhitespace == true { text.removeFirst() }
    while text.last?.isWhitespace == true { text.removeLast() }
    return String(text)
  }
}
