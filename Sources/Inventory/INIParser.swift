import SVCTraceCore

/// Parses Ansible INI inventories into ``InventoryData``, following ansible-core's `ini` plugin.
///
/// Sections are `[group]` (or `[group:hosts]`), `[group:vars]` and `[group:children]`; lines before
/// any section are hosts of `ungrouped`. Whole-line comments start with `#` or `;`.
struct INIParser {
  let file: String
  var data: InventoryData

  private enum State: String { case hosts, vars, children }

  /// A `[parent:children]` entry naming a group not declared yet.
  private struct PendingChild { var parents: [(name: String, line: Int)] }

  /// Parses `text` (the contents of `file`) into `data`.
  ///
  /// - Throws: ``InventoryError`` with the file and line of the first problem.
  mutating func parse(_ text: String) throws(InventoryError) {
    var group = "ungrouped"
    var state = State.hosts
    var pendingChildren: [String: PendingChild] = [:]
    var pendingChildOrder: [String] = []
    var pendingVars: [String: Int] = [:]
    var sectionKeys: [String: Int] = [:]

    for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = offset + 1
      let line = String(rawLine).trimmingWhitespace()
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }

      if line.hasPrefix("[") {
        if let (name, kind) = Self.sectionHeader(line) {
          guard let newState = State(rawValue: kind ?? "hosts") else {
            throw error(
              lineNumber,
              "section [\(name):\(kind ?? "")] has unknown type '\(kind ?? "")' (expected [\(name)], [\(name):vars] or [\(name):children])"
            )
          }
          if data.groups[name] == nil {
            // [g] or [g:children] declares a group; [g:vars] alone is only valid if g is declared somewhere.
            if newState == .vars && pendingChildren[name] == nil { pendingVars[name] = lineNumber }
            data.addGroup(name)
          }
          if newState != .vars {
            pendingVars[name] = nil
            if let pending = pendingChildren.removeValue(forKey: name) {
              for parent in pending.parents {
                try data.addChild(parent: parent.name, child: name, file: file, line: parent.line)
              }
            }
          }
          group = name
          state = newState
          sectionKeys = [:]
          continue
        }
        if line.hasSuffix("]") {
          throw error(
            lineNumber,
            "invalid section header '\(line)' (expected [group], [group:vars] or [group:children], with no spaces in the name)"
          )
        }
      }

