import Foundation
import GRDB
package import Logs
package import SVCTraceCore

/// One stored batch as `svctrace store copy` reads it out of a store: its row, its line block
/// (text, times, line ends) and the connections its source reported whole.
package struct ExportedBatch: Sendable {
  package var id: Int64
  package var node: HostID
  package var sourceID: String
  package var kind: String
  package var collectedAtMicros: Int64
  package var clock: ClockOffset
  package var byteCount: Int
  package var transferredBytes: Int
  package var lineCount: Int
  package var skippedCount: Int
  /// The id of the first line of the block (`nil`: no lines).
  package var firstLineID: Int64?
  package var times: [UInt8]
  package var ends: [UInt8]
  package var text: [UInt8]
  /// Connections of the batch's blocks its source reported (no lines behind them).
  package var reported: [StoredConnection]

  package init(
    id: Int64, node: HostID, sourceID: String, kind: String, collectedAtMicros: Int64, clock: ClockOffset,
    byteCount: Int, transferredBytes: Int, lineCount: Int, skippedCount: Int, firstLineID: Int64?, times: [UInt8],
    ends: [UInt8], text: [UInt8], reported: [StoredConnection]
  ) {
    self.id = id
    self.node = node
    self.sourceID = sourceID
    self.kind = kind
    self.collectedAtMicros = collectedAtMicros
    self.clock = clock
    self.byteCount = byteCount
    self.transferredBytes = transferredBytes
    self.lineCount = lineCount
    self.skippedCount = skippedCount
    self.firstLineID = firstLineID
    self.times = times
    self.ends = ends
    self.text = text
    self.reported = reported
  }

  /// The batch as collected again, with `cursor`: its lines parsed again with `parser` at
  /// their stored times, its reported connections back at node-clock time.
  ///
  /// - Throws: ``StoreError`` when a stored line no longer parses.
  package func collected(cursor: SourceCursor, parser: inout any LineParsing) throws -> CollectedBatch {
    var observations: [Observation] = []
    if let firstLineID {
      try TraceStore.replayObservations(
        node: node, first: firstLineID, times: times, ends: ends, text: text, clockOffsetMicros: clock.offsetMicros,
        parser: &parser, into: &observations)
    }
    let lineEnds = (0..<(ends.count / 4)).map { TraceStore.uint32(ends, at: $0) }
    var batch = CollectedBatch(
      node: node, sourceID: sourceID, cursor: cursor, lines: observations.map(\.line), text: text, lineEnds: lineEnds,
      byteCount: byteCount, transferredBytes: transferredBytes, lineCount: lineCount, skippedCount: skippedCount,
      clock: clock, collectedAtMicros: collectedAtMicros, isCaughtUp: false, events: [])
    batch.connections = reported.map {
      FinishedConnection(
        timeMicros: $0.timeMicros + clock.offsetMicros, proto: $0.proto, client: $0.client, clientPort: $0.clientPort,
        service: $0.service, servicePort: $0.servicePort, pod: $0.pod, podPort: $0.podPort)
    }
    return batch
  }
}

/// A stored cluster snapshot, as stored (already trimmed).
package struct ExportedSnapshot: Sendable, Equatable {
  package var takenAtMicros: Int64
  package var source: String
  package var json: String

  package init(takenAtMicros: Int64, source: String, json: String) {
    self.takenAtMicros = takenAtMicros
    self.source = source
    self.json = json
  }
}

/// A store `svctrace store copy` can read everything out of, batch by batch.
package protocol StoreExporting: TraceStoring {
  /// `node`'s batches of `source` with an id above `afterID`, oldest first, at most `limit`.
  func exportBatches(node: HostID, source: String, afterID: Int64, limit: Int) async throws -> [ExportedBatch]
  /// Every stored snapshot, oldest first.
  func exportSnapshots() async throws -> [ExportedSnapshot]
  /// The committed cursor of `node`'s `source`.
  func exportCursor(node: HostID, source: String) async throws -> SourceCursor?
}

extension TraceStore: StoreExporting {
  package func exportBatches(node: HostID, source: String, afterID: Int64, limit: Int) throws -> [ExportedBatch] {
    let raw = rawSegments
    return try reading("read the batches of \(node) \(source)") { db in
      let rows = try Row.fetchAll(
        db,
        sql: """
          SELECT b.id, b.kind, b.collected_at, b.clock_offset_us, b.clock_bound_us, b.bytes, b.transferred_bytes,
            b.lines, b.skipped
          FROM batches b JOIN nodes n ON n.id = b.node_id
          WHERE n.name = ? AND b.source = ? AND b.id > ? ORDER BY b.id LIMIT ?
          """, arguments: [node.name, source, afterID, limit])
      return try rows.map { row in
        let id: Int64 = row[0]
        var batch = ExportedBatch(
          id: id, node: node, sourceID: source, kind: row[1], collectedAtMicros: row[2],
          clock: ClockOffset(offsetMicros: row[3], boundMicros: row[4]), byteCount: row[5], transferredBytes: row[6],
          lineCount: row[7], skippedCount: row[8], firstLineID: nil, times: [], ends: [], text: [], reported: [])
        if let block = try Row.fetchOne(
          db,
          sql: """
            SELECT b.first_id, b.times, b.ends, b.raw, r.segment, r.offset
            FROM line_blocks b LEFT JOIN line_raw r ON r.first_id = b.first_id WHERE b.batch_id = ?
            ORDER BY b.first_id LIMIT 1
            """, arguments: [id])
        {
          batch.firstLineID = block[0]
          batch.times = [UInt8](block[1] as Data)
          batch.ends = [UInt8](block[2] as Data)
          let count = batch.ends.count / 4
          let segment: Int64? = block[4]
          batch.text =
            try segment.map { segment in
              try Self.segments(raw).read(
                segment: segment, offset: block[5],
                length: count == 0 ? 0 : Int(Self.uint32(batch.ends, at: count - 1)))
            } ?? [UInt8](block[3] as Data)
        }
        for block in try Int64.fetchAll(
          db, sql: "SELECT id FROM connection_blocks WHERE batch_id = ? ORDER BY id", arguments: [id])
        {
          batch.reported += try Self.connectionBlock(block, db).filter {
            $0.method == MatchMethod.reportedBySource.rawValue
          }
        }
        return batch
      }
    }
  }

  package func exportSnapshots() throws -> [ExportedSnapshot] {
    try reading("read the snapshots") { db in
      try Row.fetchAll(db, sql: "SELECT taken_at, source, json FROM snapshots ORDER BY taken_at, id").map {
        ExportedSnapshot(takenAtMicros: $0[0], source: $0[1], json: $0[2])
      }
    }
  }

  package func exportCursor(node: HostID, source: String) throws -> SourceCursor? {
    try cursor(node: node, source: source)
  }
}
