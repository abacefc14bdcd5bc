public import Foundation
import Logging
import NIOCore
import PostgresNIO
public import SVCTraceCore
public import Store
import Synchronization

extension PostgresTraceStore {
  // MARK: Claims

  /// Claims `node` for one collect run: `nil` while another collect holds it, in this process or
  /// any other, on any machine. The claim is a session-level advisory lock
  /// (`pg_try_advisory_lock`) on a connection of its own, held while the claim lives; the
  /// server drops it with the connection when the collector dies.
  ///
  /// - Throws: ``StoreError`` when the store cannot be reached.
  public func claimCollect(node: HostID) async throws -> CollectClaim? {
    // A claim this process released is let go of on the server first.
    if let releasing = releasing.withLock({ $0[node.name] }) { await releasing.value }
    let key = Self.claimKey(node)
    let (configuration, logger) = (connectionConfiguration, logger)
    return try await run("claim \(node) for a collect") {
      let connection = try await PostgresConnection.connect(
        configuration: configuration, id: nextConnectionID(), logger: logger)
      let held: Bool
      do {
        held =
          try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: logger).decode(Bool.self).array()
          .first ?? false
      } catch {
        try? await connection.close()
        throw error
      }
      guard held else {
        try? await connection.close()
        return nil
      }
      return CollectClaim { [self] in
        let task = Task {
          _ = try? await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger).array()
          try? await connection.close()
        }
        self.releasing.withLock { $0[node.name] = task }
      }
    }
  }

  // MARK: Names

  /// Stores a cluster snapshot (trimmed as the SQLite store trims it) and updates the name
  /// tables, in one transaction; snapshots must come in time order.
  ///
  /// - Throws: ``StoreError`` for JSON that is not a Kubernetes List, a snapshot older than the
  ///   newest stored one, or a database failure.
  @discardableResult
  public func ingestSnapshot(json: Data, takenAtMicros: Int64, source: String) async throws -> SnapshotSummary {
    let (entries, trimmed) = try TraceStore.readSnapshot(json: json, source: source)
    return try await run("store the cluster snapshot from \(source)") {
      try await client.withTransaction(logger: logger) { db in
        try await db.query("SELECT pg_advisory_xact_lock(\(Self.stableKey("svctrace snapshots")))", logger: logger)
        if let newest = try await db.rows("SELECT MAX(taken_at) FROM snapshots", logger).decode(Int64?.self).array()
          .first ?? nil, newest > takenAtMicros
        {
          throw SnapshotEntries.olderThanNewest(source: source, newest: newest)
        }
        let json = String(decoding: trimmed, as: UTF8.self)
        guard
          let id = try await db.rows(
            "INSERT INTO snapshots (taken_at, source, json) VALUES (\(takenAtMicros), \(source), \(json)) RETURNING id",
            logger
          ).decode(Int64.self).array().first
        else { throw StoreError(operation: "store the cluster snapshot from \(source)", message: "no id came back") }
        var summary = SnapshotSummary(snapshotID: id)
        (summary.services, summary.pods, summary.endpoints) = entries.counts
        for (table, columns, rows) in entries.tables {
          try await apply(rows, table: table, columns: columns, at: takenAtMicros, db, summary: &summary)
        }
        return summary
      }
    }
  }

  /// Closes open rows missing from `entries` and opens rows for new entries.
  private func apply(
    _ entries: Set<[SnapshotEntries.Value]>, table: String, columns: [String], at time: Int64,
    _ db: PostgresConnection, summary: inout SnapshotSummary
  ) async throws {
    var open: [[SnapshotEntries.Value]: Int64] = [:]
    let rows = try await db.rows(
      PostgresQuery(unsafeSQL: "SELECT id, \(columns.joined(separator: ", ")) FROM \(table) WHERE valid_to IS NULL"),
      logger
    ).array()
    for row in rows {
      let cells = row.makeRandomAccess()
      let id = try cells[0].decode(Int64.self)
      var key: [SnapshotEntries.Value] = []
      for (index, column) in columns.enumerated() {
        switch Self.columnKind(column) {
        case .blob: key.append(.blob(Data(try cells[index + 1].decode(ByteBuffer.self).readableBytesView)))
        case .integer: key.append(.integer(try cells[index + 1].decode(Int64.self)))
        case .text: key.append(.text(try cells[index + 1].decode(String.self)))
        }
      }
      open[key] = id
    }
    let closing = open.filter { !entries.contains($0.key) }.map(\.value)
    if !closing.isEmpty {
      try await db.rows("UPDATE \(unescaped: table) SET valid_to = \(time) WHERE id = ANY(\(closing)::int8[])", logger)
        .array()
      summary.closed += closing.count
    }
    let placeholders = (1...(columns.count + 1)).map { "$\($0)" }.joined(separator: ", ")
    let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", ")), valid_from) VALUES (\(placeholders))"
    for entry in entries where open[entry] == nil {
      var bindings = PostgresBindings()
      for value in entry {
        switch value {
        case .integer(let number): bindings.append(number)
        case .text(let text): bindings.append(text)
        case .blob(let data): bindings.append(data.buffer)
        }
      }
      bindings.append(time)
      try await db.rows(PostgresQuery(unsafeSQL: sql, binds: bindings), logger).array()
      summary.opened += 1
    }
  }

  private enum ColumnKind { case blob, integer, text }

  /// The type of a name-table column.
  private static func columnKind(_ column: String) -> ColumnKind {
    switch column {
    case "ip": .blob
    case "port", "proto", "host_network": .integer
    default: .text
    }
  }

  // MARK: Retention

  /// Deletes connections, lines, batches, snapshots and name rows older than `cutoffMicros`, in one
  /// transaction, as the SQLite store does: pending pre lines and batches a node's next collect
  /// replays are kept, the newest snapshot is kept, name rows still valid at the cutoff are kept;
  /// a connection block straddling the cutoff is rewritten with its newer connections (their
  /// ids stay).
  ///
  /// - Throws: ``StoreError``.
  @discardableResult
  public func prune(olderThan cutoffMicros: Int64) async throws -> PruneSummary {
    try await run("prune the store") {
      try await client.withTransaction(logger: logger) { db in
        var summary = PruneSummary()
        let blocks = try await db.rows(
          "SELECT id FROM connection_blocks WHERE min_time < \(cutoffMicros) ORDER BY id", logger
        ).decode(Int64.self).array()
        for block in blocks {
          let entries = try await Self.connectionBlock(block, db, logger)
          let kept = entries.filter { $0.timeMicros >= cutoffMicros }
          summary.connections += entries.count - kept.count
          try await rewriteConnectionBlock(block, old: entries, entries: kept, db)
        }
        let replayed = """
          EXISTS (SELECT 1 FROM correlation_state s WHERE s.node_id = line_blocks.node_id
            AND line_blocks.batch_id > s.state_batch)
          """
        summary.lines = Int(
          try await db.rows(
            """
            WITH gone AS (DELETE FROM line_blocks WHERE last_time < \(cutoffMicros) AND pending = 0
              AND NOT \(unescaped: replayed) RETURNING count)
            SELECT COALESCE(SUM(count), 0)::int8 FROM gone
            """, logger
          ).decode(Int64.self).array().first ?? 0)
        summary.batches = try await count(
          """
          WITH gone AS (DELETE FROM batches WHERE collected_at < \(cutoffMicros) AND NOT EXISTS (
            SELECT 1 FROM correlation_state s WHERE s.node_id = batches.node_id AND batches.id > s.state_batch)
            RETURNING 1)
          SELECT COUNT(*) FROM gone
          """, db)
        summary.snapshots = try await count(
          """
          WITH gone AS (DELETE FROM snapshots WHERE taken_at < \(cutoffMicros)
            AND id <> (SELECT id FROM snapshots ORDER BY taken_at DESC LIMIT 1) RETURNING 1)
          SELECT COUNT(*) FROM gone
          """, db)
        for table in ["service_names", "pod_names", "endpoint_names"] {
          summary.names += try await count(
            """
            WITH gone AS (DELETE FROM \(unescaped: table) WHERE valid_to IS NOT NULL AND valid_to < \(cutoffMicros)
              RETURNING 1)
            SELECT COUNT(*) FROM gone
            """, db)
        }
        try await db.rows("DELETE FROM loss_intervals WHERE until_time < \(cutoffMicros)", logger).array()
        return summary
      }
    }
  }

  private func count(_ query: PostgresQuery, _ db: PostgresConnection) async throws -> Int {
    Int(try await db.rows(query, logger).decode(Int64.self).array().first ?? 0)
  }
}

extension PostgresTraceStore {
  /// The stored snapshots' JSON, oldest first (for the tests that nothing secret is kept).
  package func snapshotJSON() async throws -> [String] {
    try await reading("read the snapshots") { db in
      try await db.rows("SELECT json FROM snapshots ORDER BY taken_at, id", logger).decode(String.self).array()
    }
  }
}
