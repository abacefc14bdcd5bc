internal import Yams

/// YAML reading shared by YAML inventories and `group_vars` / `host_vars` files: parse errors with
/// file and line, and conversion of nodes to ``InventoryValue``.
enum YAMLSupport {
  /// How many values one document may expand to (aliases included) before it is refused.
  static let nodeBudget = 100_000

  /// Parses one YAML document of `file`; `nil` when the document is empty.
  ///
  /// - Throws: ``InventoryError`` at the line the YAML parser stopped, or at a duplicated key.
  static func compose(_ text: String, file: String) throws(InventoryError) -> Node? {
    try checkNesting(text, file: file)
    do {
      return try Yams.compose(yaml: text)
    } catch let error as YamlError {
      throw inventoryError(error, text: text, file: file)
    } catch {
      throw InventoryError(file: file, message: "cannot parse YAML: \(error)")
    }
  }

  /// The deepest nesting accepted; deeper documents would exhaust the parser's stack.
  static let maximumNesting = 200

  /// Refuses pathologically nested documents (`[[[[…` or thousands of indentation levels) before
  /// the recursive parser sees them.
  private static func checkNesting(_ text: String, file: String) throws(InventoryError) {
    var depth = 0
    var line = 1
    var quote: Character?
    var atLineStart = true
    var indent = 0
    for char in text {
      if char == "\n" {
        line += 1
        quote = nil
        atLineStart = true
        indent = 0
        continue
      }
      if atLineStart {
        if char == " " {
          indent += 1
          if indent > maximumNesting * 8 {
            throw InventoryError(
              file: file, line: line, message: "YAML nested too deeply (indentation over \(maximumNesting * 8) spaces)")
          }
          continue
        }
        atLineStart = false
      }
      if let open = quote {
        if char == open { quote = nil }
        continue
      }
      switch char {
      case "\"", "'": quote = char
      case "#": quote = "\n"  // rest of the line is a comment
      case "[", "{":
        depth += 1
        if depth > maximumNesting {
          throw InventoryError(
            file: file, line: line, message: "YAML nested too deeply (more than \(maximumNesting) levels of [ or {)")
        }
      case "]", "}": depth = max(0, depth - 1)
      default: break
      }
    }
  }

  private static func inventoryError(_ error: YamlError, text: String, file: String) -> InventoryError {
    switch error {
    case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
      .composer(let context, let problem, let mark, _):
      var message = "invalid YAML: \(problem)"
      if let context { message += " (\(context.text) at line \(context.mark.line))" }
      return InventoryError(file: file, line: mark.line, message: message)
    case .reader(let problem, let offset, _, _):
      let line = offset.map { offset in text.prefix(offset).reduce(1) { $1 == "\n" ? $0 + 1 : $0 } }
      return InventoryError(file: file, line: line, message: "invalid YAML input: \(problem)")
    case .duplicatedKeysInMapping(let duplicates, let context):
      let key = duplicates.first ?? "?"
      let first = context.mark.line
      let line = duplicateLine(key: key, after: context.mark, in: text) ?? first
      return InventoryError(
        file: file, line: line,
        message: "duplicate key '\(key)' in a mapping (first defined on line \(first)); each key may appear once")
    default:
      return InventoryError(file: file, message: "cannot parse YAML: \(error)")
    }
  }

  /// Finds the line repeating `key` at the same column as its first occurrence (block mappings).
  private static func duplicateLine(key: String, after mark: Mark, in text: String) -> Int? {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let column = mark.column - 1
    guard mark.line < lines.count else { return nil }
    for index in mark.line..<lines.count {
      let line = Array(lines[index])
      guard line.count > column, line[..<column].allSatisfy({ $0 == " " || $0 == "-" }) else { continue }
      var rest = String(line[column...])
      for quote in ["\"", "'"] where rest.hasPrefix(quote + key + quote) {
        rest = key + rest.dropFirst(key.count + 2)
      }
      guard rest.hasPrefix(key) else { continue }
      if String(rest.dropFirst(key.count)).trimmingWhitespace().hasPrefix(":") { return index + 1 }
    }
    return nil
  }

  /// The resolved tag of `node` (quoted scalars are strings; plain ones resolved as YAML 1.1).
  static func tagName(_ node: Node) -> Tag.Name { Resolver.default.resolveTag(of: node) }

  /// The 1-based line of `node`, when Yams recorded it.
  static func line(_ node: Node?) -> Int? { node?.mark?.line }

  /// `true` for an empty value, `~` or `null`.
  static func isNull(_ node: Node?) -> Bool {
    guard let node else { return true }
    if case .scalar = node { return YAMLSupport.tagName(node) == .null }
    return false
  }

