public import Foundation
import GRDB
import Logs
import SVCTraceCore

/// What one snapshot changed in the name tables.
public struct SnapshotSummary: Sendable, Equatable, Codable {
  public var snapshotID: Int64
  /// Entries present in the snapshot: service addresses, pod addresses, endpoints.
  public var services = 0
  public var pods = 0
  public var endpoints = 0
  /// Name rows opened and closed by it.
  public var opened = 0
  public var closed = 0

  package init(snapshotID: Int64) { self.snapshotID = snapshotID }
}

extension TraceStore {
  /// Ingests the output of `kubectl get services,endpointslices,pods -A -o json` (a Kubernetes
  /// `List`) taken at `takenAtMicros`, and updates the name tables.
  ///
  /// The snapshot is stored trimmed to the fields the name tables come from (names,
  /// namespaces, labels, addresses, ports, nodes, endpoint references): no pod spec, no
  /// environment value.
  ///
  /// Each name row is valid from the first snapshot that has it until the first later snapshot
  /// that does not, so an address that moved from one pod to another resolves by time.
  /// Snapshots must be ingested in time order.
  ///
  /// - Parameter source: where it came from (`kubectl@cp1`, `fixture`…), stored with it.
  /// - Throws: ``StoreError`` for JSON that is not a Kubernetes List, or a snapshot older than
  ///   the newest stored one, or the database fails.
  @discardableResult
  public func ingestSnapshot(json: Data, takenAtMicros: Int64, source: String) throws -> SnapshotSummary {
    let (entries, trimmed) = try Self.readSnapshot(json: json, source: source)
    return try writing("store the cluster snapshot from \(source)") { db in
      if let newest = try Int64.fetchOne(db, sql: "SELECT MAX(taken_at) FROM snapshots"), newest > takenAtMicros {
        throw SnapshotEntries.olderThanNewest(source: source, newest: newest)
      }
      try db.execute(
        sql: "INSERT INTO snapshots (taken_at, source, json) VALUES (?, ?, ?)",
        arguments: [takenAtMicros, source, String(decoding: trimmed, as: UTF8.self)])
      var summary = SnapshotSummary(snapshotID: db.lastInsertedRowID)
      summary.services = entries.services.count
      summary.pods = entries.pods.count
      summary.endpoints = entries.endpoints.count
      try Self.apply(
        entries.services, table: "service_names", columns: SnapshotEntries.serviceColumns, at: takenAtMicros, db,
        summary: &summary)
      try Self.apply(
        entries.pods, table: "pod_names", columns: SnapshotEntries.podColumns, at: takenAtMicros, db,
        summary: &summary)
      try Self.apply(
        entries.endpoints, table: "endpoint_names", columns: SnapshotEntries.endpointColumns, at: takenAtMicros, db,
        summary: &summary)
      return summary
    }
  }

  /// A snapshot's name-table rows and its JSON as stored (trimmed to the fields svctrace reads).
  ///
  /// - Throws: ``StoreError`` for JSON that is not a Kubernetes List.
  package static func readSnapshot(json: Data, source: String) throws -> (SnapshotEntries, Data) {
    let list: KubeList
    do {
      list = try JSONDecoder().decode(KubeList.self, from: json)
    } catch {
      throw StoreError(
        operation: "read the cluster snapshot from \(source)",
        message: "not a Kubernetes List in JSON (\(error))")
    }
    let entries = SnapshotEntries(list)
    // Only what the lookups read is kept: kubectl's output carries whole pod specs, literal
    // environment values (passwords) included, which must not end up in the store.
    let trimmed: Data
    do {
      trimmed = try list.encoded()
    } catch {
      throw StoreError(operation: "store the cluster snapshot from \(source)", message: "cannot encode it (\(error))")
    }
    return (entries, trimmed)
  }

