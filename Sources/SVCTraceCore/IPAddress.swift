/// An IPv4 or IPv6 address family.
public enum IPFamily: String, Sendable, Hashable, Codable, CaseIterable {
  case ipv4
  case ipv6
}

/// An IPv4 or IPv6 address stored inline (no heap allocation): the one address type of every layer.
///
/// IPv4 addresses are kept as IPv4-mapped IPv6 (`::ffff:a.b.c.d`) so both families share one
/// 128-bit representation that sorts and indexes uniformly.
///
/// Text accepted (the rules of `inet_pton`): dotted-quad IPv4 with 1–3 digits per octet, no leading
/// zero, each ≤ 255; RFC 4291 IPv6 with at most one `::`, 1–4 hex digits per group, and an optional
/// dotted-quad tail (`::ffff:10.0.0.1`, `64:ff9b::192.0.2.33`). No zone (`%eth0`), no brackets.
/// Text printed: dotted quad for IPv4 (mapped included), RFC 5952 for IPv6.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The high and low 64 bits of the (mapped) IPv6 address, in network order.
  public var high: UInt64
  public var low: UInt64

  @inlinable
  public init(high: UInt64, low: UInt64) {
    self.high = high
    self.low = low
  }

  /// An IPv4 address from its 32-bit value in host order (`0x0A000001` is 10.0.0.1).
  @inlinable
  public init(ipv4 value: UInt32) {
    high = 0
    low = 0x0000_FFFF_0000_0000 | UInt64(value)
  }

  /// `true` for IPv4 (IPv4-mapped) addresses.
  @inlinable
  public var isIPv4: Bool { high == 0 && low >> 32 == 0x0000_FFFF }

  /// The IPv4 value in host order, when this is an IPv4 address.
  @inlinable
  public var ipv4: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

  /// ``IPFamily/ipv4`` for IPv4 (mapped) addresses, ``IPFamily/ipv6`` otherwise.
  public var family: IPFamily { isIPv4 ? .ipv4 : .ipv6 }

  /// Parses IPv4 or IPv6 text (see the type's rules).
  public init?(_ text: some StringProtocol) {
    var text = String(text)
    guard let parsed = text.withUTF8({ IPAddress.parse($0) }) else { return nil }
    self = parsed
  }

  /// Parses an address from UTF-8 bytes (see the type's rules).
  public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
    guard let base = bytes.baseAddress else { return nil }
    return parse(base, 0, bytes.count)
  }

  /// Parses `p[start..<end]` without allocating; the log parser's hot path.
  @inlinable
  public static func parse(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> IPAddress? {
    // IPv4 first (the common case, one pass); text with a colon is never IPv4.
    if let v4 = parseIPv4(p, start, end) { return IPAddress(ipv4: v4) }
    var i = start
    while i < end {
      if p[i] == UInt8(ascii: ":") { return parseIPv6(p, start, end) }
      i &+= 1
    }
    return nil
  }

  /// Parses `a.b.c.d` into its host-order value.
  @inlinable
  static func parseIPv4(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> UInt32? {
    var value: UInt32 = 0
    var octet: UInt32 = 0
    var digits = 0
    var dots = 0
    var i = start
    while i < end {
      let byte = p[i]
      if byte == UInt8(ascii: ".") {
        guard digits > 0, dots < 3 else { return nil }
        value = value &<< 8 | octet
        octet = 0
        digits = 0
        dots &+= 1
      } else {
        let digit = byte &- UInt8(ascii: "0")
        // No leading zero: `01` is octal to some tools and decimal to others.
        guard digit < 10, digits == 0 || octet != 0 else { return nil }
        octet = octet &* 10 &+ UInt32(digit)
        digits &+= 1
        guard digits <= 3, octet <= 255 else { return nil }
      }
      i &+= 1
    }
    guard digits > 0, dots == 3 else { return nil }
    return value &<< 8 | octet
  }

  /// The value of a hexadecimal digit, or `nil`.
  @inlinable
  static func hexValue(_ byte: UInt8) -> UInt64? {
    let decimal = byte &- UInt8(ascii: "0")
    if decimal < 10 { return UInt64(decimal) }
    let lower = byte | 0x20
    if lower &- UInt8(ascii: "a") < 6 { return UInt64(lower &- UInt8(ascii: "a") &+ 10) }
    return nil
  }

  /// Shifts a 128-bit value (as two halves) left by 16 bits and ors in a group.
  @inlinable
  static func push(_ high: inout UInt64, _ low: inout UInt64, _ group: UInt64) {
    high = high &<< 16 | low &>> 48
    low = low &<< 16 | group
  }

  /// Parses IPv6 text with optional `::` and an optional dotted-quad tail.
  @inlinable
  static func parseIPv6(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> IPAddress? {
    var high: UInt64 = 0
    var low: UInt64 = 0
    var count = 0
    var headHigh: UInt64 = 0
    var headLow: UInt64 = 0
    var headCount = 0
    var sawGap = false
    var i = start
    if end &- start >= 2, p[start] == UInt8(ascii: ":"), p[start &+ 1] == UInt8(ascii: ":") {
      sawGap = true
      i = start &+ 2
    }
    while i < end {
      let groupStart = i
      var value: UInt64 = 0
      var digits = 0
      while i < end, let digit = hexValue(p[i]) {
        value = value &<< 4 | digit
        digits &+= 1
        i &+= 1
      }
      if i < end, p[i] == UInt8(ascii: ".") {
        guard let v4 = parseIPv4(p, groupStart, end), headCount &+ count &+ 2 <= 8 else { return nil }
        push(&high, &low, UInt64(v4 &>> 16))
        push(&high, &low, UInt64(v4 & 0xFFFF))
        count &+= 2
        i = end
        break
      }
      guard digits >= 1, digits <= 4, headCount &+ count &+ 1 <= 8 else { return nil }
      push(&high, &low, value)
      count &+= 1
      if i == end { break }
      guard p[i] == UInt8(ascii: ":") else { return nil }
      i &+= 1
      if i < end, p[i] == UInt8(ascii: ":") {
        guard !sawGap else { return nil }
        sawGap = true
        headHigh = high
        headLow = low
        headCount = count
        high = 0
        low = 0
        count = 0
        i &+= 1
      } else if i == end {
        return nil
      }
    }
    if sawGap {
      guard headCount &+ count <= 7 else { return nil }
      // Move the head groups to the top: shift left by 16 × (8 − headCount) bits.
      let shift = 16 &* (8 &- headCount)
      var topHigh: UInt64 = 0
      var topLow: UInt64 = 0
      if headCount > 0 {
        if shift >= 64 {
          topHigh = headLow &<< UInt64(shift &- 64)
        } else {
          topHigh = headHigh &<< UInt64(shift) | headLow &>> UInt64(64 &- shift)
          topLow = headLow &<< UInt64(shift)
        }
      }
      return IPAddress(high: topHigh | high, low: topLow | low)
    }
    guard count == 8 else { return nil }
    return IPAddress(high: high, low: low)
  }

  /// Dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest run of ≥ 2 zero groups as `::`).
  public var description: String {
    if let v4 = ipv4 {
      return "\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
    }
    let groups = (0..<8).map { i -> UInt16 in
      let word = i < 4 ? high : low
      return UInt16(truncatingIfNeeded: word >> (UInt64(3 - i % 4) * 16))
    }
    var bestStart = -1
    var bestLength = 0
    var runStart = -1
    for i in 0...8 {
      if i < 8, groups[i] == 0 {
        if runStart < 0 { runStart = i }
      } else if runStart >= 0 {
        if i - runStart > bestLength, i - runStart >= 2 {
          bestStart = runStart
          bestLength = i - runStart
        }
        runStart = -1
      }
    }
    func hex(_ range: Range<Int>) -> String {
      range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
    }
    if bestStart < 0 { return hex(0..<8) }
    return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
  }

  public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
    (lhs.high, lhs.low) < (rhs.high, rhs.low)
  }
}

/// An IP network in CIDR notation (`10.96.0.0/12`, `fd00:10:96::/112`), host bits cleared.
public struct CIDR: Sendable, Hashable, CustomStringConvertible, Codable {
  /// Why text is not a network.
  public enum ParseError: Error, Sendable, Hashable {
    /// The part before `/` is not an address, or is an IPv4-mapped IPv6 spelling (`::ffff:10.0.0.0`).
    case invalidAddress
    /// The prefix length is not a number in 1…`maximum`.
    case invalidPrefixLength(maximum: Int)
  }

  /// The network address, with the bits past ``prefixLength`` cleared.
  public private(set) var address: IPAddress
  /// Number of leading network bits, counted in the family's width (at most 32 for IPv4, 128 for IPv6).
  public private(set) var prefixLength: Int

  /// The address family.
  public var family: IPFamily { address.family }

  /// The family's address width in bits (32 or 128).
  public var maximumPrefixLength: Int { family == .ipv4 ? 32 : 128 }

  /// The network of `address` with `prefixLength` bits (clamped to the family's width), host bits cleared.
  public init(address: IPAddress, prefixLength: Int) {
    let maximum = address.isIPv4 ? 32 : 128
    let length = min(max(prefixLength, 0), maximum)
    self.address = CIDR.masked(address, bits: address.isIPv4 ? length + 96 : length)
    self.prefixLength = length
  }

  /// The single-host network of `address` (/32 or /128).
  public init(host address: IPAddress) {
    self.init(address: address, prefixLength: address.isIPv4 ? 32 : 128)
  }

  /// Parses `address/prefix` (a bare address means a host route, /32 or /128).
  ///
  /// Host bits are cleared, as iptables does (`10.96.0.1/12` becomes `10.96.0.0/12`).
  /// IPv4-mapped IPv6 spellings are refused: the family would be ambiguous.
  public init(_ text: some StringProtocol) throws(ParseError) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let address = IPAddress(parts[0]), !(address.isIPv4 && parts[0].contains(":")) else {
      throw .invalidAddress
    }
    let maximum = address.isIPv4 ? 32 : 128
    var length = maximum
    if parts.count == 2 {
      guard !parts[1].isEmpty, parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
        let parsed = Int(parts[1]), (1...maximum).contains(parsed)
      else { throw .invalidPrefixLength(maximum: maximum) }
      length = parsed
    }
    self.init(address: address, prefixLength: length)
  }

  /// `true` when the network is a single host (/32 or /128).
  public var isHost: Bool { prefixLength == maximumPrefixLength }

  /// The network address without prefix (`10.96.0.0`).
  public var addressText: String { address.description }

  /// `address/prefix`, always with the prefix (as `iptables -d` prints it).
  public var description: String { "\(addressText)/\(prefixLength)" }

  /// `true` when `address` is of this network's family and lies inside it.
  public func contains(_ address: IPAddress) -> Bool {
    address.isIPv4 == self.address.isIPv4 && CIDR(address: address, prefixLength: prefixLength).address == self.address
  }

  /// `address` with only its leading `bits` (0…128) kept.
  private static func masked(_ address: IPAddress, bits: Int) -> IPAddress {
    func mask(_ kept: Int) -> UInt64 { kept <= 0 ? 0 : kept >= 64 ? ~0 : ~0 << UInt64(64 - kept) }
    return IPAddress(high: address.high & mask(bits), low: address.low & mask(bits - 64))
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    self = try CIDR(text)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}