      switch state {
      case .hosts:
        try parseHostLine(line, lineNumber: lineNumber, group: group)
      case .children:
        let child = try childName(line, lineNumber: lineNumber)
        if data.groups[child] != nil {
          try data.addChild(parent: group, child: child, file: file, line: lineNumber)
        } else {
          if pendingChildren[child] == nil {
            pendingChildren[child] = PendingChild(parents: [])
            pendingChildOrder.append(child)
          }
          pendingChildren[child]?.parents.append((group, lineNumber))
        }
      case .vars:
        let (key, value) = try variable(line, lineNumber: lineNumber)
        if let first = sectionKeys[key] {
          throw error(lineNumber, "duplicate variable '\(key)' in [\(group):vars] (first set on line \(first))")
        }
        sectionKeys[key] = lineNumber
        try RemoteValueCheck.check(key, value, owner: "group '\(group)'", file: file, line: lineNumber)
        data.setGroupVar(group, key, value)
      }
    }

    for child in pendingChildOrder {
      guard let pending = pendingChildren[child], let first = pending.parents.first else { continue }
      throw error(
        first.line,
        "section [\(first.name):children] includes undefined group '\(child)' (declare it with [\(child)] or [\(child):children])"
      )
    }
    if let (name, line) = pendingVars.min(by: { $0.value < $1.value }) {
      throw error(
        line,
        "section [\(name):vars] is for undefined group '\(name)' (declare it with [\(name)] or [\(name):children])")
    }
  }

  private func error(_ line: Int, _ message: String) -> InventoryError {
    InventoryError(file: file, line: line, message: message)
  }

  /// Matches `^\[([^:\]\s]+)(?::(\w+))?\]\s*(#.*)?$` without a regex engine.
  static func sectionHeader(_ line: String) -> (String, String?)? {
    guard let close = line.firstIndex(of: "]") else { return nil }
    let rest = line[line.index(after: close)...].trimmingWhitespace()
    guard rest.isEmpty || rest.hasPrefix("#") else { return nil }
    let inner = line[line.index(after: line.startIndex)..<close]
    let parts = inner.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    let name = String(parts[0])
    guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else { return nil }
    if parts.count == 1 { return (name, nil) }
    let kind = String(parts[1])
    guard !kind.isEmpty, kind.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
    return (name, kind)
  }

  private mutating func parseHostLine(_ line: String, lineNumber: Int, group: String) throws(InventoryError) {
    let tokens: [String]
    do {
      tokens = try INIValues.split(line)
    } catch {
      throw self.error(lineNumber, "cannot parse host line: \(error.message)")
    }
    guard let pattern = tokens.first else { return }
    if pattern.contains("=") {
      throw error(
        lineNumber,
        "expected a host name, got '\(Self.redacted(pattern))' (variables for the whole group go in a [\(group):vars] section)"
      )
    }
    let names: [String]
    let port: Int?
    do {
      (names, port) = try HostExpansion.expand(pattern)
    } catch {
      throw self.error(lineNumber, error.message)
    }
    var vars: [(String, InventoryValue)] = []
    var seen: Set<String> = []
    var previous = pattern
    for token in tokens.dropFirst() {
      guard let equals = token.firstIndex(of: "="), equals != token.startIndex else {
        let shown = previous.hasSuffix("=") && Self.isSecret(String(previous.dropLast())) ? "***" : token
        throw error(lineNumber, "expected key=value host variable assignment, got '\(shown)'")
      }
      previous = token
      let key = String(token[..<equals])
      guard seen.insert(key).inserted else {
        throw error(lineNumber, "duplicate variable '\(key)' on the line of host '\(pattern)'")
      }
      let value = INIValues.value(String(token[token.index(after: equals)...]))
      try RemoteValueCheck.check(key, value, owner: "host '\(pattern)'", file: file, line: lineNumber)
      vars.append((key, value))
    }
    for name in names {
      data.addHost(name, group: group, port: port)
      for (key, value) in vars { data.setHostVar(name, key, value) }
    }
  }

  /// `true` for variable names that hold secrets (passwords, tokens); their values are never shown.
  static func isSecret(_ key: String) -> Bool { RemoteValue.isSecret(key) }

  /// `key=value` with the value masked when `key` names a secret.
  static func redacted(_ token: String) -> String {
    guard let equals = token.firstIndex(of: "=") else { return token }
    let key = String(token[..<equals])
    return isSecret(key) ? key + "=***" : token
  }

  private func childName(_ line: String, lineNumber: Int) throws(InventoryError) -> String {
    let name = String(line.prefix { $0 != " " && $0 != "\t" && $0 != "#" })
    let rest = line.dropFirst(name.count).trimmingWhitespace()
    guard !name.isEmpty, rest.isEmpty || rest.hasPrefix("#"), !name.contains(":"), !name.contains("]") else {
      throw error(lineNumber, "expected a group name, got '\(line)'")
    }
    return name
  }

  private func variable(_ line: String, lineNumber: Int) throws(InventoryError) -> (String, InventoryValue) {
    guard let equals = line.firstIndex(of: "=") else {
      throw error(lineNumber, "expected key=value, got '\(line)'")
    }
    let key = line[..<equals].trimmingWhitespace()
    let rawValue = line[line.index(after: equals)...].trimmingWhitespace()
    guard !key.isEmpty, !key.contains(where: { $0 == " " || $0 == "\t" }) else {
      throw error(lineNumber, "expected key=value with a single-word key, got '\(line)'")
    }
    if let quote = rawValue.first, quote == "'" || quote == "\"", !rawValue.dropFirst().contains(quote) {
      throw error(
        lineNumber,
        "unterminated \(quote == "'" ? "single" : "double") quote in the value of '\(key)' (expected a closing \(quote))"
      )
    }
    return (key, INIValues.value(rawValue))
  }
}