  /// Closes open rows missing from `entries` and opens rows for new entries.
  private static func apply(
    _ entries: Set<[DatabaseValue]>, table: String, columns: [String], at time: Int64, _ db: Database,
    summary: inout SnapshotSummary
  ) throws {
    var open: [[DatabaseValue]: Int64] = [:]
    let rows = try Row.fetchAll(
      db, sql: "SELECT id, \(columns.joined(separator: ", ")) FROM \(table) WHERE valid_to IS NULL")
    for row in rows {
      let key = (1...columns.count).map { row[$0] as DatabaseValue }
      open[key] = row[0]
    }
    let close = try db.cachedStatement(sql: "UPDATE \(table) SET valid_to = ? WHERE id = ?")
    for (key, id) in open where !entries.contains(key) {
      try close.execute(arguments: [time, id])
      summary.closed += 1
    }
    let insert = try db.cachedStatement(
      sql: """
        INSERT INTO \(table) (\(columns.joined(separator: ", ")), valid_from)
        VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")), ?)
        """)
    for entry in entries where open[entry] == nil {
      try insert.execute(arguments: StatementArguments(entry + [time.databaseValue]))
      summary.opened += 1
    }
  }
}

/// The name-table rows one snapshot implies, as column values in table order.
package struct SnapshotEntries {
  var services: Set<[DatabaseValue]> = []
  var pods: Set<[DatabaseValue]> = []
  var endpoints: Set<[DatabaseValue]> = []

  /// The columns of the rows of each name table, in the order of their values.
  package static let serviceColumns = ["ip", "port", "proto", "namespace", "name"]
  package static let podColumns = ["ip", "namespace", "name", "node", "host_network"]
  package static let endpointColumns = [
    "service_namespace", "service_name", "ip", "port", "proto", "pod_namespace", "pod_name", "node",
  ]

  /// A value of a name-table row, apart from the database library.
  package enum Value: Hashable, Sendable {
    case integer(Int64)
    case text(String)
    case blob(Data)
  }

  /// The rows of `service_names`, `pod_names` and `endpoint_names` (keys: those table names).
  package var tables: [(table: String, columns: [String], rows: Set<[Value]>)] {
    func plain(_ rows: Set<[DatabaseValue]>) -> Set<[Value]> {
      Set(
        rows.map { row in
          row.map { value -> Value in
            switch value.storage {
            case .int64(let number): .integer(number)
            case .string(let text): .text(text)
            case .blob(let data): .blob(data)
            case .double(let number): .integer(Int64(number))
            case .null: .text("")
            }
          }
        })
    }
    return [
      ("service_names", Self.serviceColumns, plain(services)), ("pod_names", Self.podColumns, plain(pods)),
      ("endpoint_names", Self.endpointColumns, plain(endpoints)),
    ]
  }

  /// Entries present in the snapshot: service addresses, pod addresses, endpoints.
  package var counts: (services: Int, pods: Int, endpoints: Int) { (services.count, pods.count, endpoints.count) }

  /// The error for a snapshot older than the newest stored one.
  package static func olderThanNewest(source: String, newest: Int64) -> StoreError {
    StoreError(
      operation: "ingest the cluster snapshot from \(source)",
      message: "it is older than the newest stored snapshot (\(TimeFormat.rfc3339(micros: newest)))")
  }

  init(_ list: KubeList) {
    for item in list.items {
      let namespace = item.metadata.namespace ?? "default"
      let name = item.metadata.name
      switch item.kind {
      case "Service":
        guard let spec = item.spec else { continue }
        var addresses = spec.clusterIPs ?? spec.clusterIP.map { [$0] } ?? []
        addresses += spec.externalIPs ?? []
        addresses += item.status?.loadBalancer?.ingress?.compactMap(\.ip) ?? []
        for port in spec.ports ?? [] {
          let proto = Int(IPProtocol(name: port.protocol ?? "TCP")?.number ?? 6)
          for text in addresses {
            guard let ip = IPAddress(text) else { continue }  // "None" (headless) and garbage
            services.insert(values(ip.blob, port.port, proto, namespace, name))
          }
          if let nodePort = port.nodePort {
            services.insert(values(IPAddress.any.blob, nodePort, proto, namespace, name))
          }
        }
      case "Pod":
        let phase = item.status?.phase ?? ""
        guard phase != "Succeeded", phase != "Failed" else { continue }
        var addresses = item.status?.podIPs?.compactMap(\.ip) ?? []
        if addresses.isEmpty, let single = item.status?.podIP { addresses = [single] }
        let node = item.spec?.nodeName ?? ""
        let hostNetwork = item.spec?.hostNetwork == true ? 1 : 0
        for text in addresses {
          guard let ip = IPAddress(text) else { continue }
          pods.insert(values(ip.blob, namespace, name, node, hostNetwork))
        }
      case "EndpointSlice":
        guard let service = item.metadata.labels?["kubernetes.io/service-name"] else { continue }
        for endpoint in item.endpoints ?? [] where endpoint.conditions?.ready != false {
          let podNamespace = endpoint.targetRef?.namespace ?? namespace
          let podName = endpoint.targetRef?.kind == "Pod" ? endpoint.targetRef?.name ?? "" : ""
          for text in endpoint.addresses {
            guard let ip = IPAddress(text) else { continue }
            for port in item.ports ?? [] {
              guard let number = port.port else { continue }
              let proto = Int(IPProtocol(name: port.protocol ?? "TCP")?.number ?? 6)
              endpoints.insert(
                values(namespace, service, ip.blob, number, proto, podNamespace, podName, endpoint.nodeName ?? ""))
            }
          }
        }
      default:
        continue
      }
    }
  }
}

