package import Foundation
import GRDB
import Logs
public import SVCTraceCore

/// Which Service `svctrace stats` is about.
public enum ServiceSelector: Sendable, Equatable {
  /// A service address, optionally one port.
  case address(IPAddress, port: UInt16?)
  /// `namespace/name`: every address and port the Service had.
  case name(String)
}

/// Load distribution of one Service over its endpoints.
///
/// The expected count of an endpoint is the sum, over the Service's connections, of 1/n for
/// every connection made while the endpoint was one of the n ready endpoints in the snapshot
/// valid at that time (uniform load balancing, as kube-proxy's random choice gives). Without
/// any snapshot, the endpoints that got traffic are assumed to be all of them.
///
/// ``skew`` is `max |share − expected| / expected` over endpoints (0 = perfectly even, 1 = one
/// endpoint off by 100 % of its fair share). ``chiSquare`` is Pearson's statistic
/// `Σ (observed − expected)² / expected` with ``degreesOfFreedom`` = endpoints − 1: compare it
/// to the chi-square quantile (e.g. ≈ 2·dof is already unusual) to tell skew from noise.
public struct ServiceStats: Sendable, Equatable, Codable {
  /// The Service (`namespace/name`, or the address when no snapshot names it).
  public var service: String
  /// Connections with a known pod (the ones spread over ``endpoints``).
  public var connections: Int
  /// Connections of the Service whose pod is unknown (a pre-DNAT line without a post-DNAT
  /// line, ``MatchMethod/podUnknown``): counted apart, in no endpoint's share.
  public var podUnknown: Int
  public var endpoints: [EndpointStats]
  public var skew: Double
  public var chiSquare: Double
  public var degreesOfFreedom: Int

  /// Endpoints known to the snapshots in the period that got no connection.
  public var idleEndpoints: [EndpointStats] { endpoints.filter { $0.connections == 0 } }
}

/// One endpoint's share of a Service's connections.
public struct EndpointStats: Sendable, Equatable, Codable {
  /// `ip:port` (`[v6]:port` for IPv6).
  public var endpoint: String
  public var pod: String?
  public var node: String?
  public var connections: Int
  public var share: Double
  public var expectedShare: Double
}

extension TraceStore {
  /// Connections per endpoint of a Service in `[since, until)`, with expected shares and skew.
  ///
  /// - Throws: ``StoreError`` (an unknown Service name, a database failure).
  public func stats(service: ServiceSelector, sinceMicros: Int64? = nil, untilMicros: Int64? = nil) throws
    -> ServiceStats
  {
    let plan = ServiceStats.Plan(service, sinceMicros: sinceMicros, untilMicros: untilMicros)
    let records = try connections(matching: plan.query)
    let (label, names) = plan.names(records)
    let intervals = try endpointIntervals(services: names)
    return ServiceStats(
      label: label, records: records, intervals: intervals, sinceMicros: sinceMicros, untilMicros: untilMicros)
  }

  /// `ip:port`, bracketing IPv6.
  package static func endpointText(_ ip: IPAddress, _ port: UInt16) -> String {
    ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
  }

  private func endpointIntervals(services: Set<String>) throws -> [ServiceStats.EndpointInterval] {
    try reading("compute the stats of a Service") { db in
      var intervals: [ServiceStats.EndpointInterval] = []
      for service in services {
        let (namespace, name) = try Self.splitName(service, what: "Service")
        for row in try Row.fetchAll(
          db,
          sql: """
            SELECT ip, port, pod_namespace || '/' || pod_name, pod_name, node, valid_from, valid_to
            FROM endpoint_names WHERE service_namespace = ? AND service_name = ?
            """, arguments: [namespace, name])
        {
          if let interval = ServiceStats.EndpointInterval(
            ip: row[0], port: row[1], pod: row[2], podName: row[3], node: row[4], validFrom: row[5], validTo: row[6])
          {
            intervals.append(interval)
          }
        }
      }
      return intervals
    }
  }
}

extension ServiceStats {
  /// The lookup behind the stats of one Service (shared by the stores).
  package struct Plan {
    package var query: TraceQuery
    package var label: String
    package var names: Set<String>

    package init(_ service: ServiceSelector, sinceMicros: Int64?, untilMicros: Int64?) {
      query = TraceQuery(sinceMicros: sinceMicros, untilMicros: untilMicros)
      names = []
      switch service {
      case .address(let ip, let port):
        query.service = ip
        query.servicePort = port
        label = port.map { "\(TraceStore.endpointText(ip, $0))" } ?? ip.description
      case .name(let name):
        query.serviceName = name
        names.insert(name)
        label = name
      }
    }

    /// The label and the Service names whose endpoints count, once `records` are known.
    package func names(_ records: [ConnectionRecord]) -> (label: String, names: Set<String>) {
      guard names.isEmpty else { return (label, names) }
      let found = Set(records.compactMap(\.serviceName))
      if found.count == 1, let only = found.first { return (only, found) }
      return (label, found)
    }
  }

