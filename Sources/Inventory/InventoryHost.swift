/// One host of the inventory with its groups and its fully merged variables.
///
/// `description` is the host name only: variables can hold secrets and never appear in messages.
public struct InventoryHost: Sendable, Hashable, CustomStringConvertible {
  /// The inventory name (`node01`); what `--limit`, errors and results use.
  public var name: String
  /// Every group the host belongs to, directly or through `children`, including `all`.
  public var groups: Set<String>
  /// Variables merged with Ansible's precedence (see ``Inventory``).
  public var vars: [String: InventoryValue]

  /// Creates a host; mainly for tests and for callers building hosts without a file.
  public init(name: String, groups: Set<String> = ["all"], vars: [String: InventoryValue] = [:]) {
    self.name = name
    self.groups = groups
    self.vars = vars
  }

  public var description: String { name }

  /// The first of `keys` that is set to a scalar, as text.
  private func first(_ keys: String...) -> String? {
    for key in keys { if let text = vars[key]?.stringValue { return text } }
    return nil
  }

  /// Where to connect: `ansible_host` (or the older `ansible_ssh_host`), else the name.
  public var address: String { first("ansible_host", "ansible_ssh_host") ?? name }
  /// The SSH port: `ansible_port` or `ansible_ssh_port` (or a `host:port` line); `nil` = default.
  public var port: Int? {
    for key in ["ansible_port", "ansible_ssh_port"] { if let port = vars[key]?.intValue { return port } }
    return nil
  }
  /// The login user: `ansible_user` or `ansible_ssh_user`.
  public var user: String? { first("ansible_user", "ansible_ssh_user") }
  /// The private key: `ansible_ssh_private_key_file` or `ansible_private_key_file`.
  public var privateKeyFile: String? { first("ansible_ssh_private_key_file", "ansible_private_key_file") }
  /// The SSH password: `ansible_password`, `ansible_ssh_pass` or `ansible_ssh_password`.
  public var password: String? { first("ansible_password", "ansible_ssh_pass", "ansible_ssh_password") }
  /// `ansible_become` read as Ansible's `boolean()` does (`yes`/`no`/`true`/`1`…); `nil` when unset.
  public var become: Bool? { vars["ansible_become"]?.boolValue }
  /// Whether svctrace should use sudo on this host: `svctrace_become` when set, else `ansible_become`.
  public var svctraceBecome: Bool? { vars["svctrace_become"]?.boolValue ?? become }
  /// `ansible_become_user` (sudo's `-u`); `nil` means root.
  public var becomeUser: String? { first("ansible_become_user", "ansible_sudo_user") }
  /// `ansible_become_method`; svctrace supports `sudo` only.
  public var becomeMethod: String? { first("ansible_become_method") }
  /// The sudo password: `ansible_become_password`, `ansible_become_pass` or `ansible_sudo_pass`.
  public var becomePassword: String? {
    first("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password")
  }

  /// A variable as text (strings, numbers, booleans), such as `svctrace_log_path`.
  ///
  /// `nil` when the variable is unset, a list or a mapping.
  public func string(_ key: String) -> String? { vars[key]?.stringValue }

  /// A variable as an integer (`svctrace_max_rate: 200` or `"200"`).
  public func int(_ key: String) -> Int? { vars[key]?.intValue }

  /// A variable as a flag, read the way Ansible's `boolean()` reads it (`svctrace_become`).
  public func bool(_ key: String) -> Bool? { vars[key]?.boolValue }

  /// A variable as a list of strings: a YAML/INI list, or a comma-separated string
  /// (`svctrace_services: 10.96.0.10:53,10.96.0.1:443`).
  public func strings(_ key: String) -> [String]? { vars[key]?.stringList }
}

/// One group of the inventory.
public struct InventoryGroup: Sendable, Hashable {
  /// The group name (`kube_node`, `all`, `ungrouped`).
  public var name: String
  /// Hosts listed directly in this group, in inventory order.
  public var hosts: [String]
  /// Hosts of this group and of all its descendants, in inventory order.
  public var allHosts: [String]
  /// Direct child groups, in the order they were declared.
  public var children: [String]
  /// Direct parent groups (`all` for top-level groups; empty for `all`).
  public var parents: [String]
  /// This group's own variables: inventory `vars` overlaid with its `group_vars/` files.
  public var vars: [String: InventoryValue]
  /// Distance from `all` along the longest parent chain (`all` is 0); deeper groups win merges.
  public var depth: Int
  /// `ansible_group_priority` (default 1); breaks ties between groups of equal depth.
  public var priority: Int
}
