/// One kernel LOG line written by svctrace's (or the old script's) rules, reduced to the fields
/// that tracing needs.
///
/// Produced by ``PacketLineParser`` without allocating per field: addresses are stored inline,
/// interface names are kept as small inline byte arrays.
public struct PacketLine: Sendable, Equatable {
  /// Which side of DNAT the line was logged on.
  public enum Stage: UInt8, Sendable, Codable {
    /// Before DNAT: destination is the Service address.
    case pre = 1
    /// After DNAT: destination is the pod (endpoint) address.
    case post = 2
  }

  /// Where the prefix came from.
  public enum Origin: UInt8, Sendable, Codable {
    /// svctrace's own prefixes (`SVCT:PRE `, `SVCT:POST `).
    case svctrace = 1
    /// The old DomeOS script's `----domeos…` prefixes.
    case legacy = 2
  }

  /// Syslog timestamp of the line in microseconds since the Unix epoch (UTC).
  public var timeMicros: Int64
  /// The `[12345.678901]` kernel timestamp in microseconds since boot, when present.
  public var kernelMicros: Int64?
  public var stage: Stage
  public var origin: Origin
  /// `IN=` and `OUT=` interface names (empty when the field is empty).
  public var inInterface: InterfaceName
  public var outInterface: InterfaceName
  public var source: IPAddress
  public var destination: IPAddress
  /// IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP.
  public var proto: UInt8
  /// Transport ports; 0 when the protocol has none (ICMP, non-first fragments).
  public var sourcePort: UInt16
  public var destinationPort: UInt16
  /// IPv4 `ID=` (or the IPv6 fragment ID); `nil` when absent.
  public var ipID: UInt32?
  /// IP `LEN=` (total length).
  public var length: UInt16
  /// `MARK=` value, 0 when absent.
  public var mark: UInt32
  /// TCP flags as in the TCP header (SYN = 0x02, ACK = 0x10…), 0 for other protocols.
  public var tcpFlags: UInt8

  public init(
    timeMicros: Int64, kernelMicros: Int64? = nil, stage: Stage, origin: Origin = .svctrace,
    inInterface: InterfaceName = InterfaceName(), outInterface: InterfaceName = InterfaceName(),
    source: IPAddress, destination: IPAddress, proto: UInt8, sourcePort: UInt16, destinationPort: UInt16,
    ipID: UInt32? = nil, length: UInt16 = 0, mark: UInt32 = 0, tcpFlags: UInt8 = 0
  ) {
    self.timeMicros = timeMicros
    self.kernelMicros = kernelMicros
    self.stage = stage
    self.origin = origin
    self.inInterface = inInterface
    self.outInterface = outInterface
    self.source = source
    self.destination = destination
    self.proto = proto
    self.sourcePort = sourcePort
    self.destinationPort = destinationPort
    self.ipID = ipID
    self.length = length
    self.mark = mark
    self.tcpFlags = tcpFlags
  }
}

