import SVCTraceCore
internal import Yams

/// Holds every inventory assignment to what its variable can legally be (``RemoteValue``), at the
/// file and line where it is written, so a hostile value is refused while the inventory is read,
/// whether or not it ends up winning the precedence merge.
enum RemoteValueCheck {
  /// Checks one assignment; `owner` names where it applies (`host 'node1'`, `group 'kube_node'`).
  ///
  /// Lists, mappings and null pass: they never become the text of a command.
  /// - Throws: ``InventoryError`` at `file`:`line` naming the owner, the variable and the problem.
  static func check(
    _ key: String, _ value: InventoryValue, owner: String?, file: String, line: Int?
  ) throws(InventoryError) {
    guard let text = value.stringValue else { return }
    do {
      try RemoteValue.check(variable: key, value: text)
    } catch {
      let prefix = owner.map { "\($0): " } ?? ""
      throw InventoryError(file: file, line: line, message: prefix + error.description)
    }
  }

  /// Checks the converted `values` of a YAML mapping, each at the line of its key in `node`.
  static func check(
    mapping node: Node, values: [String: InventoryValue], owner: String?, file: String
  ) throws(InventoryError) {
    guard case .mapping(let mapping) = node else { return }
    for (keyNode, _) in mapping {
      let key = YAMLSupport.keyText(keyNode)
      guard let value = values[key] else { continue }
      try check(key, value, owner: owner, file: file, line: YAMLSupport.line(keyNode))
    }
  }
}

/// Masks secret values in inventory messages.
enum Redaction {
  /// `text` with the value of every secret assignment (`ansible_password=…`, `ansible_become_pass:
  /// …`, `ansible_ssh_pass …`: any key matching `*pass*`, `*secret*`, `*token*`, `*credential*`)
  /// replaced by `***`, up to the end of its line: parse errors quote source lines, and a password
  /// must not reach a terminal or a log that way.
  static func redactSecrets(in text: String) -> String {
    guard RemoteValue.isSecret(text) else { return text }  // no secret-looking word at all
    var output = ""
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
    var first = true
    while let line = lines.next() {
      if !first { output += "\n" }
      first = false
      output += redactLine(Substring(line))
    }
    return output
  }

  private static func redactLine(_ line: Substring) -> String {
    var index = line.startIndex
    while index < line.endIndex {
      guard isWordCharacter(line[index]) else {
        index = line.index(after: index)
        continue
      }
      var end = index
      while end < line.endIndex, isWordCharacter(line[end]) { end = line.index(after: end) }
      let word = line[index..<end]
      var separator = end
      var quotedKey = false
      if separator < line.endIndex, line[separator] == "\"" || line[separator] == "'" {
        separator = line.index(after: separator)  // a quoted key: "ansible_password": …
        quotedKey = true
      }
      while separator < line.endIndex, line[separator] == " " || line[separator] == "\t" {
        separator = line.index(after: separator)
      }
      let secret = RemoteValue.isSecret(String(word))
      let assigned = separator < line.endIndex && (line[separator] == "=" || line[separator] == ":")
      // `ansible_password hunter2` (a missing `=`): an identifier, a space, then a value.
      let spaced =
        !quotedKey && separator > end && separator < line.endIndex && word.contains("_")
        && !",.;)]'\"".contains(line[separator])
      if secret && (assigned || spaced) {
        let valueStart = assigned ? line.index(after: separator) : end
        let rest = line[valueStart...]
        let spacing = rest.prefix { $0 == " " || $0 == "\t" }
        let value = rest.dropFirst(spacing.count)
        // Nothing to hide: no value, or one already masked (``UnsafeValueError`` shows `***`).
        if !value.isEmpty && value != "***" && !value.hasPrefix("*** ") {
          return String(line[..<valueStart]) + spacing + "***"
        }
      }
      index = end
    }
    return String(line)
  }

  private static func isWordCharacter(_ character: Character) -> Bool {
    character.isASCII && (character.isLetter || character.isNumber || character == "_" || character == "-")
  }
}
