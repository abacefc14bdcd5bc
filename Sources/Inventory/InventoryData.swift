/// The mutable inventory graph the parsers fill in, mirroring ansible-core's `InventoryData`.
///
/// Groups and hosts keep first-seen order. Group-to-group edges are checked for cycles as they are
/// added, so a cycle is reported at the line that closes it.
struct InventoryData {
  /// One group as parsed: direct hosts, children, parents, its own inventory variables.
  struct Group {
    var name: String
    var hosts: [String] = []
    /// The same names as `hosts`, for constant-time membership checks.
    var hostSet: Set<String> = []
    var children: [String] = []
    var parents: [String] = []
    var vars: [String: InventoryValue] = [:]
    /// `ansible_group_priority`; breaks ties between groups of equal depth (higher wins).
    var priority = 1
  }

  /// One host as parsed: its direct groups and its inventory variables.
  struct Host {
    var name: String
    var groups: [String] = []
    var vars: [String: InventoryValue] = [:]
  }

  private(set) var groups: [String: Group] = [:]
  private(set) var groupOrder: [String] = []
  private(set) var hosts: [String: Host] = [:]
  private(set) var hostOrder: [String] = []
  var warnings: [InventoryWarning] = []

  init() {
    addGroup("all")
    addGroup("ungrouped")
    link(parent: "all", child: "ungrouped")
  }

  /// Declares a group (no-op when it exists).
  mutating func addGroup(_ name: String) {
    guard groups[name] == nil else { return }
    groups[name] = Group(name: name)
    groupOrder.append(name)
  }

  /// Declares a host and, when given, adds it to `group`; a port becomes `ansible_port`.
  mutating func addHost(_ name: String, group: String?, port: Int?) {
    if hosts[name] == nil {
      hosts[name] = Host(name: name)
      hostOrder.append(name)
    }
    if let group {
      addGroup(group)
      if groups[group]?.hostSet.insert(name).inserted == true { groups[group]?.hosts.append(name) }
      if hosts[name]?.groups.contains(group) == false { hosts[name]?.groups.append(group) }
    }
    if let port { hosts[name]?.vars["ansible_port"] = .int(port) }
  }

  /// Sets one inventory variable of a host (later definitions win, as in Ansible).
  mutating func setHostVar(_ host: String, _ key: String, _ value: InventoryValue) {
    hosts[host]?.vars[key] = value
  }

  /// Sets one inventory variable of a group; `ansible_group_priority` sets its priority instead.
  mutating func setGroupVar(_ group: String, _ key: String, _ value: InventoryValue) {
    addGroup(group)
    // Like Ansible, the priority is a property of the group, not a variable of its hosts.
    if key == "ansible_group_priority", let priority = value.intValue {
      groups[group]?.priority = priority
      return
    }
    groups[group]?.vars[key] = value
  }

  /// Makes `child` a child group of `parent`, refusing self-membership, `all` as a child and cycles.
  ///
  /// - Throws: ``InventoryError`` at `file`:`line`, naming the cycle (`a -> b -> a`).
  mutating func addChild(parent: String, child: String, file: String, line: Int?) throws(InventoryError) {
    addGroup(parent)
    addGroup(child)
    if child == "all" {
      throw InventoryError(
        file: file, line: line, message: "group 'all' cannot be a child of '\(parent)': every group is already in 'all'"
      )
    }
    if parent == child {
      throw InventoryError(file: file, line: line, message: "group '\(parent)' cannot be a child of itself")
    }
    if let path = childPath(from: child, to: parent) {
      let cycle = ([parent] + path).joined(separator: " -> ")
      throw InventoryError(
        file: file, line: line, message: "children form a cycle: \(cycle) (a group cannot contain one of its ancestors)"
      )
    }
    link(parent: parent, child: child)
  }

  private mutating func link(parent: String, child: String) {
    if groups[parent]?.children.contains(child) == false { groups[parent]?.children.append(child) }
    if groups[child]?.parents.contains(parent) == false { groups[child]?.parents.append(parent) }
  }

  /// The chain of groups from `start` down to `target` through `children`, when one exists.
  private func childPath(from start: String, to target: String) -> [String]? {
    var previous: [String: String] = [:]
    var queue = [start]
    var seen: Set<String> = [start]
    var head = 0
    while head < queue.count {
      let name = queue[head]
      head += 1
      if name == target {
        var path = [name]
        var cursor = name
        while let before = previous[cursor] {
          path.append(before)
          cursor = before
        }
        return path.reversed()
      }
      for child in groups[name]?.children ?? [] where seen.insert(child).inserted {
        previous[child] = name
        queue.append(child)
      }
    }
    return nil
  }

  /// Applies Ansible's `reconcile_inventory`: parentless groups join `all`; hosts with no other
  /// group join `ungrouped`; hosts in another group leave `ungrouped`.
  mutating func reconcile(warningFile: String) {
    for name in groupOrder where name != "all" && (groups[name]?.parents.isEmpty ?? false) {
      link(parent: "all", child: name)
    }
    var leaving: Set<String> = []
    for name in hostOrder {
      guard let host = hosts[name] else { continue }
      let others = host.groups.filter { $0 != "all" && $0 != "ungrouped" }
      if others.isEmpty {
        addHost(name, group: "ungrouped", port: nil)
      } else if host.groups.contains("ungrouped") {
        hosts[name]?.groups.removeAll { $0 == "ungrouped" }
        leaving.insert(name)
      }
    }
    if !leaving.isEmpty {
      groups["ungrouped"]?.hosts.removeAll { leaving.contains($0) }
      groups["ungrouped"]?.hostSet.subtract(leaving)
    }
    for name in hostOrder where groups[name] != nil {
      warnings.append(
        InventoryWarning(file: warningFile, line: nil, message: "found both a group and a host named '\(name)'"))
    }
  }

  /// Each group's depth: the longest chain of parents up to `all` (which is 0).
  ///
  /// Computed iteratively in topological order (the graph is acyclic: ``addChild`` refuses cycles).
  func depths() -> [String: Int] {
    var depth: [String: Int] = [:]
    var remainingParents: [String: Int] = [:]
    var ready: [String] = []
    for name in groupOrder {
      let count = groups[name]?.parents.count ?? 0
      remainingParents[name] = count
      depth[name] = 0
      if count == 0 { ready.append(name) }
    }
    var head = 0
    while head < ready.count {
      let name = ready[head]
      head += 1
      for child in groups[name]?.children ?? [] {
        depth[child] = max(depth[child] ?? 0, (depth[name] ?? 0) + 1)
        remainingParents[child, default: 0] -= 1
        if remainingParents[child] == 0 { ready.append(child) }
      }
    }
    return depth
  }

  /// Every group `host` belongs to, directly or through parents (including `all`).
  func allGroups(ofHost host: String) -> Set<String> {
    var result: Set<String> = []
    var stack = hosts[host]?.groups ?? []
    while let name = stack.popLast() {
      guard result.insert(name).inserted else { continue }
      stack.append(contentsOf: groups[name]?.parents ?? [])
    }
    result.insert("all")
    return result
  }
}
