public import SVCTraceCore

/// Everything needed to reach and act on one host, resolved from inventory, ssh_config and flags.
public struct FleetHost: Sendable, Hashable {
  public var id: HostID
  /// Address to dial (`ansible_host`, ssh_config `HostName`, or the name itself).
  public var address: String
  public var port: Int
  public var user: String
  public var identityFiles: [String]
  /// Login password, when the inventory or environment gives one.
  public var password: String?
  /// Bastion hops, outermost first.
  public var jumpHosts: [FleetHost]
  public var become: BecomeConfig
  /// Inventory variables (already merged by precedence), for per-host settings like `svctrace_log_path`.
  public var vars: [String: String]
  /// Groups the host belongs to.
  public var groups: Set<String>

  public init(
    id: HostID, address: String, port: Int = 22, user: String, identityFiles: [String] = [],
    password: String? = nil, jumpHosts: [FleetHost] = [], become: BecomeConfig = BecomeConfig(),
    vars: [String: String] = [:], groups: Set<String> = []
  ) {
    self.id = id
    self.address = address
    self.port = port
    self.user = user
    self.identityFiles = identityFiles
    self.password = password
    self.jumpHosts = jumpHosts
    self.become = become
    self.vars = vars
    self.groups = groups
  }
}

/// Privilege escalation for a host: whether to use sudo, as whom, and with which password.
public struct BecomeConfig: Sendable, Hashable {
  public var enabled: Bool
  public var user: String
  /// Fed to `sudo -S` on standard input, never on a command line.
  public var password: String?

  public init(enabled: Bool = false, user: String = "root", password: String? = nil) {
    self.enabled = enabled
    self.user = user
    self.password = password
  }
}

extension FleetHost: CustomStringConvertible {
  // Never includes passwords.
  public var description: String { "\(id) (\(user)@\(address):\(port))" }
}
