import ArgumentParser
import Foundation
import SVCTraceCore

/// Parsing of the time, duration and address arguments of `trace`, `stats` and `prune`.
enum TraceArguments {
  /// A zone offset `±HH:MM`, `±HHMM`, `±HH` or `Z`/`UTC`, in seconds east of UTC (at most 14 h);
  /// `nil` when the text is none of these.
  static func utcOffset(_ text: String) -> Int32? {
    if ["z", "utc"].contains(text.lowercased()) { return 0 }
    let bytes = Array(text.utf8)
    guard let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
    var rest = Array(bytes.dropFirst())
    if rest.count == 5, rest[2] == UInt8(ascii: ":") { rest.remove(at: 2) }
    guard rest.count == 2 || rest.count == 4, rest.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    else { return nil }
    let digits = rest.map { Int32($0 - UInt8(ascii: "0")) }
    let hours = digits[0] * 10 + digits[1]
    let minutes = rest.count == 4 ? digits[2] * 10 + digits[3] : 0
    guard minutes < 60, hours * 60 + minutes <= 14 * 60 else { return nil }
    return (sign == UInt8(ascii: "-") ? -1 : 1) * (hours * 3600 + minutes * 60)
  }

  /// A duration like `500ms`, `30s`, `10m`, `2h`, `7d`, `1w` (or a bare number of seconds), in µs.
  /// - Throws: ``ValidationError`` naming the text and the accepted forms.
  static func duration(_ text: String) throws -> Int64 {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [
      ("ms", 1_000), ("us", 1), ("s", 1_000_000), ("m", 60_000_000), ("h", 3_600_000_000),
      ("d", 86_400_000_000), ("w", 604_800_000_000),
    ]
    var number = Substring(trimmed)
    var scale = 1_000_000.0
    for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
      number = trimmed.dropLast(suffix.count)
      scale = factor
      break
    }
    guard let value = Double(number), value.isFinite, value >= 0, value * scale < 1e17 else {
      throw ValidationError("'\(text)' is not a duration: use e.g. 500ms, 30s, 10m, 2h, 7d.")
    }
    return Int64((value * scale).rounded())
  }

  /// A point in time: RFC 3339 (`2026-05-16T21:31:48.123456Z`, `…+02:00`; a space instead of `T`
  /// is fine; no zone means UTC), or a duration meaning that long before `nowMicros` (`10m`).
  /// - Returns: µs since the epoch.
  /// - Throws: ``ValidationError`` naming the text and the accepted forms.
  static func time(_ text: String, nowMicros: Int64) throws -> Int64 {
    if let micros = TimeFormat.rfc3339(text) { return micros }
    if let ago = try? duration(text) { return nowMicros - ago }
    throw ValidationError(
      "'\(text)' is neither an RFC 3339 time (2026-05-16T21:31:48Z) nor a duration ago (10m, 2h, 7d).")
  }

  /// An address with an optional port, or a Kubernetes `namespace/name`.
  enum Target: Equatable {
    case address(IPAddress, port: UInt16?)
    case name(String)
  }

  /// Parses `IP`, `IP:PORT`, `[IPv6]:PORT`, bare IPv6, or `NAMESPACE/NAME` (when `allowName`).
  /// - Throws: ``ValidationError`` naming the option and the accepted forms.
  static func target(_ text: String, option: String, allowName: Bool, allowPort: Bool = true) throws -> Target {
    let forms = (allowPort ? "IP, IP:PORT or [IPv6]:PORT" : "an IP") + (allowName ? " or NAMESPACE/NAME" : "")
    let failure = ValidationError("\(option) '\(text)' is not \(forms).")
    if text.contains("/") {
      let parts = text.split(separator: "/", omittingEmptySubsequences: false)
      guard allowName, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
        !parts.joined().contains(where: { $0.isWhitespace || $0 == ":" })
      else { throw failure }
      return .name(text)
    }
    var host = Substring(text)
    var portText: Substring?
    if host.hasPrefix("[") {
      guard let close = host.firstIndex(of: "]") else { throw failure }
      let rest = host[host.index(after: close)...]
      host = host[host.index(after: host.startIndex)..<close]
      if !rest.isEmpty {
        guard rest.hasPrefix(":") else { throw failure }
        portText = rest.dropFirst()
      }
    } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
      portText = host[host.index(after: colon)...]
      host = host[..<colon]
    }
    guard let address = IPAddress(String(host)) else { throw failure }
    guard let portText else { return .address(address, port: nil) }
    guard allowPort, let port = UInt16(portText), port > 0 else { throw failure }
    return .address(address, port: port)
  }

  /// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF; quotes doubled.
  static func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }
}
