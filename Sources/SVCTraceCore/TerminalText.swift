/// Remote text made safe to print on a terminal.
///
/// Output of remote commands and messages built from it reach the user's terminal. Control
/// characters there are instructions to the terminal, not text: `ESC [ 2 J` clears the screen,
/// `ESC ] 52 ;` writes the clipboard, a bare carriage return overwrites a line already printed,
/// bidirectional overrides reorder what is shown. ``sanitize(_:)-(String)`` writes every such
/// character as a visible escape instead. JSON output does not need this: its encoder escapes.
public enum TerminalText {
  /// `text` with control characters escaped: C0 controls except newline and tab as `\xHH`
  /// (carriage return as `\r`), DEL as `\x7F`, C1 controls and bidirectional overrides as `\u{HHHH}`.
  public static func sanitize(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: needsEscape) else { return text }
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if needsEscape(scalar) {
        out.append(contentsOf: escape(scalar).unicodeScalars)
      } else {
        out.append(scalar)
      }
    }
    return String(out)
  }

  /// Bytes (remote output) decoded as UTF-8 and sanitized; each byte that is not part of a
  /// well-formed UTF-8 sequence becomes `\xHH`.
  public static func sanitize(_ bytes: [UInt8]) -> String {
    var out = ""
    var runStart = 0
    var index = 0
    while index < bytes.count {
      let length = validSequenceLength(bytes, at: index)
      if length > 0 {
        index += length
        continue
      }
      out += sanitize(String(decoding: bytes[runStart..<index], as: UTF8.self)) + hex(bytes[index])
      index += 1
      runStart = index
    }
    return out + sanitize(String(decoding: bytes[runStart..<index], as: UTF8.self))
  }

  /// The length of the well-formed UTF-8 sequence at `index` (RFC 3629 table), or 0.
  private static func validSequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
    let lead = bytes[index]
    let length: Int
    var low: UInt8 = 0x80
    var high: UInt8 = 0xBF
    switch lead {
    case 0x00...0x7F: return 1
    case 0xC2...0xDF: length = 2
    case 0xE0: (length, low) = (3, 0xA0)
    case 0xE1...0xEC, 0xEE...0xEF: length = 3
    case 0xED: (length, high) = (3, 0x9F)
    case 0xF0: (length, low) = (4, 0x90)
    case 0xF1...0xF3: length = 4
    case 0xF4: (length, high) = (4, 0x8F)
    default: return 0
    }
    guard index + length <= bytes.count else { return 0 }
    for offset in 1..<length {
      let byte = bytes[index + offset]
      let (min, max) = offset == 1 ? (low, high) : (0x80, 0xBF)
      guard byte >= min && byte <= max else { return 0 }
    }
    return length
  }

  private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x0A, 0x09: return false
    case 0x00...0x1F, 0x7F, 0x80...0x9F: return true
    case 0x202A...0x202E, 0x2066...0x2069: return true
    default: return false
    }
  }

  private static func escape(_ scalar: Unicode.Scalar) -> String {
    switch scalar.value {
    case 0x0D: return "\\r"
    case 0x00...0x1F, 0x7F: return hex(UInt8(scalar.value))
    default:
      let digits = String(scalar.value, radix: 16, uppercase: true)
      return "\\u{" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "}"
    }
  }

  private static func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return "\\x" + (digits.count == 1 ? "0" + digits : digits)
  }
}
