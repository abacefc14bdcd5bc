import Foundation
import GRDB
import Logs
package import SVCTraceCore

/// Serves a ``TraceQuery`` from connection blocks: picks the candidate blocks with SQL over
/// `connection_blocks` (time, node, id range) and `block_keys` (client, service, pod), skips
/// those whose client filter rules out a `--client IP:PORT`, decodes the rest and keeps the
/// connections that match every filter, oldest first by (time, id).
struct BlockScan {
  /// The block query (also shown by the benchmark's EXPLAIN QUERY PLAN).
  private(set) var sql = ""
  private(set) var arguments = StatementArguments()
  /// How candidate blocks are found (`nil`: every block is a candidate).
  private(set) var access: String?
  /// Blocks the query selected, tested against the client filter, and decoded.
  private(set) var candidates = 0
  private(set) var decoded = 0

  private let query: TraceQuery
  /// A Service name's addresses: `nil` address = any (NodePort).
  private var serviceAlternatives: [(ip: IPAddress?, port: UInt16)]?
  private var podAddresses: Set<IPAddress>?
  /// True when a filter names something no block can hold (an unknown node).
  private var matchesNothing = false

  /// Prepares the scan; resolves `namespace/name` filters through the snapshot tables.
  ///
  /// - Throws: ``StoreError`` when a name is unknown to every snapshot, `DatabaseError` (the caller names the operation).
  init(_ query: TraceQuery, _ db: Database) throws {
    self.query = query
    var conditions: [String] = []
    var values: [any DatabaseValueConvertible] = []
    var accesses: [String] = []
    var nothing = false
    func keyCondition(_ parts: [(kind: BlockKeyKind, keys: [Data])]) {
      guard parts.contains(where: { !$0.keys.isEmpty }) else {
        nothing = true
        return
      }
      let selects = parts.filter { !$0.keys.isEmpty }.map { part -> String in
        values.append(part.kind.rawValue)
        values += part.keys as [any DatabaseValueConvertible]
        let list = part.keys.map { _ in "?" }.joined(separator: ", ")
        return "SELECT block_id FROM block_keys WHERE kind = ? AND key IN (\(list))"
      }
      conditions.append("b.id IN (" + selects.joined(separator: " UNION ") + ")")
    }
    if let client = query.client {
      keyCondition([(.client, [client.blob])])
      accesses.append(query.clientPort == nil ? "block_keys(client)" : "block_keys(client) + client_bloom")
    }
    if let service = query.service {
      if let port = query.servicePort {
        keyCondition([(.service, [TraceStore.serviceKey(service, port)])])
      } else {
        conditions.append("b.id IN (SELECT block_id FROM block_keys WHERE kind = ? AND key BETWEEN ? AND ?)")
        values += [
          BlockKeyKind.service.rawValue, TraceStore.serviceKey(service, 0), TraceStore.serviceKey(service, .max),
        ]
      }
      accesses.append("block_keys(service)")
    } else if let port = query.servicePort {
      keyCondition([(.servicePort, [TraceStore.portKey(port)])])
      accesses.append("block_keys(service port)")
    }
    if let name = query.serviceName {
      let (namespace, plain) = try TraceStore.splitName(name, what: "Service")
      let rows = try Row.fetchAll(
        db, sql: "SELECT DISTINCT ip, port FROM service_names WHERE namespace = ? AND name = ?",
        arguments: [namespace, plain])
      guard !rows.isEmpty else {
        throw StoreError(
          operation: "look up Service \(name)", cause: .notFound, message: "no cluster snapshot knows this Service")
      }
      var alternatives: [(ip: IPAddress?, port: UInt16)] = []
      for row in rows {
        let ip: Data = row[0]
        let port = UInt16(clamping: row[1] as Int)
        let address = IPAddress(blob: ip)
        alternatives.append((address == IPAddress.any ? nil : address, port))
      }
      serviceAlternatives = alternatives
      keyCondition([
        (
          .service,
          alternatives.compactMap { alternative in alternative.ip.map { TraceStore.serviceKey($0, alternative.port) } }
        ),
        (.servicePort, alternatives.filter { $0.ip == nil }.map { TraceStore.portKey($0.port) }),
      ])
      accesses.append("block_keys(service)")
    }
    var pods: Set<IPAddress>?
    if let pod = query.pod { pods = [pod] }
    if let name = query.podName {
      let (namespace, plain) = try TraceStore.splitName(name, what: "pod")
      let ips = try Data.fetchAll(
        db,
        sql: """
          SELECT ip FROM pod_names WHERE namespace = ? AND name = ?
          UNION SELECT ip FROM endpoint_names WHERE pod_namespace = ? AND pod_name = ?
          """, arguments: [namespace, plain, namespace, plain])
      guard !ips.isEmpty else {
        throw StoreError(
          operation: "look up pod \(name)", cause: .notFound, message: "no cluster snapshot knows this pod")
      }
      let named = Set(ips.compactMap { IPAddress(blob: $0) })
      pods = pods.map { $0.intersection(named) } ?? named
    }
    if let pods {
      podAddresses = pods
      keyCondition([(.pod, pods.sorted().map(\.blob))])
      accesses.append("block_keys(pod)")
    }
    if let node = query.node {
      if let id = try Int64.fetchOne(db, sql: "SELECT id FROM nodes WHERE name = ?", arguments: [node.name]) {
        conditions.append("b.node_id = ?")
        values.append(id)
      } else {
        nothing = true
      }
    }
    if let since = query.sinceMicros {
      conditions.append("b.max_time >= ?")
      values.append(since)
    }
    if let until = query.untilMicros {
      conditions.append("b.min_time < ?")
      values.append(until)
    }
    if let after = query.afterID {
      conditions.append("b.id >= ?")
      values.append(max(0, after) >> 24)
    }
    if accesses.isEmpty, query.sinceMicros != nil || query.untilMicros != nil {
      accesses.append("connection_blocks_by_time")
    }
    matchesNothing = nothing
    access = accesses.isEmpty ? nil : accesses.joined(separator: ", ")
    sql = "SELECT b.id, b.node_id, b.min_time FROM connection_blocks b"
    if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
    sql += " ORDER BY b.min_time, b.id"
    arguments = StatementArguments(values)
  }

