public import SVCTraceCore

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

  /// The host's identity for errors, logs and results.
  public var id: HostID { HostID(name) }

  /// `ansible_connection` (`ssh`, `local`…); `nil` means SSH.
  public var connection: String? { first("ansible_connection") }

  /// The bastion to jump through, from `ansible_ssh_common_args` / `ansible_ssh_extra_args`.
  ///
  /// Understands `-J host`, `-o ProxyJump=host` and the classic
  /// `-o ProxyCommand="ssh -W %h:%p [opts] [user@]bastion"`. `nil` when none is given (svctrace
  /// then relies on `~/.ssh/config`).
  public var proxyJump: String? {
    for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
      if let args = vars[key]?.stringValue, let jump = SSHArguments.proxyJump(in: args) { return jump }
    }
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

/// Reads the bastion out of OpenSSH command-line arguments as inventories write them.
enum SSHArguments {
  /// Options of `ssh` that take a value (so their value is not mistaken for the destination).
  private static let optionsWithValue = Set("BbcDEeFIiJLlmOopQRSWw".map { $0 })

  /// The `ProxyJump` destination in `args`, when there is one.
  static func proxyJump(in args: String) -> String? {
    guard let tokens = try? INIValues.split(args) else { return nil }
    var index = 0
    while index < tokens.count {
      let token = tokens[index]
      if token == "-J", index + 1 < tokens.count { return tokens[index + 1] }
      if token.hasPrefix("-J"), token.count > 2 { return String(token.dropFirst(2)) }
      var option: String?
      if token == "-o", index + 1 < tokens.count {
        option = tokens[index + 1]
        index += 1
      } else if token.hasPrefix("-o"), token.count > 2 {
        option = String(token.dropFirst(2))
      }
      if let option, let equals = option.firstIndex(where: { $0 == "=" || $0 == " " }) {
        let name = option[..<equals].lowercased()
        let value = String(option[option.index(after: equals)...]).trimmingWhitespace()
        if name == "proxyjump" { return value }
        if name == "proxycommand", let destination = destination(ofProxyCommand: value) { return destination }
      }
      index += 1
    }
    return nil
  }

  /// The destination of `ssh -W %h:%p … [user@]host` (optionally `-p port`, kept as `host:port`).
  private static func destination(ofProxyCommand command: String) -> String? {
    guard let tokens = try? INIValues.split(command), let first = tokens.first,
      first == "ssh" || first.hasSuffix("/ssh"), tokens.contains("-W")
    else { return nil }
    var index = 1
    var port: String?
    var host: String?
    while index < tokens.count {
      let token = tokens[index]
      if token.hasPrefix("-") && token.count >= 2 {
        let letter = token[token.index(after: token.startIndex)]
        if optionsWithValue.contains(letter) && token.count == 2 {
          if letter == "p", index + 1 < tokens.count { port = tokens[index + 1] }
          index += 2
          continue
        }
      } else if host == nil {
        host = token
      }
      index += 1
    }
    guard let host else { return nil }
    return port.map { "\(host):\($0)" } ?? host
  }
}
