public import SVCTraceCore

/// A connection emitted earlier whose retransmitted first packet was DNATed again to another
/// endpoint (see ``MatchMethod/reDNAT``): the stored record must now name that endpoint.
public struct Redispatch: Sendable, Equatable {
  /// The pre line of the connection to change (its ``Connection/preID``).
  public var preID: Int64
  public var client: IPAddress
  public var clientPort: UInt16
  public var pod: IPAddress
  public var podPort: UInt16
  /// The post line of the later DNAT.
  public var postID: Int64

  public init(preID: Int64, client: IPAddress, clientPort: UInt16, pod: IPAddress, podPort: UInt16, postID: Int64) {
    self.preID = preID
    self.client = client
    self.clientPort = clientPort
    self.pod = pod
    self.podPort = podPort
    self.postID = postID
  }
}
