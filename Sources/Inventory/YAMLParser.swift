internal import Yams

/// Parses Ansible YAML inventories into ``InventoryData``, following ansible-core's `yaml` plugin.
///
/// Top-level keys are groups; each group is a mapping with optional `hosts`, `vars` and
/// `children` (children are groups again). Host keys may carry ranges and `:port`; a host's value
/// is its variables or empty.
struct YAMLParser {
  let file: String
  var data: InventoryData

  /// Parses `text` (the contents of `file`) into `data`.
  ///
  /// - Throws: ``InventoryError`` with the file and line of the first problem.
  mutating func parse(_ text: String) throws(InventoryError) {
    guard let root = try YAMLSupport.compose(text, file: file), !YAMLSupport.isNull(root) else {
      throw InventoryError(
        file: file, message: "empty YAML inventory (expected a mapping of groups, e.g. 'all:' with 'hosts:')")
    }
    guard case .mapping(let groups) = root else {
      throw InventoryError(
        file: file, line: YAMLSupport.line(root),
        message: "expected a mapping of group names at the top of a YAML inventory, got \(YAMLSupport.kind(root))")
    }
    if let plugin = groups["plugin"] {
      throw InventoryError(
        file: file, line: YAMLSupport.line(plugin),
        message:
          "this is an inventory plugin configuration (plugin: \(plugin.string ?? "?")); svctrace reads static INI and YAML inventories only"
      )
    }
    for (key, value) in groups {
      try parseGroup(YAMLSupport.keyText(key), value, keyLine: YAMLSupport.line(key))
    }
  }

  private func error(_ node: Node?, _ message: String) -> InventoryError {
    InventoryError(file: file, line: YAMLSupport.line(node), message: message)
  }

  /// Turns a section value into mapping entries: null → none, a string → that key with no value.
  private func entries(_ node: Node, section: String, group: String) throws(InventoryError) -> [(Node, Node)] {
    switch node {
    case .mapping(let mapping): return mapping.map { ($0.key, $0.value) }
    case .scalar where YAMLSupport.isNull(node): return []
    case .scalar where section != "vars" && YAMLSupport.tagName(node) == .str: return [(node, Node("", .init(.null)))]
    default:
      throw error(node, "'\(section)' of group '\(group)' must be a mapping, got \(YAMLSupport.kind(node))")
    }
  }

  private mutating func parseGroup(_ name: String, _ node: Node, keyLine: Int?) throws(InventoryError) {
    guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" || $0 == ":" }) else {
      throw InventoryError(
        file: file, line: keyLine, message: "invalid group name '\(name)' (no spaces or ':' allowed)")
    }
    data.addGroup(name)
    if YAMLSupport.isNull(node) { return }
    guard case .mapping(let sections) = node else {
      throw error(
        node, "group '\(name)' must be a mapping with 'hosts', 'vars' and/or 'children', got \(YAMLSupport.kind(node))")
    }
    for (keyNode, value) in sections {
      let key = YAMLSupport.keyText(keyNode)
      switch key {
      case "hosts":
        for (hostKey, hostValue) in try entries(value, section: key, group: name) {
          try parseHost(YAMLSupport.keyText(hostKey), hostValue, keyNode: hostKey, group: name)
        }
      case "vars":
        var state = YAMLSupport.Conversion()
        for (varKey, varValue) in try entries(value, section: key, group: name) {
          if YAMLSupport.isVaulted(varValue) {
            state.warnings.append(YAMLSupport.vaultWarning(YAMLSupport.keyText(varKey), varValue, file: file))
            continue
          }
          let key = YAMLSupport.keyText(varKey)
          let converted = try YAMLSupport.value(varValue, file: file, state: &state)
          try RemoteValueCheck.check(
            key, converted, owner: "group '\(name)'", file: file, line: YAMLSupport.line(varKey))
          data.setGroupVar(name, key, converted)
        }
        data.warnings += state.warnings
      case "children":
        for (childKey, childValue) in try entries(value, section: key, group: name) {
          let child = YAMLSupport.keyText(childKey)
          try parseGroup(child, childValue, keyLine: YAMLSupport.line(childKey))
          try data.addChild(parent: name, child: child, file: file, line: YAMLSupport.line(childKey))
        }
      default:
        data.warnings.append(
          InventoryWarning(
            file: file, line: YAMLSupport.line(keyNode),
            message:
              "ignoring unexpected key '\(key)' in group '\(name)' (only 'hosts', 'vars' and 'children' are valid)"))
      }
    }
  }

  private mutating func parseHost(_ pattern: String, _ node: Node, keyNode: Node, group: String) throws(InventoryError)
  {
    let names: [String]
    let port: Int?
    do {
      (names, port) = try HostExpansion.expand(pattern)
    } catch {
      throw self.error(keyNode, error.message)
    }
    var vars: [String: InventoryValue] = [:]
    if !YAMLSupport.isNull(node) {
      guard case .mapping = node else {
        throw error(
          node,
          "host '\(pattern)' in group '\(group)' must map to its variables (a mapping) or be empty, got \(YAMLSupport.kind(node))"
        )
      }
      var state = YAMLSupport.Conversion()
      if case .map(let values) = try YAMLSupport.value(node, file: file, state: &state) { vars = values }
      try RemoteValueCheck.check(mapping: node, values: vars, owner: "host '\(pattern)'", file: file)
      data.warnings += state.warnings
    }
    for name in names {
      data.addHost(name, group: group, port: port)
      for (key, value) in vars { data.setHostVar(name, key, value) }
    }
  }
}
