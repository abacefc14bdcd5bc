public import SVCTraceCore

extension CIDR {
  /// Parses a service CIDR setting (see ``CIDR/init(_:)``).
  /// - Throws: ``SettingsError`` when the text is not a valid CIDR.
  public init(parsing text: String) throws(SettingsError) {
    do {
      try self.init(text)
    } catch {
      switch error {
      case .invalidAddress:
        throw SettingsError(key: "service CIDR", value: text, reason: "not an IPv4 or IPv6 network like 10.96.0.0/12")
      case .invalidPrefixLength(let maximum):
        throw SettingsError(key: "service CIDR", value: text, reason: "prefix length must be 1…\(maximum)")
      }
    }
  }
}

/// One Service address: `VIP:PORT/proto` (ClusterIP, externalIP or load-balancer IP).
public struct ServiceAddress: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
  public var address: IPAddress
  public var port: UInt16
  /// One of ``IPProtocol/serviceProtocols``.
  public var proto: IPProtocol

  public init(address: IPAddress, port: UInt16, proto: IPProtocol) {
    self.address = address
    self.port = port
    self.proto = proto
  }

  /// Parses `10.96.0.10:53/udp`, `[fd00::a]:443` (protocol defaults to tcp).
  /// - Throws: ``SettingsError`` for anything else, IPv4-mapped IPv6 spellings included.
  public init(parsing text: String) throws(SettingsError) {
    let bad = SettingsError(
      key: "services", value: text,
      reason: "expected VIP:PORT[/tcp|udp|sctp], e.g. 10.96.0.10:53/udp or [fd00::a]:443")
    var rest = Substring(text)
    var proto = IPProtocol.tcp
    if let slash = rest.lastIndex(of: "/") {
      guard let parsed = IPProtocol(serviceName: rest[rest.index(after: slash)...].lowercased()) else { throw bad }
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
    guard let address = ServiceAddress.address(host), !portText.isEmpty,
      portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText), port > 0
    else { throw bad }
    self.init(address: address, port: port, proto: proto)
  }

  /// Parses a Service IP; IPv4-mapped IPv6 spellings (`::ffff:10.0.0.1`) are refused, their family
  /// would be ambiguous in the rules.
  static func address(_ text: some StringProtocol) -> IPAddress? {
    guard let address = IPAddress(text), !(address.isIPv4 && text.contains(":")) else { return nil }
    return address
  }

  public var family: IPFamily { address.family }

  /// The address as text (no brackets).
  public var addressText: String { address.description }

  public var description: String {
    family == .ipv4 ? "\(addressText):\(port)/\(proto.name)" : "[\(addressText)]:\(port)/\(proto.name)"
  }

  public static func < (lhs: ServiceAddress, rhs: ServiceAddress) -> Bool {
    if lhs.family != rhs.family { return lhs.family == .ipv4 }
    if lhs.address != rhs.address { return lhs.address < rhs.address }
    if lhs.port != rhs.port { return lhs.port < rhs.port }
    return lhs.proto < rhs.proto
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    self = try ServiceAddress(parsing: text)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}