  /// The matching connections, oldest first by (time, id), at most `query.limit`; names are not
  /// resolved.
  mutating func run(_ db: Database) throws -> [ConnectionRecord] {
    if matchesNothing { return [] }
    if let limit = query.limit, limit <= 0 { return [] }
    let nodes = Dictionary(
      try Row.fetchAll(db, sql: "SELECT id, name FROM nodes").map { ($0[0] as Int64, $0[1] as String) },
      uniquingKeysWith: { first, _ in first })
    let blocks = try Row.fetchAll(db, sql: sql, arguments: arguments).map {
      (id: $0[0] as Int64, node: $0[1] as Int64, minTime: $0[2] as Int64)
    }
    candidates = blocks.count
    let clientHash = query.client.flatMap { client in query.clientPort.map { ClientBloom.hash(client, $0) } }
    var probe = BloomProbe(db)
    defer { probe.close() }
    let matcher = ConnectionMatcher(query: query, serviceAlternatives: serviceAlternatives, podAddresses: podAddresses)
    var found: [(id: Int64, node: Int64, entry: StoredConnection)] = []
    func order(
      _ a: (id: Int64, node: Int64, entry: StoredConnection), _ b: (id: Int64, node: Int64, entry: StoredConnection)
    )
      -> Bool
    { (a.entry.timeMicros, a.id) < (b.entry.timeMicros, b.id) }
    for block in blocks {
      if let limit = query.limit, found.count >= limit {
        found.sort(by: order)
        found.removeLast(found.count - limit)
        // Blocks come in min_time order: one starting after the limit-th record cannot displace it.
        if block.minTime > found[limit - 1].entry.timeMicros { break }
      }
      if let clientHash, !(try probe.mayContain(clientHash, block: block.id)) { continue }
      decoded += 1
      let columns = try TraceStore.connectionColumns(block.id, db)
      guard let filter = matcher.filter(for: columns) else { continue }
      for i in 0..<columns.count {
        let id = TraceStore.connectionID(block: block.id, slot: columns.slots[i])
        if matcher.matches(columns, i, id: id, filter) { found.append((id, block.node, columns.entry(i))) }
      }
    }
    found.sort(by: order)
    if let limit = query.limit, found.count > limit { found.removeLast(found.count - limit) }
    return found.map { item in
      ConnectionMatcher.record(item.entry, id: item.id, node: HostID(nodes[item.node] ?? "node \(item.node)"))
    }
  }
}

