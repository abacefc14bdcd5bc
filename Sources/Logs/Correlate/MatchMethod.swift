/// How a connection's pre-DNAT and post-DNAT lines were joined.
public enum MatchMethod: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
  /// Same (proto, src, sport) and the same non-zero IP ID on both lines.
  case exactID = 1
  /// Same (proto, src, sport) within the window; the IP ID was absent (IPv6), zero, or did not
  /// decide (the earliest pending line with the best length match was taken).
  case sourcePortWindow = 2
  /// The post line carried the IP ID of a retransmitted pre line that had been folded into an
  /// earlier, still unmatched pre line of the same connection.
  case retransmitDedup = 3
  /// A retransmitted first packet was DNATed again, to another endpoint: the first attempt's
  /// conntrack entry never took (the packet was dropped before confirmation, e.g. a conntrack
  /// insert clash), so the retry made a new one. The later DNAT is the one that carried the
  /// connection; the record names it.
  case reDNAT = 4
  /// Not joined from lines: the capture source reported the connection whole, both tuples
  /// (a conntrack event).
  case reportedBySource = 5
  /// Not joined: a pre-DNAT line whose post-DNAT line never came within the expiry bound
  /// (``CorrelationSettings/pendingExpiryMicros``). The client reached the Service, but which
  /// pod (if any) got the packet is unknown: the packet was dropped before DNAT completed
  /// (kube-proxy's drop for `externalTrafficPolicy: Local` on a node without a local endpoint,
  /// `loadBalancerSourceRanges`), the post line was lost, or the node never logged post lines
  /// (the old DomeOS script's postrouting rule is refused by iptables as its manual gives it).
  /// The record has no pod and no post line.
  case podUnknown = 6

  /// The name shown in output and stored in JSON: `exact-id`, `sport-window`, `retransmit-dedup`,
  /// `re-dnat`, `source`, `pod-unknown`.
  public var description: String {
    switch self {
    case .exactID: "exact-id"
    case .sourcePortWindow: "sport-window"
    case .retransmitDedup: "retransmit-dedup"
    case .reDNAT: "re-dnat"
    case .reportedBySource: "source"
    case .podUnknown: "pod-unknown"
    }
  }

  /// Parses ``description`` back.
  public init?(name: String) {
    guard let match = Self.allCases.first(where: { $0.description == name }) else { return nil }
    self = match
  }
}