/// Column values of one name-table row.
private func values(_ values: any DatabaseValueConvertible...) -> [DatabaseValue] {
  values.map { $0.databaseValue }
}

// MARK: Kubernetes JSON (only the fields svctrace reads, and so stores)

package struct KubeList: Codable {
  var apiVersion: String?
  var kind: String?
  package var items: [KubeObject]

  /// The list as stored: only the fields svctrace reads, keys sorted.
  package func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try encoder.encode(self)
  }

  /// A snapshot's JSON trimmed to the fields svctrace reads.
  static func trimmed(_ json: Data) throws -> Data {
    try JSONDecoder().decode(KubeList.self, from: json).encoded()
  }
}

package struct KubeObject: Codable {
  var kind: String?
  var metadata: Metadata
  var spec: Spec?
  var status: Status?
  // EndpointSlice (discovery.k8s.io/v1) keeps these at the top level.
  var endpoints: [Endpoint]?
  var ports: [EndpointPort]?

  struct Metadata: Codable {
    var name: String
    var namespace: String?
    var labels: [String: String]?
  }

  struct Spec: Codable {
    var clusterIP: String?
    var clusterIPs: [String]?
    var externalIPs: [String]?
    var ports: [ServicePort]?
    var nodeName: String?
    var hostNetwork: Bool?
  }

  struct ServicePort: Codable {
    var port: Int
    var `protocol`: String?
    var nodePort: Int?
  }

  struct Status: Codable {
    var phase: String?
    var podIP: String?
    var podIPs: [Address]?
    var loadBalancer: LoadBalancer?
  }

  struct Address: Codable {
    var ip: String?
  }

  struct LoadBalancer: Codable {
    var ingress: [Address]?
  }

  struct Endpoint: Codable {
    var addresses: [String]
    var conditions: Conditions?
    var nodeName: String?
    var targetRef: Reference?
  }

  struct Conditions: Codable {
    var ready: Bool?
  }

  struct Reference: Codable {
    var kind: String?
    var name: String?
    var namespace: String?
  }

  struct EndpointPort: Codable {
    var port: Int?
    var `protocol`: String?
    var name: String?
  }
}
