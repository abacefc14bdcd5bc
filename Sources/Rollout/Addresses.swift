import Foundation

/// An IPv4 or IPv6 address family.
public enum IPFamily: String, Sendable, Hashable, Codable, CaseIterable {
  case ipv4
  case ipv6
}

/// An IP network in CIDR notation (`10.96.0.0/12`, `fd00:10:96::/112`), host bits cleared.
public struct CIDR: Sendable, Hashable, CustomStringConvertible, Codable {
  /// Address bytes (4 or 16), with the bits past ``prefixLength`` cleared.
  public private(set) var bytes: [UInt8]
  /// Number of leading network bits.
  public private(set) var prefixLength: Int

  /// The address family.
  public var family: IPFamily { bytes.count == 4 ? .ipv4 : .ipv6 }

  /// Parses `address/prefix` (a bare address means a host route, /32 or /128).
  ///
  /// Host bits are cleared, as iptables does (`10.96.0.1/12` becomes `10.96.0.0/12`).
  /// - Throws: ``SettingsError`` when the text is not a valid CIDR.
  public init(parsing text: String) throws(SettingsError) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let address = IPText.parse(String(parts[0])) else {
      throw SettingsError(key: "service CIDR", value: text, reason: "not an IPv4 or IPv6 network like 10.96.0.0/12")
    }
    let maxLength = address.count * 8
    var length = maxLength
    if parts.count == 2 {
      guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let parsed = Int(parts[1]),
        (1...maxLength).contains(parsed)
      else {
        throw SettingsError(key: "service CIDR", value: text, reason: "prefix length must be 1…\(maxLength)")
      }
      length = parsed
    }
    self.init(bytes: address, prefixLength: length)
  }

  /// Builds a network from raw bytes, clearing host bits.
  public init(bytes: [UInt8], prefixLength: Int) {
    var masked = bytes
    for index in masked.indices {
      let bitsBefore = index * 8
      if bitsBefore >= prefixLength {
        masked[index] = 0
      } else if bitsBefore + 8 > prefixLength {
        let keep = prefixLength - bitsBefore
        masked[index] &= UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
      }
    }
    self.bytes = masked
    self.prefixLength = prefixLength
  }

  /// `true` when the network is a single host (/32 or /128).
  public var isHost: Bool { prefixLength == bytes.count * 8 }

  /// The network address without prefix (`10.96.0.0`).
  public var addressText: String { IPText.format(bytes) }

  /// `address/prefix`, always with the prefix (as `iptables -d` prints it).
  public var description: String { "\(addressText)/\(prefixLength)" }

  /// `true` when `address` (4 or 16 bytes) lies inside this network.
  public func contains(_ address: [UInt8]) -> Bool {
    guard address.count == bytes.count else { return false }
    return CIDR(bytes: address, prefixLength: prefixLength).bytes == bytes
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    self = try CIDR(parsing: text)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}

/// Text forms of IP addresses.
public enum IPText {
  /// Parses a dotted IPv4 or an RFC 4291 IPv6 address (no zone, no embedded IPv4) to bytes.
  public static func parse(_ text: String) -> [UInt8]? {
    if text.contains(":") { return parseIPv6(text) }
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var bytes: [UInt8] = []
    for part in parts {
      guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
        let value = UInt8(part), part == "0" || !part.hasPrefix("0")
      else { return nil }
      bytes.append(value)
    }
    return bytes
  }

  private static func parseIPv6(_ text: String) -> [UInt8]? {
    var halves: [Substring] = []
    var rest = Substring(text)
    while let range = rest.range(of: "::") {
      halves.append(rest[rest.startIndex..<range.lowerBound])
      rest = rest[range.upperBound...]
    }
    halves.append(rest)
    guard halves.count <= 2 else { return nil }
    func groups(_ part: Substring) -> [UInt16]? {
      if part.isEmpty { return [] }
      var result: [UInt16] = []
      for group in part.split(separator: ":", omittingEmptySubsequences: false) {
        guard !group.isEmpty, group.count <= 4, group.allSatisfy({ $0.isASCII && $0.isHexDigit }),
          let value = UInt16(group, radix: 16)
        else { return nil }
        result.append(value)
      }
      return result
    }
    var all: [UInt16]
    if halves.count == 2 {
      guard let head = groups(halves[0]), let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
      all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
    } else {
      guard let only = groups(halves[0]), only.count == 8 else { return nil }
      all = only
    }
    return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
  }

