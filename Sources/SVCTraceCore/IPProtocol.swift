/// An IP protocol number (`PROTO=` of a LOG line, `-p` of a rule) with its name: the one protocol type of every layer.
///
/// Names known: `icmp` (1), `tcp` (6), `udp` (17), `icmpv6` (58), `sctp` (132); any other number
/// is named by its decimal text. Encodes (`Codable`) as its name.
public struct IPProtocol: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
  /// The IP protocol number.
  public var number: UInt8

  @inlinable
  public init(_ number: UInt8) { self.number = number }

  @inlinable public static var icmp: IPProtocol { IPProtocol(1) }
  @inlinable public static var tcp: IPProtocol { IPProtocol(6) }
  @inlinable public static var udp: IPProtocol { IPProtocol(17) }
  @inlinable public static var icmpv6: IPProtocol { IPProtocol(58) }
  @inlinable public static var sctp: IPProtocol { IPProtocol(132) }

  /// The transport protocols kube-proxy forwards and svctrace logs, in rule order (tcp, udp, sctp).
  public static var serviceProtocols: [IPProtocol] { [.tcp, .udp, .sctp] }

  private static let names: [(UInt8, String)] = [(1, "icmp"), (6, "tcp"), (17, "udp"), (58, "icmpv6"), (132, "sctp")]

  /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, or the number.
  public var name: String {
    IPProtocol.names.first { $0.0 == number }?.1 ?? String(number)
  }

  /// Parses a known name (any case) or a decimal number 0…255.
  public init?(name text: some StringProtocol) {
    let lowered = text.lowercased()
    if let known = IPProtocol.names.first(where: { $0.1 == lowered }) {
      self.init(known.0)
    } else if let value = UInt8(lowered) {
      self.init(value)
    } else {
      return nil
    }
  }

  /// One of ``serviceProtocols`` by its exact lowercase name (`tcp`, `udp`, `sctp`), as rules and
  /// settings spell it; `nil` for anything else, numbers included.
  public init?(serviceName text: some StringProtocol) {
    guard let found = IPProtocol.serviceProtocols.first(where: { $0.name == text }) else { return nil }
    self = found
  }

  public var description: String { name }

  public static func < (lhs: IPProtocol, rhs: IPProtocol) -> Bool { lhs.number < rhs.number }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    guard let parsed = IPProtocol(name: text) else {
      throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an IP protocol")
    }
    self = parsed
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(name)
  }
}
