/// A variable's value as an inventory defines it: the YAML / Python-literal types Ansible knows.
///
/// INI values are parsed like Ansible's INI plugin does (a Python literal when the text is one,
/// otherwise the text itself); YAML values keep their YAML 1.1 types (`yes` is a boolean there).
public enum InventoryValue: Sendable, Hashable {
  case string(String)
  case int(Int)
  case double(Double)
  case bool(Bool)
  case list([InventoryValue])
  case map([String: InventoryValue])
  case null

  /// The value as text: strings as they are, numbers and booleans spelled the way Ansible prints
  /// them (`True`, `False`); `nil` for lists, maps and null.
  public var stringValue: String? {
    switch self {
    case .string(let text): return text
    case .int(let number): return String(number)
    case .double(let number): return String(number)
    case .bool(let flag): return flag ? "True" : "False"
    case .list, .map, .null: return nil
    }
  }

  /// The value as an integer: ints, and strings holding a decimal integer (`"2222"`).
  public var intValue: Int? {
    switch self {
    case .int(let number): return number
    case .string(let text): return Int(text.trimmingWhitespace())
    case .double(let number):
      return number.rounded() == number && abs(number) < 1e15 ? Int(number) : nil
    default: return nil
    }
  }

  /// The value read as a boolean the way Ansible's `boolean()` filter does.
  ///
  /// True: `true`, `yes`, `on`, `y`, `t`, `1` (any case), the number 1, `True`.
  /// False: `false`, `no`, `off`, `n`, `f`, `0`, the number 0, `False`. Anything else is `nil`.
  public var boolValue: Bool? {
    switch self {
    case .bool(let flag): return flag
    case .int(let number): return number == 1 ? true : number == 0 ? false : nil
    case .double(let number): return number == 1 ? true : number == 0 ? false : nil
    case .string(let text):
      switch text.trimmingWhitespace().lowercased() {
      case "true", "yes", "on", "y", "t", "1", "1.0": return true
      case "false", "no", "off", "n", "f", "0", "0.0": return false
      default: return nil
      }
    default: return nil
    }
  }

  /// The value as a list of strings: a list's scalar elements, or a string split on commas.
  public var stringList: [String]? {
    switch self {
    case .list(let items): return items.compactMap(\.stringValue)
    case .string(let text):
      return text.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
    default: return stringValue.map { [$0] }
    }
  }
}

extension InventoryValue: CustomStringConvertible {
  /// A compact, Python-like rendering (`'text'`, `[1, 2]`, `{'a': True}`) for messages and dumps.
  public var description: String {
    switch self {
    case .string(let text): return "'\(text)'"
    case .int, .double, .bool: return stringValue ?? ""
    case .null: return "None"
    case .list(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
    case .map(let entries):
      return "{"
        + entries.keys.sorted().map { "'\($0)': \(entries[$0]?.description ?? "None")" }
        .joined(separator: ", ") + "}"
    }
  }
}

extension StringProtocol {
  /// The string without leading and trailing spaces, tabs, CR and LF.
  func trimmingWhitespace() -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) })
    else { return "" }
    return String(self[first...last])
  }
}
