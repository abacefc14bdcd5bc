public import SVCTraceCore

/// A correlated connection: the client reached a Service address and was DNATed to a pod; or,
/// with method ``MatchMethod/podUnknown``, a pre-DNAT line that no post-DNAT line followed (no
/// pod, no post line).
public struct Connection: Sendable, Equatable {
  /// Time of the pre-DNAT line on the node's clock, corrected by the measured offset (µs, UTC).
  public var timeMicros: Int64
  /// The node that performed the DNAT (where both lines were logged).
  public var node: HostID
  /// IP protocol number (6 TCP, 17 UDP, 132 SCTP…).
  public var proto: UInt8
  public var client: IPAddress
  public var clientPort: UInt16
  public var service: IPAddress
  public var servicePort: UInt16
  /// The endpoint after DNAT; `nil` for ``MatchMethod/podUnknown``.
  public var pod: IPAddress?
  public var podPort: UInt16?
  public var method: MatchMethod
  /// Identifiers of the pre-DNAT and post-DNAT observations (no post-DNAT one for
  /// ``MatchMethod/podUnknown``).
  public var preID: Int64
  public var postID: Int64?

  public init(
    timeMicros: Int64, node: HostID, proto: UInt8, client: IPAddress, clientPort: UInt16, service: IPAddress,
    servicePort: UInt16, pod: IPAddress?, podPort: UInt16?, method: MatchMethod, preID: Int64, postID: Int64?
  ) {
    self.timeMicros = timeMicros
    self.node = node
    self.proto = proto
    self.client = client
    self.clientPort = clientPort
    self.service = service
    self.servicePort = servicePort
    self.pod = pod
    self.podPort = podPort
    self.method = method
    self.preID = preID
    self.postID = postID
  }
}
