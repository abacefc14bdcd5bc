import GRDB
import Logs
package import SVCTraceCore

/// Entry points for `svctrace-bench trace` (package access: not part of the store's API).
///
/// The benchmark fills a store with millions of generated connections without parsing and
/// correlating lines for them, and reports how each lookup found its blocks.
extension TraceStore {
  /// A generated connection, stored as given by ``bulkLoad(_:)``.
  package struct GeneratedConnection: Sendable {
    package var entry: StoredConnection

    /// A connection matched by IP ID, without lines behind it.
    package init(
      timeMicros: Int64, proto: UInt8, client: IPAddress, clientPort: UInt16, service: IPAddress, servicePort: UInt16,
      pod: IPAddress, podPort: UInt16
    ) {
      entry = StoredConnection(
        slot: 0, timeMicros: timeMicros, proto: proto, client: client, clientPort: clientPort, service: service,
        servicePort: servicePort, pod: pod, podPort: podPort, method: MatchMethod.exactID.rawValue, preID: nil,
        postID: nil)
    }
  }

  /// Stores each element's connections as one connection block of the node named `node`
  /// (created when missing), all in one transaction, as a collect's batches store them.
  /// - Throws: `DatabaseError`.
  package func bulkLoad(_ blocks: [(node: String, connections: [GeneratedConnection])]) throws {
    try dbWriter.write { db in
      for block in blocks where !block.connections.isEmpty {
        let nodeID = try Self.nodeID(db, HostID(block.node))
        try Self.insertConnectionBlocks(block.connections.map(\.entry), nodeID: nodeID, batchID: 0, db)
      }
    }
  }

  /// Runs `ANALYZE`, so that the query planner has statistics of the loaded tables.
  /// - Throws: `DatabaseError`.
  package func analyze() throws {
    try dbWriter.write { db in try db.execute(sql: "ANALYZE") }
  }

  /// The number of connection blocks stored.
  /// - Throws: `DatabaseError`.
  package func connectionBlockCount() throws -> Int {
    try dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM connection_blocks") ?? 0 }
  }

  /// Copies the WAL into the database file and truncates it (the file alone then holds the store).
  /// - Throws: `DatabaseError`.
  package func checkpoint() throws {
    try dbWriter.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
  }

  /// How ``connections(matching:)`` answers `query`: the blocks it decodes, how it finds its
  /// candidate blocks and, with `explain`, SQLite's `EXPLAIN QUERY PLAN` of its block query.
  /// - Throws: ``StoreError`` for an unknown name, `DatabaseError`.
  package func lookupPlan(_ query: TraceQuery, explain: Bool) throws -> LookupPlan {
    try dbWriter.read { db in
      var scan = try BlockScan(query, db)
      _ = try scan.run(db)
      let steps: [String] =
        explain
        ? try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + scan.sql, arguments: scan.arguments).map { $0["detail"] }
        : []
      return LookupPlan(blocksDecoded: scan.decoded, access: scan.access, steps: steps)
    }
  }
}

/// How one lookup found its connections (``TraceStore/lookupPlan(_:explain:)``).
package struct LookupPlan: Sendable {
  /// Connection blocks decoded.
  package var blocksDecoded: Int
  /// How candidate blocks are found (`nil`: every block is a candidate).
  package var access: String?
  /// `EXPLAIN QUERY PLAN` of the block query, one step per entry (empty unless asked for).
  package var steps: [String]
}
