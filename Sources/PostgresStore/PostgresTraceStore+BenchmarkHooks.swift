import Logs
import PostgresNIO
import SVCTraceCore
package import Store
import Synchronization

/// Entry points for `svctrace-bench` (package access: not part of the store's API).
extension PostgresTraceStore {
  /// Stores each element's connections as one connection block of the node named `node`, all
  /// in one transaction (as ``TraceStore/bulkLoad(_:)`` does).
  package func bulkLoad(_ blocks: [(node: String, connections: [TraceStore.GeneratedConnection])]) async throws {
    try await run("load generated connections") {
      try await client.withTransaction(logger: logger) { db in
        var nodes: [String: Int64] = [:]
        for block in blocks where !block.connections.isEmpty {
          let nodeID: Int64
          if let known = nodes[block.node] {
            nodeID = known
          } else {
            nodeID = try await Self.nodeID(db, inserting: HostID(block.node), logger)
            nodes[block.node] = nodeID
          }
          try await insertConnectionBlocks(
            PreparedConnectionBlock.blocks(of: block.connections.map(\.entry)), nodeID: nodeID, batchID: 0, db)
        }
      }
    }
  }

  /// Runs `ANALYZE`.
  package func analyze() async throws {
    try await run("analyze the store") { _ = try await client.query("ANALYZE", logger: logger).array() }
  }

  /// Drops every table of the store's schema (the benchmarks start each run from an empty
  /// database they were given for the purpose), then creates it again. The line ids this store
  /// reserved go too (the counter starts again).
  package func wipeForBenchmark() async throws {
    reservedLineIDs.withLock { $0 = [:] }
    try await run("wipe the benchmark store") {
      for table in [
        "block_keys", "connection_blocks", "line_ids", "line_blocks", "correlation_state", "batches", "cursors",
        "snapshots", "service_names", "pod_names", "endpoint_names", "nodes", "svctrace_migrations",
      ] {
        try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table) CASCADE"), logger: logger)
          .array()
      }
    }
    try await migrate()
  }

  /// The number of connection blocks and the database's size in bytes.
  package func benchmarkSize() async throws -> (blocks: Int, bytes: Int64) {
    try await run("measure the store") {
      let blocks =
        try await client.query("SELECT COUNT(*) FROM connection_blocks", logger: logger).decode(Int64.self).array()
        .first ?? 0
      let bytes =
        try await client.query("SELECT pg_database_size(current_database())", logger: logger).decode(Int64.self)
        .array().first ?? 0
      return (Int(blocks), bytes)
    }
  }

  /// The ids of the first `limit` stored lines, in id order (ids are not dense: each collect
  /// run takes a range of its own).
  package func storedLineIDs(limit: Int) async throws -> [Int64] {
    try await run("read the stored line ids") {
      var ids: [Int64] = []
      for (first, count) in try await client.query(
        "SELECT first_id, count FROM line_blocks ORDER BY first_id", logger: logger
      ).decode((Int64, Int64).self).array() {
        ids += (first..<first + count).prefix(limit - ids.count)
        if ids.count >= limit { break }
      }
      return ids
    }
  }
}
