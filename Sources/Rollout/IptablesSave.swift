import Foundation

/// A parsed `iptables-save` dump: per table, its chains and its rules in order.
public struct IptablesSave: Sendable, Hashable {
  /// One table of the dump.
  public struct Table: Sendable, Hashable {
    /// Chain names in declaration order (built-ins first, as iptables-save prints them).
    public var chains: [String] = []
    /// Rules as printed, `-A CHAIN …`, in order.
    public var rules: [String] = []

    /// Rules of one chain (specs without the `-A CHAIN ` head), in order.
    public func rules(of chain: String) -> [String] {
      let head = "-A \(chain) "
      return rules.compactMap { $0.hasPrefix(head) ? String($0.dropFirst(head.count)) : nil }
    }
  }

  public var tables: [String: Table] = [:]

  /// Parses the text of `iptables-save` (any number of `*table … COMMIT` blocks).
  public init(parsing text: String) {
    var current: String?
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
      let line = String(rawLine)
      if line.hasPrefix("*") {
        current = String(line.dropFirst())
        if let name = current, tables[name] == nil { tables[name] = Table() }
      } else if line == "COMMIT" {
        current = nil
      } else if let name = current, line.hasPrefix(":") {
        let chain = line.dropFirst().split(separator: " ").first.map(String.init) ?? ""
        tables[name]?.chains.append(chain)
      } else if let name = current, line.hasPrefix("-A ") {
        tables[name]?.rules.append(line)
      }
    }
  }

  /// Splits a rule line into words the way iptables-restore does (double quotes, backslash escapes).
  public static func words(_ line: String) -> [String] {
    var words: [String] = []
    var word = ""
    var inQuotes = false
    var escaped = false
    var started = false
    for character in line {
      if escaped {
        word.append(character)
        escaped = false
      } else if character == "\\" {
        escaped = true
        started = true
      } else if character == "\"" {
        inQuotes.toggle()
        started = true
      } else if character == " " && !inQuotes {
        if started { words.append(word) }
        word = ""
        started = false
      } else {
        word.append(character)
        started = true
      }
    }
    if started { words.append(word) }
    return words
  }
}