  /// A short description of a node's kind for messages ("a list", "the string 'x'").
  static func kind(_ node: Node) -> String {
    switch node {
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .alias: return "an alias"
    case .scalar(let scalar):
      switch YAMLSupport.tagName(node) {
      case .null: return "nothing (null)"
      case .str: return "the string '\(scalar.string)'"
      default: return "the value '\(scalar.string)'"
      }
    }
  }

  /// The text of a mapping key.
  static func keyText(_ node: Node) -> String {
    if case .scalar(let scalar) = node { return scalar.string }
    return node.string ?? "\(node)"
  }

  /// What one document's conversion may still use and what it noticed.
  struct Conversion {
    /// Values left before the document is refused as too large.
    var budget = YAMLSupport.nodeBudget
    /// Variables skipped because ansible-vault encrypted them.
    var warnings: [InventoryWarning] = []
  }

  /// `true` for an inline `!vault |` value, which svctrace cannot decrypt.
  static func isVaulted(_ node: Node) -> Bool { tagName(node).rawValue == "!vault" }

  /// A warning that `key`'s vaulted value at `node` was skipped.
  static func vaultWarning(_ key: String, _ node: Node, file: String) -> InventoryWarning {
    InventoryWarning(
      file: file, line: line(node),
      message: "'\(key)' is encrypted with ansible-vault, which svctrace cannot decrypt; the variable is ignored")
  }

  /// Converts a node to an ``InventoryValue`` (YAML 1.1 types; quoted scalars are strings;
  /// `<<` merge keys applied; timestamps kept as text).
  ///
  /// - Throws: ``InventoryError`` when the document expands past ``nodeBudget`` nodes.
  static func value(_ node: Node, file: String, state: inout Conversion) throws(InventoryError) -> InventoryValue {
    state.budget -= 1
    if state.budget < 0 {
      throw InventoryError(
        file: file, line: line(node), message: "YAML document too large (more than \(nodeBudget) values after aliases)")
    }
    switch node {
    case .scalar(let scalar):
      switch YAMLSupport.tagName(node) {
      case .null: return .null
      case .bool: return node.bool.map(InventoryValue.bool) ?? .string(scalar.string)
      case .int: return node.int.map(InventoryValue.int) ?? .string(scalar.string)
      case .float: return node.float.map(InventoryValue.double) ?? .string(scalar.string)
      default: return .string(scalar.string)
      }
    case .sequence(let sequence):
      var items: [InventoryValue] = []
      for item in sequence { items.append(try value(item, file: file, state: &state)) }
      return .list(items)
    case .mapping(let mapping):
      var result: [String: InventoryValue] = [:]
      for (key, item) in mapping where YAMLSupport.tagName(key) == .merge {
        let sources: [Node]
        if case .sequence(let list) = item { sources = Array(list) } else { sources = [item] }
        for source in sources {
          guard case .map(let merged) = try value(source, file: file, state: &state) else {
            throw InventoryError(file: file, line: line(source), message: "a '<<' merge key must refer to a mapping")
          }
          result.merge(merged) { existing, _ in existing }
        }
      }
      for (key, item) in mapping where YAMLSupport.tagName(key) != .merge {
        if isVaulted(item) {
          state.warnings.append(vaultWarning(keyText(key), item, file: file))
          continue
        }
        result[keyText(key)] = try value(item, file: file, state: &state)
      }
      return .map(result)
    case .alias:
      throw InventoryError(file: file, line: line(node), message: "unresolved YAML alias")
    }
  }

  /// Reads a whole vars file (`group_vars/…`, `host_vars/…`): a mapping of variables, or empty.
  ///
  /// A file encrypted as a whole with ansible-vault is skipped with a warning.
  /// - Throws: ``InventoryError`` for invalid YAML or a document that is not a mapping.
  static func variables(_ text: String, file: String) throws(InventoryError) -> (
    [String: InventoryValue], [InventoryWarning]
  ) {
    if text.hasPrefix("$ANSIBLE_VAULT;") {
      let warning = InventoryWarning(
        file: file, line: 1,
        message: "file is encrypted with ansible-vault, which svctrace cannot decrypt; its variables are ignored")
      return ([:], [warning])
    }
    guard let root = try compose(text, file: file), !isNull(root) else { return ([:], []) }
    guard case .mapping = root else {
      throw InventoryError(
        file: file, line: line(root), message: "expected a mapping of variable names to values, got \(kind(root))")
    }
    var state = Conversion()
    guard case .map(let vars) = try value(root, file: file, state: &state) else { return ([:], state.warnings) }
    try RemoteValueCheck.check(mapping: root, values: vars, owner: nil, file: file)
    return (vars, state.warnings)
  }
}
