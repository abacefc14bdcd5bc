/// What happened to one observation during correlation; the store records it per line.
public enum ObservationOutcome: UInt8, Sendable, Codable {
  /// A pre line waiting for its post line.
  case pending = 0
  /// Part of an emitted connection.
  case matched = 1
  /// A retransmission (SYN retry) folded into another line of the same connection.
  case duplicate = 2
  /// A post line for which no pre line was found.
  case orphan = 3
  /// A pre line whose post line never came within the expiry bound.
  case expired = 4
}