/// The pure part of a lookup: a ``TraceQuery`` with its names resolved to addresses, tested
/// against the decoded columns of one connection block (shared by the stores' scans).
package struct ConnectionMatcher {
  package let query: TraceQuery
  /// A Service name's addresses: `nil` address = any (NodePort).
  package let serviceAlternatives: [(ip: IPAddress?, port: UInt16)]?
  package let podAddresses: Set<IPAddress>?

  package init(
    query: TraceQuery, serviceAlternatives: [(ip: IPAddress?, port: UInt16)]?, podAddresses: Set<IPAddress>?
  ) {
    self.query = query
    self.serviceAlternatives = serviceAlternatives
    self.podAddresses = podAddresses
  }

  /// The record of a stored connection, its names not resolved.
  package static func record(_ entry: StoredConnection, id: Int64, node: HostID) -> ConnectionRecord {
    ConnectionRecord(
      id: id, timeMicros: entry.timeMicros, node: node, proto: entry.proto, client: entry.client,
      clientPort: entry.clientPort, service: entry.service, servicePort: entry.servicePort,
      pod: entry.hasPod ? entry.pod : nil, podPort: entry.hasPod ? entry.podPort : nil,
      method: MatchMethod(rawValue: entry.method) ?? .sourcePortWindow, preLineID: entry.preID,
      postLineID: entry.postID, serviceName: nil, podName: nil, podNode: nil, podServices: [])
  }

  /// The query's filters resolved against one block's address dictionary.
  package struct BlockFilter {
    var client: UInt32?
    var service: UInt32?
    /// Service name alternatives: dictionary index (nil = any address) and port.
    var alternatives: [(index: UInt32?, port: UInt16)]?
    var pods: Set<UInt32>?
  }

  /// `nil` when no connection of a block with these `columns` can match.
  package func filter(for columns: ConnectionBlock.Columns) -> BlockFilter? {
    var filter = BlockFilter()
    if let client = query.client {
      guard let index = columns.index(of: client) else { return nil }
      filter.client = index
    }
    if let service = query.service {
      guard let index = columns.index(of: service) else { return nil }
      filter.service = index
    }
    if let serviceAlternatives {
      let resolved = serviceAlternatives.compactMap { alternative -> (index: UInt32?, port: UInt16)? in
        guard let ip = alternative.ip else { return (nil, alternative.port) }
        return columns.index(of: ip).map { ($0, alternative.port) }
      }
      guard !resolved.isEmpty else { return nil }
      filter.alternatives = resolved
    }
    if let podAddresses {
      let indices = Set(podAddresses.compactMap { columns.index(of: $0) })
      guard !indices.isEmpty else { return nil }
      filter.pods = indices
    }
    return filter
  }

  /// Whether entry `i` of `columns` (with id `id`) passes every filter of the query.
  package func matches(_ columns: ConnectionBlock.Columns, _ i: Int, id: Int64, _ filter: BlockFilter) -> Bool {
    if let client = filter.client, columns.clients[i] != client { return false }
    if let port = query.clientPort, columns.clientPorts[i] != port { return false }
    if let service = filter.service, columns.services[i] != service { return false }
    if let port = query.servicePort, columns.servicePorts[i] != port { return false }
    if let alternatives = filter.alternatives {
      let service = columns.services[i]
      let port = columns.servicePorts[i]
      guard alternatives.contains(where: { $0.port == port && ($0.index == nil || $0.index == service) }) else {
        return false
      }
    }
    if let pods = filter.pods,
      !pods.contains(columns.pods[i]) || columns.methods[i] == MatchMethod.podUnknown.rawValue
    {
      return false
    }
    if let proto = query.proto, columns.protos[i] != proto { return false }
    if let since = query.sinceMicros, columns.times[i] < since { return false }
    if let until = query.untilMicros, columns.times[i] >= until { return false }
    if let after = query.afterID, id <= after { return false }
    return true
  }

}
