/// Expands the host part of an inventory line the way Ansible's `expand_hostname_range` and
/// `parse_address` do: `host:port`, `[v6addr]:port`, and `[start:end(:step)]` ranges.
enum HostExpansion {
  /// The most hosts one pattern may expand to; more is certainly a typo (`node[0:99999999]`).
  static let maximumHosts = 100_000

  /// A pattern that could not be expanded; the message says what was expected.
  struct Failure: Error { var message: String }

  /// Splits an optional port off `pattern`, then expands its ranges.
  ///
  /// - Returns: the host names in range order, and the port when the pattern carried one.
  /// - Throws: ``Failure`` for a malformed port or range.
  static func expand(_ pattern: String) throws(Failure) -> (names: [String], port: Int?) {
    let (host, port) = try splitPort(pattern)
    guard !host.isEmpty else { throw Failure(message: "empty host name in '\(pattern)'") }
    var names: [String] = []
    try expandRanges(host, original: pattern, into: &names)
    return (names, port)
  }

  /// Separates `host:port` / `[addr]:port`; leaves IPv6 addresses and ranges alone.
  static func splitPort(_ pattern: String) throws(Failure) -> (String, Int?) {
    let chars = Array(pattern)
    let unclosed = chars.filter { $0 == "[" }.count > chars.filter { $0 == "]" }.count
    if chars.last == ":" && !unclosed {
      throw Failure(
        message: "invalid host pattern '\(pattern)': it ends in ':', which is reserved for a port (host:port)")
    }
    // [addr]:port, as Ansible's bracketed_hostport.
    if chars.first == "[", let close = chars.lastIndex(of: "]"), close + 1 < chars.count, chars[close + 1] == ":" {
      let portText = String(chars[(close + 2)...])
      let inner = String(chars[1..<close])
      if !portText.isEmpty, portText.allSatisfy(\.isASCIIDigit), inner.contains(":"),
        inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
      {
        return (inner, try port(portText, in: pattern))
      }
    }
    // Colons outside [...] groups.
    var depth = 0
    var colons: [Int] = []
    for (index, char) in chars.enumerated() {
      if char == "[" {
        depth += 1
      } else if char == "]" {
        depth = max(0, depth - 1)
      } else if char == ":" && depth == 0 {
        colons.append(index)
      }
    }
    guard colons.count == 1, let colon = colons.first else { return (pattern, nil) }  // none, or IPv6
    let portText = String(chars[(colon + 1)...])
    guard portText.allSatisfy(\.isASCIIDigit) else {
      throw Failure(message: "invalid port '\(portText)' in host '\(pattern)' (expected host:port with a numeric port)")
    }
    return (String(chars[..<colon]), try port(portText, in: pattern))
  }

  private static func port(_ text: String, in pattern: String) throws(Failure) -> Int {
    guard let value = Int(text), (1...65535).contains(value) else {
      throw Failure(message: "invalid port '\(text)' in host '\(pattern)' (expected 1-65535)")
    }
    return value
  }

  private static let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

  /// Expands the first `[a:b(:s)]` of `name`, recursing on the rest.
  private static func expandRanges(_ name: String, original: String, into names: inout [String]) throws(Failure) {
    let chars = Array(name)
    guard let open = chars.firstIndex(of: "[") else {
      if chars.contains("]") {
        throw Failure(message: "unexpected ']' in host '\(original)' (a range is written [start:end])")
      }
      names.append(name)
      return
    }
    if chars[..<open].contains("]") {
      throw Failure(message: "unexpected ']' in host '\(original)' (a range is written [start:end])")
    }
    guard let close = chars[open...].firstIndex(of: "]") else {
      throw Failure(
        message: "unterminated host range in '\(original)' (expected [start:end] or [start:end:step], closed by ']')")
    }
    let head = String(chars[..<open])
    let tail = String(chars[(close + 1)...])
    let bounds = String(chars[(open + 1)..<close]).split(separator: ":", omittingEmptySubsequences: false).map(
      String.init)
    guard bounds.count == 2 || bounds.count == 3 else {
      throw Failure(
        message:
          "host range '[\(bounds.joined(separator: ":"))]' in '\(original)' must be [start:end] or [start:end:step]")
    }
    let begin = bounds[0].isEmpty ? "0" : bounds[0]
    let end = bounds[1]
    guard !end.isEmpty else {
      throw Failure(message: "host range in '\(original)' must specify an end value ([start:end])")
    }
    var step = 1
    if bounds.count == 3 {
      guard let value = Int(bounds[2]), value > 0 else {
        throw Failure(message: "host range step '\(bounds[2])' in '\(original)' must be a positive integer")
      }
      step = value
    }
    var items: [String] = []
    if begin.count == 1, end.count == 1, let first = letters.firstIndex(of: Character(begin)),
      let last = letters.firstIndex(of: Character(end))
    {
      guard first <= last else {
        throw Failure(message: "host range in '\(original)' must have begin <= end, got [\(begin):\(end)]")
      }
      items = stride(from: first, through: last, by: step).map { String(letters[$0]) }
    } else {
      guard begin.allSatisfy(\.isASCIIDigit), let low = Int(begin) else {
        throw Failure(message: "host range start '\(begin)' in '\(original)' is not a number or a single letter")
      }
      guard end.allSatisfy(\.isASCIIDigit), let high = Int(end) else {
        throw Failure(message: "host range end '\(end)' in '\(original)' is not a number or a single letter")
      }
      guard low <= high else {
        throw Failure(message: "host range in '\(original)' must have begin <= end, got [\(begin):\(end)]")
      }
      let width = begin.hasPrefix("0") && begin.count > 1 ? begin.count : 0
      if width > 0 && end.count != width {
        throw Failure(
          message:
            "host range in '\(original)' must have equal-length begin and end when zero-padded, got [\(begin):\(end)]")
      }
      guard (high - low) / step < maximumHosts else {
        throw Failure(message: "host range in '\(original)' expands to more than \(maximumHosts) hosts")
      }
      items = stride(from: low, through: high, by: step).map { value in
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
      }
    }
    for item in items {
      try expandRanges(head + item + tail, original: original, into: &names)
      if names.count > maximumHosts {
        throw Failure(message: "host range in '\(original)' expands to more than \(maximumHosts) hosts")
      }
    }
  }
}

extension Character {
  /// `true` for the ASCII digits 0-9 only (not other Unicode digits).
  var isASCIIDigit: Bool { isASCII && isNumber }
}
