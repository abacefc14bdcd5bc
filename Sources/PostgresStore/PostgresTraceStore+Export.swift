import Foundation
package import Logs
import NIOCore
import PostgresNIO
package import SVCTraceCore
package import Store

extension PostgresTraceStore: StoreExporting {
  package func exportBatches(node: HostID, source: String, afterID: Int64, limit: Int) async throws
    -> [ExportedBatch]
  {
    try await reading("read the batches of \(node) \(source)") { db in
      let rows = try await db.rows(
        """
        SELECT b.id, b.kind, b.collected_at, b.clock_offset_us, b.clock_bound_us, b.bytes, b.transferred_bytes,
          b.lines, b.skipped
        FROM batches b JOIN nodes n ON n.id = b.node_id
        WHERE n.name = \(node.name) AND b.source = \(source) AND b.id > \(afterID) ORDER BY b.id LIMIT \(Int64(limit))
        """, logger
      ).decode((Int64, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self).array()
      var batches: [ExportedBatch] = []
      for row in rows {
        var batch = ExportedBatch(
          id: row.0, node: node, sourceID: source, kind: row.1, collectedAtMicros: row.2,
          clock: ClockOffset(offsetMicros: row.3, boundMicros: row.4), byteCount: Int(row.5),
          transferredBytes: Int(row.6), lineCount: Int(row.7), skippedCount: Int(row.8), firstLineID: nil, times: [],
          ends: [], text: [], reported: [])
        if let block = try await db.rows(
          "SELECT first_id, times, ends, raw FROM line_blocks WHERE batch_id = \(row.0) ORDER BY first_id LIMIT 1",
          logger
        ).decode((Int64, ByteBuffer, ByteBuffer, ByteBuffer).self).array().first {
          batch.firstLineID = block.0
          batch.times = block.1.bytes
          batch.ends = block.2.bytes
          batch.text = block.3.bytes
        }
        for block in try await db.rows(
          "SELECT id FROM connection_blocks WHERE batch_id = \(row.0) ORDER BY id", logger
        ).decode(Int64.self).array() {
          batch.reported += try await Self.connectionBlock(block, db, logger).filter {
            $0.method == MatchMethod.reportedBySource.rawValue
          }
        }
        batches.append(batch)
      }
      return batches
    }
  }

  package func exportSnapshots() async throws -> [ExportedSnapshot] {
    try await reading("read the snapshots") { db in
      try await db.rows("SELECT taken_at, source, json FROM snapshots ORDER BY taken_at, id", logger)
        .decode((Int64, String, String).self).array().map {
          ExportedSnapshot(takenAtMicros: $0.0, source: $0.1, json: $0.2)
        }
    }
  }

  package func exportCursor(node: HostID, source: String) async throws -> SourceCursor? {
    try await cursor(node: node, source: source)
  }
}
