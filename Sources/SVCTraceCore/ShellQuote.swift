/// POSIX shell quoting for every value that reaches a remote shell.
public enum ShellQuote {
  /// Quotes `value` so that `/bin/sh` reads it back as exactly one word, unchanged.
  ///
  /// Safe words (letters, digits and `@%+=:,./_-`) are returned as they are; anything else is
  /// wrapped in single quotes, with embedded single quotes written as `'\''`.
  public static func quote(_ value: String) -> String {
    if !value.isEmpty, value.utf8.allSatisfy(isSafe) { return value }
    var quoted = "'"
    for character in value {
      if character == "'" { quoted += "'\\''" } else { quoted.append(character) }
    }
    return quoted + "'"
  }

  /// Quotes each word and joins them with spaces.
  public static func join(_ words: [String]) -> String {
    words.map(quote).joined(separator: " ")
  }

  private static func isSafe(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"):
      return true
    case UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: ":"),
      UInt8(ascii: ","), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: "_"), UInt8(ascii: "-"):
      return true
    default:
      return false
    }
  }
}
