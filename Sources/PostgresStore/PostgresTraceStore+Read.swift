import Foundation
import Logging
import Logs
import NIOCore
import PostgresNIO
import SVCTraceCore
public import Store

/// A query built from parts: SQL with `$n` placeholders and the values bound to them.
struct DynamicQuery {
  var sql = ""
  var bindings = PostgresBindings()
  private var count = 0

  /// Binds `value` and returns its placeholder.
  mutating func bind<Value: PostgresThrowingDynamicTypeEncodable>(_ value: Value) throws -> String {
    try bindings.append(value)
    count += 1
    return "$\(count)"
  }

  var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: bindings) }
}

extension PostgresTraceStore {
  /// A read-only transaction in one snapshot of the store.
  func reading<T: Sendable>(
    _ operation: @autoclosure () -> String, _ body: (PostgresConnection) async throws -> T
  ) async throws -> T {
    try await run(operation()) {
      try await client.withTransaction(logger: logger) { connection in
        try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
        return try await body(connection)
      }
    }
  }

  // MARK: Lookups

  /// Connections matching `query`, oldest first, with names resolved at each connection's time.
  ///
  /// - Throws: ``StoreError`` when a `namespace/name` is unknown to every snapshot, or the
  ///   database fails.
  public func connections(matching query: TraceQuery) async throws -> [ConnectionRecord] {
    try await reading("look up connections") { db in
      var records = try await scan(query, db)
      try await resolveNames(&records, db)
      return records
    }
  }

