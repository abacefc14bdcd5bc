/// The name of a node as the inventory spells it (`node01`, `k8s-worker-3`).
///
/// Every error, log line and result row names its host with this value.
public struct HostID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
  public var name: String

  public init(_ name: String) { self.name = name }

  public var description: String { name }

  public static func < (lhs: HostID, rhs: HostID) -> Bool { lhs.name < rhs.name }

  public init(from decoder: any Decoder) throws {
    name = try decoder.singleValueContainer().decode(String.self)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(name)
  }
}
