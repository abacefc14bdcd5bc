/// POSIX shell quoting for every value that reaches a remote shell.
///
/// Quoting works on the UTF-8 bytes of the value, never on Swift `Character`s: a `'` followed by a
/// combining mark (U+0301) or a zero-width joiner is one `Character` but still a bare `'` byte to
/// the shell, so a character-level walk would let it close the quoted word.
///
/// Inside single quotes every byte is literal to `sh`, newlines included, so a quoted value that
/// contains a newline is still one word. A NUL byte cannot be part of any shell word (the command
/// line is a C string and would be cut there), so such values are refused.
public enum ShellQuote {
  /// Quotes `value` so that `/bin/sh` reads it back as exactly one word, byte for byte.
  ///
  /// Safe words (ASCII letters, digits and `@%+=:,./_-`) are returned as they are; anything else is
  /// wrapped in single quotes, with every `'` byte written as `'\''`.
  /// - Throws: ``ShellQuoteError`` when `value` contains a NUL byte.
  public static func quote(_ value: String) throws(ShellQuoteError) -> String {
    let bytes = Array(value.utf8)
    if let nul = bytes.firstIndex(of: 0) { throw ShellQuoteError(byteOffset: nul) }
    if !bytes.isEmpty, bytes.allSatisfy(isSafe) { return value }
    var quoted: [UInt8] = [quote]
    quoted.reserveCapacity(bytes.count + 2)
    for byte in bytes {
      if byte == quote {
        quoted += [quote, UInt8(ascii: "\\"), quote, quote]
      } else {
        quoted.append(byte)
      }
    }
    quoted.append(quote)
    // Only ASCII bytes were added next to ASCII bytes, so the result is as valid UTF-8 as the input.
    return String(decoding: quoted, as: UTF8.self)
  }

  /// Quotes each word and joins them with spaces.
  /// - Throws: ``ShellQuoteError`` when a word contains a NUL byte.
  public static func join(_ words: [String]) throws(ShellQuoteError) -> String {
    var quoted: [String] = []
    for word in words { quoted.append(try quote(word)) }
    return quoted.joined(separator: " ")
  }

  private static let quote = UInt8(ascii: "'")

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

/// A value that no shell word can hold: it contains a NUL byte.
public struct ShellQuoteError: Error, CustomStringConvertible, Sendable, Equatable {
  /// Where the first NUL byte is in the value's UTF-8.
  public var byteOffset: Int

  public init(byteOffset: Int) {
    self.byteOffset = byteOffset
  }

  public var description: String {
    "cannot quote a value for the shell: it contains a NUL byte (at byte \(byteOffset))"
  }
}
