import Foundation
public import Logs
public import SVCTraceCore

/// Filters of a `svctrace trace` lookup. Every set field must match (AND).
public struct TraceQuery: Sendable, Equatable {
  public var client: IPAddress?
  public var clientPort: UInt16?
  public var service: IPAddress?
  public var servicePort: UInt16?
  /// `namespace/name` of a Service: matches every address:port it had in any snapshot.
  public var serviceName: String?
  public var pod: IPAddress?
  /// `namespace/name` of a pod: matches every IP it had in any snapshot.
  public var podName: String?
  public var node: HostID?
  /// IP protocol number.
  public var proto: UInt8?
  /// Inclusive lower and exclusive upper bound on the connection time, µs since the epoch.
  public var sinceMicros: Int64?
  public var untilMicros: Int64?
  /// Only connections stored after the one with this id (`trace --follow` polls with the last
  /// id it printed: a late join can carry an older time, never a smaller id).
  public var afterID: Int64?
  /// At most this many records (the oldest first).
  public var limit: Int?

  public init(
    client: IPAddress? = nil, clientPort: UInt16? = nil, service: IPAddress? = nil, servicePort: UInt16? = nil,
    serviceName: String? = nil, pod: IPAddress? = nil, podName: String? = nil, node: HostID? = nil,
    proto: UInt8? = nil, sinceMicros: Int64? = nil, untilMicros: Int64? = nil, afterID: Int64? = nil,
    limit: Int? = nil
  ) {
    self.client = client
    self.clientPort = clientPort
    self.service = service
    self.servicePort = servicePort
    self.serviceName = serviceName
    self.pod = pod
    self.podName = podName
    self.node = node
    self.proto = proto
    self.sinceMicros = sinceMicros
    self.untilMicros = untilMicros
    self.afterID = afterID
    self.limit = limit
  }
}

/// One correlated connection as `svctrace trace` shows it, with names resolved at its time.
///
/// Encodes to the JSON of issue 7: `time` (RFC 3339, µs, UTC), `node`, `proto`, `client_ip`,
/// `client_port`, `service_ip`, `service_port`, `pod_ip`, `pod_port` (both `null` when the pod
/// is unknown, method `pod-unknown`), plus `service`, `pod`, `pod_node`, `pod_services` when
/// known, and `method`.
public struct ConnectionRecord: Sendable, Equatable, Encodable {
  public var id: Int64
  public var timeMicros: Int64
  public var node: HostID
  public var proto: UInt8
  public var client: IPAddress
  public var clientPort: UInt16
  public var service: IPAddress
  public var servicePort: UInt16
  /// The endpoint after DNAT; `nil` when no post-DNAT line was logged
  /// (``MatchMethod/podUnknown``).
  public var pod: IPAddress?
  public var podPort: UInt16?
  public var method: MatchMethod
  public var preLineID: Int64?
  public var postLineID: Int64?
  /// `namespace/name` of the Service that owned the service address then.
  public var serviceName: String?
  /// `namespace/name` of the pod that had the pod address then.
  public var podName: String?
  /// The node the pod ran on.
  public var podNode: String?
  /// Every Service whose endpoints included the pod then (a pod can back several).
  public var podServices: [String]

  enum CodingKeys: String, CodingKey {
    case time, node, proto
    case clientIP = "client_ip"
    case clientPort = "client_port"
    case serviceIP = "service_ip"
    case servicePort = "service_port"
    case podIP = "pod_ip"
    case podPort = "pod_port"
    case service, pod
    case podNode = "pod_node"
    case podServices = "pod_services"
    case method
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(TimeFormat.rfc3339(micros: timeMicros), forKey: .time)
    try container.encode(node.name, forKey: .node)
    try container.encode(IPProtocol(proto).name, forKey: .proto)
    try container.encode(client.description, forKey: .clientIP)
    try container.encode(clientPort, forKey: .clientPort)
    try container.encode(service.description, forKey: .serviceIP)
    try container.encode(servicePort, forKey: .servicePort)
    if let pod, let podPort {
      try container.encode(pod.description, forKey: .podIP)
      try container.encode(podPort, forKey: .podPort)
    } else {
      try container.encodeNil(forKey: .podIP)
      try container.encodeNil(forKey: .podPort)
    }
    try container.encodeIfPresent(serviceName, forKey: .service)
    try container.encodeIfPresent(podName, forKey: .pod)
    try container.encodeIfPresent(podNode, forKey: .podNode)
    if !podServices.isEmpty { try container.encode(podServices, forKey: .podServices) }
    try container.encode(method.description, forKey: .method)
  }
}

/// A raw log line behind a connection (`trace --explain`).
public struct StoredLine: Sendable, Equatable, Codable {
  public var id: Int64
  public var node: String
  /// Node-clock time, µs since the epoch.
  public var timeMicros: Int64
  /// `pre` or `post`.
  public var stage: String
  /// `pending`, `matched`, `duplicate`, `orphan` or `expired`.
  public var outcome: String
  public var raw: String

  /// A line from its stored codes (stage 1 pre, 2 post; outcome as ``ObservationOutcome``).
  package init(id: Int64, node: String, timeMicros: Int64, stage: Int, outcome: Int, raw: String) {
    self.id = id
    self.node = node
    self.timeMicros = timeMicros
    self.stage = stage == 1 ? "pre" : "post"
    let names = ["pending", "matched", "duplicate", "orphan", "expired"]
    self.outcome = names.indices.contains(outcome) ? names[outcome] : String(outcome)
    self.raw = raw
  }
}