  /// Formats 4 or 16 bytes the way iptables and the kernel print them (RFC 5952 for IPv6).
  public static func format(_ bytes: [UInt8]) -> String {
    if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
    var groups: [UInt16] = []
    var index = 0
    while index + 1 < bytes.count {
      groups.append(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]))
      index += 2
    }
    var bestStart = -1
    var bestLength = 0
    var runStart = -1
    for (position, group) in groups.enumerated() {
      if group == 0 {
        if runStart < 0 { runStart = position }
        let length = position - runStart + 1
        if length > bestLength {
          bestLength = length
          bestStart = runStart
        }
      } else {
        runStart = -1
      }
    }
    let hex = groups.map { String($0, radix: 16) }
    if bestLength < 2 { return hex.joined(separator: ":") }
    let head = hex[0..<bestStart].joined(separator: ":")
    let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
    return head + "::" + tail
  }
}

/// A transport protocol kube-proxy forwards.
public enum TransportProtocol: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
  case tcp
  case udp
  case sctp

  public static func < (lhs: TransportProtocol, rhs: TransportProtocol) -> Bool {
    (allCases.firstIndex(of: lhs) ?? 0) < (allCases.firstIndex(of: rhs) ?? 0)
  }
}

/// One Service address: `VIP:PORT/proto` (ClusterIP, externalIP or load-balancer IP).
public struct ServiceAddress: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
  /// Address bytes (4 or 16).
  public var address: [UInt8]
  public var port: UInt16
  public var proto: TransportProtocol

  public init(address: [UInt8], port: UInt16, proto: TransportProtocol) {
    self.address = address
    self.port = port
    self.proto = proto
  }

  /// Parses `10.96.0.10:53/udp`, `[fd00::a]:443` (protocol defaults to tcp).
  /// - Throws: ``SettingsError`` for anything else.
  public init(parsing text: String) throws(SettingsError) {
    let bad = SettingsError(
      key: "services", value: text,
      reason: "expected VIP:PORT[/tcp|udp|sctp], e.g. 10.96.0.10:53/udp or [fd00::a]:443")
    var rest = Substring(text)
    var proto = TransportProtocol.tcp
    if let slash = rest.lastIndex(of: "/") {
      guard let parsed = TransportProtocol(rawValue: rest[rest.index(after: slash)...].lowercased()) else { throw bad }
      proto = parsed
      rest = rest[..<slash]
    }
    let host: Substring
    let portText: Substring
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else { throw bad }
      host = rest[rest.index(after: rest.startIndex)..<close]
      portText = rest[rest.index(close, offsetBy: 2)...]
    } else {
      guard let colon = rest.lastIndex(of: ":"), !rest[..<colon].contains(":") else { throw bad }
      host = rest[..<colon]
      portText = rest[rest.index(after: colon)...]
    }
    guard let address = IPText.parse(String(host)), !portText.isEmpty,
      portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText), port > 0
    else { throw bad }
    self.init(address: address, port: port, proto: proto)
  }

  public var family: IPFamily { address.count == 4 ? .ipv4 : .ipv6 }

  /// The address as text (no brackets).
  public var addressText: String { IPText.format(address) }

  public var description: String {
    family == .ipv4 ? "\(addressText):\(port)/\(proto.rawValue)" : "[\(addressText)]:\(port)/\(proto.rawValue)"
  }

  public static func < (lhs: ServiceAddress, rhs: ServiceAddress) -> Bool {
    if lhs.address.count != rhs.address.count { return lhs.address.count < rhs.address.count }
    if lhs.address != rhs.address { return lhs.address.lexicographicallyPrecedes(rhs.address) }
    if lhs.port != rhs.port { return lhs.port < rhs.port }
    return lhs.proto < rhs.proto
  }
}
