/// Ansible INI value handling: `shlex`-style splitting of host lines and `ast.literal_eval`-style
/// typing of values.
enum INIValues {
  /// A host line that could not be split; the message says what was expected.
  struct Failure: Error { var message: String }

  /// Splits a host line like Python's `shlex.split(line, comments=True)` (POSIX mode).
  ///
  /// Whitespace separates tokens; `'...'` is literal; `"..."` honours `\"` and `\\`; a backslash
  /// outside quotes escapes the next character; an unquoted `#` ends the line.
  /// - Throws: ``Failure`` for an unterminated quote or a trailing backslash.
  static func split(_ line: String) throws(Failure) -> [String] {
    var tokens: [String] = []
    var token = ""
    var inToken = false
    var chars = Array(line)[...]
    while let char = chars.popFirst() {
      switch char {
      case " ", "\t", "\r", "\n":
        if inToken {
          tokens.append(token)
          token = ""
          inToken = false
        }
      case "#":
        if inToken { tokens.append(token) }
        return tokens
      case "'":
        inToken = true
        guard let close = chars.firstIndex(of: "'") else {
          throw Failure(message: "unterminated single quote (expected a closing ')")
        }
        token += String(chars[..<close])
        chars = chars[(close + 1)...]
      case "\"":
        inToken = true
        var closed = false
        while let inner = chars.popFirst() {
          if inner == "\"" {
            closed = true
            break
          }
          if inner == "\\", let next = chars.first, next == "\"" || next == "\\" {
            token.append(next)
            chars = chars.dropFirst()
          } else {
            token.append(inner)
          }
        }
        guard closed else { throw Failure(message: "unterminated double quote (expected a closing \")") }
      case "\\":
        inToken = true
        guard let next = chars.popFirst() else {
          throw Failure(message: "backslash at end of line (expected an escaped character)")
        }
        token.append(next)
      default:
        inToken = true
        token.append(char)
      }
    }
    if inToken { tokens.append(token) }
    return tokens
  }

  /// Types an INI value like Ansible's `_parse_value`: a Python literal when the text is one
  /// (`5`, `-1.5`, `True`, `None`, `'quoted'`, `[1, 2]`, `{'a': 1}`), otherwise the text as is.
  ///
  /// So `yes`, `true` and `010` stay strings, as in Ansible; ``InventoryValue/boolValue`` reads
  /// them the way Ansible's `boolean()` does where a flag is needed.
  static func value(_ text: String) -> InventoryValue {
    var parser = LiteralParser(Array(text.unicodeScalars))
    if let value = parser.parseComplete() { return value }
    return .string(text)
  }
}

/// A small parser for the Python literal subset `ast.literal_eval` accepts in inventories.
private struct LiteralParser {
  let scalars: [Unicode.Scalar]
  var index = 0
  var depth = 0

  init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

  /// Parses the whole text as one literal (surrounding blanks and a trailing `#` comment allowed).
  mutating func parseComplete() -> InventoryValue? {
    skipBlanks()
    guard let value = parseValue() else { return nil }
    skipBlanks()
    if index < scalars.count && scalars[index] != "#" { return nil }
    return value
  }

  private var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

  private mutating func skipBlanks() {
    while let char = current, char == " " || char == "\t" || char == "\r" || char == "\n" { index += 1 }
  }

  private mutating func parseValue() -> InventoryValue? {
    guard let char = current, depth < 64 else { return nil }
    switch char {
    case "'", "\"": return parseString(quote: char).map(InventoryValue.string)
    case "[": return parseSequence(close: "]")
    case "(": return parseSequence(close: ")")
    case "{": return parseDict()
    case "-", "+", "0"..."9", ".": return parseNumber()
    default: return parseWord()
    }
  }

  private mutating func parseWord() -> InventoryValue? {
    let start = index
    while let char = current, char.properties.isAlphabetic || char == "_" || ("0"..."9").contains(char) { index += 1 }
    switch String(String.UnicodeScalarView(scalars[start..<index])) {
    case "True": return .bool(true)
    case "False": return .bool(false)
    case "None": return .null
    default: return nil
    }
  }

  private mutating func parseNumber() -> InventoryValue? {
    var sign = 1
    if current == "-" || current == "+" {
      if current == "-" { sign = -1 }
      index += 1
      skipBlanks()
    }
    let start = index
    while let char = current,
      ("0"..."9").contains(char) || char == "." || char == "_" || char == "e" || char == "E"
        || ((char == "-" || char == "+") && index > start && (scalars[index - 1] == "e" || scalars[index - 1] == "E"))
    {
      index += 1
    }
    let text = String(String.UnicodeScalarView(scalars[start..<index]))
    guard !text.isEmpty, !text.hasPrefix("_"), !text.hasSuffix("_"), !text.contains("__") else { return nil }
    let plain = text.replacingUnderscores()
    if plain.allSatisfy(\.isASCIIDigit) {
      // Python 3 refuses leading zeros in decimal literals ("010"), except zero itself.
      if plain.count > 1 && plain.hasPrefix("0") && !plain.allSatisfy({ $0 == "0" }) { return nil }
      guard let value = Int(plain) else { return nil }
      return .int(sign * value)
    }
    guard plain.contains(where: \.isASCIIDigit), let value = Double(plain) else { return nil }
    return .double(Double(sign) * value)
  }

  private mutating func parseString(quote: Unicode.Scalar) -> String? {
    index += 1
    var result = String.UnicodeScalarView()
    while let char = current {
      index += 1
      if char == quote { return String(result) }
      if char == "\n" { return nil }
      if char == "\\" {
        guard let next = current else { return nil }
        index += 1
        switch next {
        case "n": result.append("\n")
        case "t": result.append("\t")
        case "r": result.append("\r")
        case "0": result.append("\0")
        case "\\", "'", "\"": result.append(next)
        default:
          result.append("\\")
          result.append(next)
        }
      } else {
        result.append(char)
      }
    }
    return nil
  }

  private mutating func parseSequence(close: Unicode.Scalar) -> InventoryValue? {
    index += 1
    depth += 1
    defer { depth -= 1 }
    var items: [InventoryValue] = []
    skipBlanks()
    while current != close {
      guard let item = parseValue() else { return nil }
      items.append(item)
      skipBlanks()
      if current == "," {
        index += 1
        skipBlanks()
      } else if current != close {
        return nil
      }
    }
    index += 1
    return .list(items)
  }

  private mutating func parseDict() -> InventoryValue? {
    index += 1
    depth += 1
    defer { depth -= 1 }
    var entries: [String: InventoryValue] = [:]
    skipBlanks()
    while current != "}" {
      guard let key = parseValue(), case .some = current else { return nil }
      skipBlanks()
      guard current == ":" else { return nil }
      index += 1
      skipBlanks()
      guard let value = parseValue() else { return nil }
      entries[key.stringValue ?? key.description] = value
      skipBlanks()
      if current == "," {
        index += 1
        skipBlanks()
      } else if current != "}" {
        return nil
      }
    }
    index += 1
    return .map(entries)
  }
}

extension String {
  fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