  /// Serves `query` from the connection blocks, as the SQLite store's block scan does: candidate
  /// blocks by time, node, id and `block_keys`; the client filter's one 64-byte line read in the
  /// query for a `--client IP:PORT`; the rest decoded and matched.
  func scan(_ query: TraceQuery, _ db: PostgresConnection) async throws -> [ConnectionRecord] {
    if let limit = query.limit, limit <= 0 { return [] }
    var sql = DynamicQuery()
    var conditions: [String] = []
    var nothing = false
    func keyCondition(_ parts: [(kind: BlockKeyKind, keys: [Data])]) throws {
      let present = parts.filter { !$0.keys.isEmpty }
      guard !present.isEmpty else {
        nothing = true
        return
      }
      let selects = try present.map { part in
        "SELECT block_id FROM block_keys WHERE kind = \(try sql.bind(Int16(part.kind.rawValue))) AND key = ANY(\(try sql.bind(part.keys.map(\.buffer)))::bytea[])"
      }
      conditions.append("b.id IN (" + selects.joined(separator: " UNION ") + ")")
    }
    if let client = query.client { try keyCondition([(.client, [client.blob])]) }
    if let service = query.service {
      if let port = query.servicePort {
        try keyCondition([(.service, [TraceStore.serviceKey(service, port)])])
      } else {
        let kind = try sql.bind(Int16(BlockKeyKind.service.rawValue))
        let low = try sql.bind(TraceStore.serviceKey(service, 0).buffer)
        let high = try sql.bind(TraceStore.serviceKey(service, .max).buffer)
        conditions.append(
          "b.id IN (SELECT block_id FROM block_keys WHERE kind = \(kind) AND key BETWEEN \(low) AND \(high))")
      }
    } else if let port = query.servicePort {
      try keyCondition([(.servicePort, [TraceStore.portKey(port)])])
    }
    var serviceAlternatives: [(ip: IPAddress?, port: UInt16)]?
    if let name = query.serviceName {
      let (namespace, plain) = try TraceStore.splitName(name, what: "Service")
      let rows = try await db.rows(
        "SELECT DISTINCT ip, port FROM service_names WHERE namespace = \(namespace) AND name = \(plain)", logger
      ).decode((ByteBuffer, Int64).self).array()
      guard !rows.isEmpty else {
        throw StoreError(
          operation: "look up Service \(name)", cause: .notFound, message: "no cluster snapshot knows this Service")
      }
      let alternatives = rows.map { row -> (ip: IPAddress?, port: UInt16) in
        let address = IPAddress(blob: Data(row.0.readableBytesView))
        return (address == IPAddress.any ? nil : address, UInt16(clamping: row.1))
      }
      serviceAlternatives = alternatives
      try keyCondition([
        (
          .service,
          alternatives.compactMap { alternative in alternative.ip.map { TraceStore.serviceKey($0, alternative.port) } }
        ),
        (.servicePort, alternatives.filter { $0.ip == nil }.map { TraceStore.portKey($0.port) }),
      ])
    }
    var pods: Set<IPAddress>?
    if let pod = query.pod { pods = [pod] }
    if let name = query.podName {
      let (namespace, plain) = try TraceStore.splitName(name, what: "pod")
      let ips = try await db.rows(
        """
        SELECT ip FROM pod_names WHERE namespace = \(namespace) AND name = \(plain)
        UNION SELECT ip FROM endpoint_names WHERE pod_namespace = \(namespace) AND pod_name = \(plain)
        """, logger
      ).decode(ByteBuffer.self).array()
      guard !ips.isEmpty else {
        throw StoreError(
          operation: "look up pod \(name)", cause: .notFound, message: "no cluster snapshot knows this pod")
      }
      let named = Set(ips.compactMap { IPAddress(blob: Data($0.readableBytesView)) })
      pods = pods.map { $0.intersection(named) } ?? named
    }
    if let pods { try keyCondition([(.pod, pods.sorted().map(\.blob))]) }
    if let node = query.node {
      if let id = try await Self.nodeID(db, existing: node, logger) {
        conditions.append("b.node_id = \(try sql.bind(id))")
      } else {
        nothing = true
      }
    }
    if let since = query.sinceMicros { conditions.append("b.max_time >= \(try sql.bind(since))") }
    if let until = query.untilMicros { conditions.append("b.min_time < \(try sql.bind(until))") }
    if let after = query.afterID { conditions.append("b.id >= \(try sql.bind(max(0, after) >> 24))") }
    if nothing { return [] }
    let clientHash = query.client.flatMap { client in query.clientPort.map { ClientBloom.hash(client, $0) } }
    // The filter line the hash picks (ClientBloom.line(of:lines:)), cut out by the server.
    let bloomLine: String
    if let clientHash {
      let high = try sql.bind(Int64(clientHash >> 32))
      bloomLine = """
        substring(b.client_bloom from ((((\(high)::int8 * (length(b.client_bloom) / 64)) >> 32) * 64) + 1)::int for 64)
        """
    } else {
      bloomLine = "NULL::bytea"
    }
    sql.sql = "SELECT b.id, b.node_id, b.min_time, \(bloomLine) FROM connection_blocks b"
    if !conditions.isEmpty { sql.sql += " WHERE " + conditions.joined(separator: " AND ") }
    sql.sql += " ORDER BY b.min_time, b.id"
    var blocks = try await db.rows(sql.query, logger).decode((Int64, Int64, Int64, ByteBuffer?).self).array()
    if let clientHash {
      blocks = blocks.filter { block in block.3.map { ClientBloom.lineMayContain(clientHash, $0.bytes) } ?? true }
    }
    let nodes = Dictionary(
      try await db.rows("SELECT id, name FROM nodes", logger).decode((Int64, String).self).array(),
      uniquingKeysWith: { first, _ in first })
    let matcher = ConnectionMatcher(query: query, serviceAlternatives: serviceAlternatives, podAddresses: pods)
    var found: [(id: Int64, node: Int64, entry: StoredConnection)] = []
    func order(
      _ a: (id: Int64, node: Int64, entry: StoredConnection), _ b: (id: Int64, node: Int64, entry: StoredConnection)
    ) -> Bool { (a.entry.timeMicros, a.id) < (b.entry.timeMicros, b.id) }
    // Decoded a chunk at a time, in min_time order, so that a limit stops the reading early.
    var start = 0
    reading: while start < blocks.count {
      let chunk = blocks[start..<min(blocks.count, start + 64)]
      start += chunk.count
      let data = Dictionary(
        try await db.rows(
          "SELECT id, data FROM connection_blocks WHERE id = ANY(\(chunk.map(\.0))::int8[])", logger
        ).decode((Int64, ByteBuffer).self).array(), uniquingKeysWith: { first, _ in first })
      for block in chunk {
        if let limit = query.limit, found.count >= limit {
          found.sort(by: order)
          found.removeLast(found.count - limit)
          // Blocks come in min_time order: one starting after the limit-th record cannot displace it.
          if block.2 > found[limit - 1].entry.timeMicros { break reading }
        }
        guard let bytes = data[block.0] else { continue }
        let columns = try bytes.readableBytesView.withUnsafeBytes { try ConnectionBlock.Columns(decoding: $0) }
        guard let filter = matcher.filter(for: columns) else { continue }
        for i in 0..<columns.count {
          let id = TraceStore.connectionID(block: block.0, slot: columns.slots[i])
          if matcher.matches(columns, i, id: id, filter) { found.append((id, block.1, columns.entry(i))) }
        }
      }
    }
    found.sort(by: order)
    if let limit = query.limit, found.count > limit { found.removeLast(found.count - limit) }
    return found.map { item in
      ConnectionMatcher.record(item.entry, id: item.id, node: HostID(nodes[item.node] ?? "node \(item.node)"))
    }
  }

