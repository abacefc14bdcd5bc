public import SVCTraceCore

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
