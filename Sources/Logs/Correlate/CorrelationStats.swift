/// Counters of one correlation pass.
public struct CorrelationStats: Sendable, Equatable, Codable {
  public var connections = 0
  public var duplicates = 0
  public var orphans = 0
  public var expired = 0
  /// Expired pre lines kept as connections without a pod (``MatchMethod/podUnknown``), also
  /// counted in ``expired`` (not in ``connections``, which counts joined ones).
  public var podUnknown = 0
  public var pending = 0
  /// Connections moved to the endpoint of a retransmission's new DNAT (``MatchMethod/reDNAT``).
  public var redispatched = 0
  /// Pending pre lines dropped because their key held ``CorrelationSettings/maxPendingPerKey``
  /// newer ones (recorded with the outcome ``ObservationOutcome/expired``).
  public var dropped = 0

  public init() {}
}