  /// Fills the names of `records` as of their times: the name rows of all their addresses read
  /// in three queries, then resolved as the SQLite store resolves them.
  func resolveNames(_ records: inout [ConnectionRecord], _ db: PostgresConnection) async throws {
    guard !records.isEmpty else { return }
    let serviceIPs = Set(records.map(\.service)).union([IPAddress.any]).map { $0.blob.buffer }
    let podIPs = Set(records.compactMap(\.pod)).map { $0.blob.buffer }
    struct ServiceKey: Hashable {
      var ip: Data
      var port: Int64
      var proto: Int64
    }
    var services: [ServiceKey: [(name: String, from: Int64, to: Int64?)]] = [:]
    for try await row in try await db.rows(
      """
      SELECT ip, port, proto, namespace || '/' || name, valid_from, valid_to FROM service_names
      WHERE ip = ANY(\(serviceIPs)::bytea[]) ORDER BY id
      """, logger
    ).decode((ByteBuffer, Int64, Int64, String, Int64, Int64?).self) {
      services[ServiceKey(ip: Data(row.0.readableBytesView), port: row.1, proto: row.2), default: []].append(
        (row.3, row.4, row.5))
    }
    var endpoints: [Data: [NameRow]] = [:]
    for try await row in try await db.rows(
      """
      SELECT ip, service_namespace || '/' || service_name, port, proto, pod_namespace || '/' || pod_name, node,
        valid_from, valid_to FROM endpoint_names WHERE ip = ANY(\(podIPs)::bytea[]) ORDER BY port, id
      """, logger
    ).decode((ByteBuffer, String, Int64, Int64, String, String, Int64, Int64?).self) {
      endpoints[Data(row.0.readableBytesView), default: []].append(
        NameRow(values: [row.1, String(row.2), String(row.3), row.4, row.5], validFrom: row.6, validTo: row.7))
    }
    var pods: [Data: [NameRow]] = [:]
    for try await row in try await db.rows(
      """
      SELECT ip, namespace || '/' || name, node, host_network, valid_from, valid_to FROM pod_names
      WHERE ip = ANY(\(podIPs)::bytea[]) ORDER BY id
      """, logger
    ).decode((ByteBuffer, String, String, Int64, Int64, Int64?).self) {
      pods[Data(row.0.readableBytesView), default: []].append(
        NameRow(values: [row.1, row.2, String(row.3)], validFrom: row.4, validTo: row.5))
    }
    let any = IPAddress.any.blob
    for index in records.indices {
      let record = records[index]
      let ip = record.service.blob
      func named(_ address: Data, exact: Bool) -> [NameRow] {
        (services[ServiceKey(ip: address, port: Int64(record.servicePort), proto: Int64(record.proto))] ?? []).map {
          NameRow(values: [$0.name, exact ? "1" : "0"], validFrom: $0.from, validTo: $0.to)
        }
      }
      let rows = named(ip, exact: true) + (ip == any ? [] : named(any, exact: false))
      let pod = record.pod?.blob ?? Data()
      NameResolver.resolve(&records[index], services: rows, endpoints: endpoints[pod] ?? []) { pods[pod] ?? [] }
    }
  }

  // MARK: Lines

  /// The raw log lines behind a connection (`trace --explain`): its pre-DNAT and post-DNAT line.
  public func explain(_ record: ConnectionRecord) async throws -> [StoredLine] {
    try await lines(ids: [record.preLineID, record.postLineID].compactMap { $0 })
  }

  /// Stored raw lines by id, in id order; each read from its block with only its own bytes.
  public func lines(ids: [Int64]) async throws -> [StoredLine] {
    guard !ids.isEmpty else { return [] }
    return try await reading("read stored lines") { db in
      var found: [StoredLine] = []
      for id in Set(ids) {
        if let line = try await line(id, db) { found.append(line) }
      }
      return found.sorted { $0.id < $1.id }
    }
  }