  /// One `endpoint_names` row of the Service: an endpoint and when it was ready.
  package struct EndpointInterval {
    var endpoint: String
    var pod: String?
    var node: String?
    var row: NameRow

    /// The row's columns: `ip` (16 bytes; `nil` for another length), `port`, `pod`
    /// (`namespace/name`), `podName`, `node`, validity.
    package init?(ip: Data, port: Int, pod: String, podName: String, node: String, validFrom: Int64, validTo: Int64?) {
      guard let address = IPAddress(blob: ip) else { return nil }
      endpoint = TraceStore.endpointText(address, UInt16(clamping: port))
      self.pod = podName.isEmpty ? nil : pod
      self.node = node.isEmpty ? nil : node
      row = NameRow(values: [], validFrom: validFrom, validTo: validTo)
    }
  }

  /// The stats of the Service's `records` (names resolved) against its endpoints' `intervals`.
  package init(
    label: String, records: [ConnectionRecord], intervals: [EndpointInterval], sinceMicros: Int64?,
    untilMicros: Int64?
  ) {
    struct Entry {
      var pod: String?
      var node: String?
      var count = 0
      var expected = 0.0
    }
    var entries: [String: Entry] = [:]
    let lower = sinceMicros ?? .min
    let upper = untilMicros ?? .max
    for interval in intervals where interval.row.validFrom < upper && (interval.row.validTo ?? .max) > lower {
      entries[interval.endpoint, default: Entry(pod: interval.pod, node: interval.node)].pod = interval.pod
    }
    var expectedTotal = 0.0
    let unknown = records.filter { $0.pod == nil }.count
    let records = records.filter { $0.pod != nil }
    for record in records {
      let key = TraceStore.endpointText(record.pod ?? StoredConnection.noPod, record.podPort ?? 0)
      entries[key, default: Entry(pod: record.podName, node: record.podNode)].count += 1
      // Endpoints ready then; a connection older than the first snapshot (or in a gap) uses the
      // nearest snapshot, as name resolution does.
      var readyIntervals = intervals.filter { $0.row.isValid(at: record.timeMicros) }
      if readyIntervals.isEmpty, let nearest = intervals.map({ $0.row.distance(to: record.timeMicros) }).min() {
        readyIntervals = intervals.filter { $0.row.distance(to: record.timeMicros) == nearest }
      }
      let ready = Set(readyIntervals.map(\.endpoint))
      guard !ready.isEmpty else { continue }
      for endpoint in ready { entries[endpoint, default: Entry()].expected += 1 / Double(ready.count) }
      expectedTotal += 1
    }
    if intervals.isEmpty, !entries.isEmpty {
      // No snapshot: assume the endpoints seen are all there are, evenly weighted.
      let even = Double(records.count) / Double(entries.count)
      for key in Array(entries.keys) { entries[key]?.expected = even }
      expectedTotal = Double(records.count)
    }
    let total = records.count
    var endpoints: [EndpointStats] = []
    var skew = 0.0
    var chiSquare = 0.0
    for (key, entry) in entries {
      let share = total == 0 ? 0 : Double(entry.count) / Double(total)
      let expectedShare = expectedTotal == 0 ? 0 : entry.expected / expectedTotal
      if expectedShare > 0 {
        skew = max(skew, abs(share - expectedShare) / expectedShare)
        let expectedCount = expectedShare * Double(total)
        chiSquare += (Double(entry.count) - expectedCount) * (Double(entry.count) - expectedCount) / expectedCount
      }
      endpoints.append(
        EndpointStats(
          endpoint: key, pod: entry.pod, node: entry.node, connections: entry.count, share: share,
          expectedShare: expectedShare))
    }
    endpoints.sort { ($0.connections, $1.endpoint) > ($1.connections, $0.endpoint) }
    self.init(
      service: label, connections: total, podUnknown: unknown, endpoints: endpoints, skew: skew, chiSquare: chiSquare,
      degreesOfFreedom: max(0, endpoints.count - 1))
  }
}