/// An IPv4 or IPv6 address stored inline (no heap allocation).
///
/// IPv4 addresses are kept as IPv4-mapped IPv6 (`::ffff:a.b.c.d`) so both families share one
/// 128-bit representation that sorts and indexes uniformly.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The high and low 64 bits of the (mapped) IPv6 address, in network order.
  public var high: UInt64
  public var low: UInt64

  public init(high: UInt64, low: UInt64) {
    self.high = high
    self.low = low
  }

  /// An IPv4 address from its 32-bit value in host order (`0x0A000001` is 10.0.0.1).
  public init(ipv4 value: UInt32) {
    high = 0
    low = 0x0000_FFFF_0000_0000 | UInt64(value)
  }

  /// `true` for IPv4 (IPv4-mapped) addresses.
  public var isIPv4: Bool { high == 0 && low >> 32 == 0x0000_FFFF }

  /// The IPv4 value in host order, when this is an IPv4 address.
  public var ipv4: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

  /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (`::` compression, embedded IPv4 allowed).
  public init?(_ text: String) {
    var text = text
    guard let parsed = text.withUTF8({ IPAddress.parse($0) }) else { return nil }
    self = parsed
  }

  /// Parses an address from UTF-8 bytes; the byte-level entry point used by the log parser.
  public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
    if bytes.contains(UInt8(ascii: ":")) { return parseIPv6(bytes) }
    return parseIPv4(bytes[...]).map { IPAddress(ipv4: $0) }
  }

  private static func parseIPv4(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32? {
    var value: UInt32 = 0
    var octet: UInt32 = 0
    var digits = 0
    var dots = 0
    for byte in bytes {
      if byte == UInt8(ascii: ".") {
        guard digits > 0, dots < 3 else { return nil }
        value = value << 8 | octet
        octet = 0
        digits = 0
        dots += 1
      } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
        octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
        digits += 1
        guard digits <= 3, octet <= 255 else { return nil }
      } else {
        return nil
      }
    }
    guard digits > 0, dots == 3 else { return nil }
    return value << 8 | octet
  }

  private static func parseIPv6(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
    var groups: [UInt16] = []
    groups.reserveCapacity(8)
    var gapIndex: Int? = nil
    var index = 0
    let count = bytes.count
    if count >= 2, bytes[0] == UInt8(ascii: ":"), bytes[1] == UInt8(ascii: ":") {
      gapIndex = 0
      index = 2
    }
    while index < count {
      var end = index
      var value: UInt32 = 0
      var isIPv4Tail = false
      while end < count, bytes[end] != UInt8(ascii: ":") {
        let byte = bytes[end]
        if byte == UInt8(ascii: ".") { isIPv4Tail = true }
        end += 1
      }
      if isIPv4Tail {
        guard let v4 = parseIPv4(bytes[index..<end]), end == count else { return nil }
        groups.append(UInt16(v4 >> 16))
        groups.append(UInt16(v4 & 0xFFFF))
        index = end
        break
      }
      guard end > index, end - index <= 4 else { return nil }
      for position in index..<end {
        let byte = bytes[position]
        let digit: UInt32
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
        value = value << 4 | digit
      }
      groups.append(UInt16(value))
      index = end
      if index < count {
        index += 1  // the ':'
        if index < count, bytes[index] == UInt8(ascii: ":") {
          guard gapIndex == nil else { return nil }
          gapIndex = groups.count
          index += 1
        } else if index == count {
          return nil
        }
      }
    }
    if let gap = gapIndex {
      guard groups.count < 8 else { return nil }
      groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gap)
    }
    guard groups.count == 8 else { return nil }
    var high: UInt64 = 0
    var low: UInt64 = 0
    for i in 0..<4 { high = high << 16 | UInt64(groups[i]) }
    for i in 4..<8 { low = low << 16 | UInt64(groups[i]) }
    return IPAddress(high: high, low: low)
  }

  public var description: String {
    if let v4 = ipv4 {
      return "\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
    }
    let groups = (0..<8).map { i -> UInt16 in
      let word = i < 4 ? high : low
      return UInt16(truncatingIfNeeded: word >> (UInt64(3 - i % 4) * 16))
    }
    // RFC 5952: compress the longest run (≥ 2) of zero groups.
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

/// An interface name (at most 15 bytes, `IFNAMSIZ - 1`) stored inline.
public struct InterfaceName: Hashable, Sendable, CustomStringConvertible {
  /// Bytes 0–7 and 8–15 of the name, zero padded.
  private var first: UInt64 = 0
  private var second: UInt64 = 0
  public private(set) var count: UInt8 = 0

  public init() {}

  /// Builds a name from bytes; longer input is cut at 16 bytes.
  public init<C: Collection>(bytes: C) where C.Element == UInt8 {
    for byte in bytes.prefix(16) {
      let shift = UInt64(count % 8) * 8
      if count < 8 { first |= UInt64(byte) << shift } else { second |= UInt64(byte) << shift }
      count += 1
    }
  }

  /// Builds a name from the bytes of a buffer (the parser's path: whole words, no generic
  /// iteration); longer input is cut at 16 bytes.
  public init(bytes: UnsafeBufferPointer<UInt8>) {
    guard let base = bytes.baseAddress else { return }
    let length = min(bytes.count, 16)
    count = UInt8(length)
    if length >= 8 {
      first = UInt64(littleEndian: UnsafeRawPointer(base).loadUnaligned(as: UInt64.self))
      for index in 8..<length { second |= UInt64(base[index]) << (UInt64(index - 8) * 8) }
    } else {
      for index in 0..<length { first |= UInt64(base[index]) << (UInt64(index) * 8) }
    }
  }

  public init(_ name: String) { self.init(bytes: Array(name.utf8)) }

  public var isEmpty: Bool { count == 0 }

  public var description: String {
    var bytes: [UInt8] = []
    for i in 0..<Int(count) {
      let word = i < 8 ? first : second
      bytes.append(UInt8(truncatingIfNeeded: word >> (UInt64(i % 8) * 8)))
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}