  private func line(_ id: Int64, _ db: PostgresConnection) async throws -> StoredLine? {
    guard
      let row = try await db.rows(
        """
        SELECT b.first_id, b.count, n.name,
          substring(b.times from ((\(id) - b.first_id) * 8 + 1)::int for 8),
          substring(b.flags from ((\(id) - b.first_id) + 1)::int for 1),
          substring(b.ends from ((\(id) - b.first_id - 1) * 4 + 1)::int for 4),
          substring(b.ends from ((\(id) - b.first_id) * 4 + 1)::int for 4)
        FROM line_blocks b JOIN nodes n ON n.id = b.node_id
        WHERE b.first_id <= \(id) ORDER BY b.first_id DESC LIMIT 1
        """, logger
      ).decode((Int64, Int64, String, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer).self).array().first,
      id < row.0 + row.1
    else { return nil }
    let (first, node) = (row.0, row.2)
    let times = row.3.bytes
    let flags = row.4.bytes
    guard times.count == 8, flags.count == 1, row.6.readableBytes == 4 else {
      throw StoreError(operation: "read stored line \(id)", message: "its block's columns are too short")
    }
    let time = times.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    let start = id == first ? 0 : Int(TraceStore.uint32(row.5.bytes, at: 0))
    let end = Int(TraceStore.uint32(row.6.bytes, at: 0))
    // The line is the last one of its range (lines the parser skipped may come before it).
    let length = max(0, end - start)
    let raw =
      try await db.rows(
        "SELECT substring(raw from \(Int32(start + 1)) for \(Int32(length))) FROM line_blocks WHERE first_id = \(first)",
        logger
      ).decode(ByteBuffer.self).array().first?.bytes ?? []
    let text = raw.withUnsafeBytes { CollectedBatch.lineText(in: $0, from: 0, to: $0.count) }
    return StoredLine(
      id: id, node: node, timeMicros: time, stage: Int(flags[0] >> 4), outcome: Int(flags[0] & 0x0F), raw: text)
  }

  /// The id of the newest stored connection, `nil` for an empty store.
  public func latestConnectionID() async throws -> Int64? {
    try await run("read the newest connection id") {
      try await client.query(
        "SELECT id << 24 | max_slot FROM connection_blocks ORDER BY id DESC LIMIT 1", logger: logger
      ).decode(Int64.self).array().first
    }
  }

  // MARK: Stats and status

  /// Connections per endpoint of a Service in `[since, until)`, with expected shares and skew
  /// (computed as the SQLite store computes them).
  public func stats(service: ServiceSelector, sinceMicros: Int64?, untilMicros: Int64?) async throws -> ServiceStats {
    let plan = ServiceStats.Plan(service, sinceMicros: sinceMicros, untilMicros: untilMicros)
    let records = try await connections(matching: plan.query)
    let (label, names) = plan.names(records)
    let intervals = try await reading("compute the stats of a Service") { db in
      var intervals: [ServiceStats.EndpointInterval] = []
      for service in names {
        let (namespace, name) = try TraceStore.splitName(service, what: "Service")
        for try await row in try await db.rows(
          """
          SELECT ip, port, pod_namespace || '/' || pod_name, pod_name, node, valid_from, valid_to
          FROM endpoint_names WHERE service_namespace = \(namespace) AND service_name = \(name) ORDER BY id
          """, logger
        ).decode((ByteBuffer, Int64, String, String, String, Int64, Int64?).self) {
          if let interval = ServiceStats.EndpointInterval(
            ip: Data(row.0.readableBytesView), port: Int(row.1), pod: row.2, podName: row.3, node: row.4,
            validFrom: row.5, validTo: row.6)
          {
            intervals.append(interval)
          }
        }
      }
      return intervals
    }
    return ServiceStats(
      label: label, records: records, intervals: intervals, sinceMicros: sinceMicros, untilMicros: untilMicros)
  }

  /// One row per node and source that was ever collected, sorted by node.
  public func collectStatus() async throws -> [CollectStatus] {
    try await reading("read the collect status") { db in
      let rows = try await db.rows(
        """
        SELECT n.name, c.source, c.kind,
          (SELECT MAX(collected_at) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source),
          (SELECT COUNT(*) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source),
          (SELECT COALESCE(SUM(lines), 0)::int8 FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source),
          (SELECT COALESCE(SUM(skipped), 0)::int8 FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source),
          (SELECT COALESCE(SUM(connections), 0)::int8 FROM batches b
            WHERE b.node_id = c.node_id AND b.source = c.source),
          (SELECT COALESCE(SUM(pending), 0)::int8 FROM line_blocks b WHERE b.node_id = c.node_id),
          (SELECT clock_offset_us FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source
            ORDER BY id DESC LIMIT 1),
          (SELECT clock_bound_us FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source
            ORDER BY id DESC LIMIT 1)
        FROM cursors c JOIN nodes n ON n.id = c.node_id
        ORDER BY n.name COLLATE "C", c.source COLLATE "C"
        """, logger
      ).array()
      var status: [CollectStatus] = []
      for row in rows {
        let cells = row.makeRandomAccess()
        let counts = try (4...8).map { try cells[$0].decode(Int64.self) }
        status.append(
          CollectStatus(
            node: try cells[0].decode(String.self), source: try cells[1].decode(String.self),
            kind: try cells[2].decode(String.self), lastCollectedAt: try cells[3].decode(Int64?.self),
            batches: Int(counts[0]), lines: Int(counts[1]), skipped: Int(counts[2]), connections: Int(counts[3]),
            pending: Int(counts[4]), clockOffset: try cells[9].decode(Int64?.self),
            clockBound: try cells[10].decode(Int64?.self)))
      }
      return status
    }
  }
}
