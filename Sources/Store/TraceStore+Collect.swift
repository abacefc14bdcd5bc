import Foundation
import GRDB
import GRDBSQLite
public import Logs
public import SVCTraceCore

/// What one committed batch added.
public struct CommitSummary: Sendable, Equatable, Codable {
  public var batchID: Int64
  public var lines: Int
  public var skipped: Int
  public var connections: Int
  public var correlation: CorrelationStats
}

/// What one ``TraceStore/collect(from:makeParser:clock:maxBytes:)`` run did for one source.
public struct CollectSummary: Sendable, Equatable {
  public var node: HostID
  public var batches = 0
  public var bytes = 0
  public var transferredBytes = 0
  public var lines = 0
  public var skipped = 0
  public var connections = 0
  public var events: [CaptureEvent] = []

  public init(node: HostID) { self.node = node }
}

extension TraceStore {
  /// The committed cursor of `node`'s `source`, `nil` before its first collect.
  public func cursor(node: HostID, source: String) throws -> SourceCursor? {
    try dbWriter.read { db in try Self.cursor(db, node: node, source: source) }
  }

  static func cursor(_ db: Database, node: HostID, source: String) throws -> SourceCursor? {
    guard
      let row = try Row.fetchOne(
        db,
        sql: """
          SELECT c.inode, c.fingerprint, c.size, c.offset FROM cursors c JOIN nodes n ON n.id = c.node_id
          WHERE n.name = ? AND c.source = ?
          """, arguments: [node.name, source])
    else { return nil }
    let inode: Int64 = row[0]
    let fingerprint: Data = row[1]
    let size: Int64 = row[2]
    let offset: Int64 = row[3]
    return SourceCursor(
      inode: UInt64(bitPattern: inode), fingerprint: [UInt8](fingerprint), size: UInt64(size),
      offset: UInt64(offset))
  }

  /// Pulls `source` until it is caught up, committing each chunk (lines, connections, cursor)
  /// in its own transaction.
  ///
  /// Interrupting it (error, cancellation, kill) loses nothing: the cursor only moves with the
  /// data it covers, and the next run resumes there.
  ///
  /// - Parameters:
  ///   - makeParser: builds a fresh parser (e.g. `{ PacketLineParser() }`).
  ///   - clock: the node's measured clock offset, stored with every batch.
  ///   - maxBytes: the size of one pull (and so of one transaction).
  ///   - progress: called after each committed batch with the running totals.
  /// - Throws: ``CaptureError``, `RemoteError`, `DatabaseError`, `CancellationError`.
  public func collect<Parser: LineParsing>(
    from source: some CaptureSource, makeParser: () -> Parser, clock: ClockOffset, maxBytes: Int = 16 << 20,
    progress: (@Sendable (CollectSummary) -> Void)? = nil
  ) async throws -> CollectSummary {
    var summary = CollectSummary(node: source.node)
    var cursor = try await dbWriter.read { [source] db in
      try Self.cursor(db, node: source.node, source: source.sourceID)
    }
    var parser = makeParser()
    var idlePulls = 0
    while true {
      try Task.checkCancellation()
      let chunk = try await source.pull(after: cursor, maxBytes: maxBytes)
      summary.events += chunk.events
      if chunk.data.isEmpty, chunk.cursor == cursor {
        break
      }
      // A source that keeps moving without data or restarts twice is confused: stop rather
      // than loop (the committed cursor stays valid).
      idlePulls = chunk.data.isEmpty ? idlePulls + 1 : 0
      let restarts = summary.events.filter { $0 == .cursorFileLost }.count
      guard idlePulls < 64, restarts < 2 else {
        throw CaptureError(
          host: source.node, operation: "collect \(source.sourceID)",
          message: "the source made no progress (\(chunk.events.map(\.description).joined(separator: "; ")))")
      }
      let batch = CollectedBatch(
        chunk: chunk, node: source.node, sourceID: source.sourceID, parser: &parser, clock: clock)
      let committed = try await commit(batch)
      summary.batches += 1
      summary.bytes += batch.byteCount
      summary.transferredBytes += batch.transferredBytes
      summary.lines += batch.lineCount
      summary.skipped += batch.skippedCount
      summary.connections += committed.connections
      cursor = batch.cursor
      progress?(summary)
      if chunk.isCaughtUp { break }
    }
    return summary
  }

  /// Commits one batch atomically: its lines, the connections they complete (with the node's
  /// pending lines from earlier batches), the correlator's carry-over and the cursor.
  ///
  /// - Throws: `DatabaseError`; on any error nothing of the batch is stored and the cursor is
  ///   unchanged.
  @discardableResult
  public func commit(_ batch: CollectedBatch) throws -> CommitSummary {
    try commit(batch, faultInjection: nil)
  }

  /// ``commit(_:)`` with a test hook called inside the transaction just before the cursor is
  /// written.
  func commit(_ batch: CollectedBatch, faultInjection: (@Sendable () throws -> Void)?) throws -> CommitSummary {
    let settings = correlation
    return try dbWriter.write { db in
      try Self.commit(batch, settings: settings, faultInjection: faultInjection, db)
    }
  }

  /// ``commit(_:)`` without blocking the caller's thread: the transaction runs on the
  /// database's own queue (what ``collect(from:makeParser:clock:maxBytes:)`` uses).
  @discardableResult
  public func commit(_ batch: CollectedBatch) async throws -> CommitSummary {
    let settings = correlation
    return try await dbWriter.write { db in
      try Self.commit(batch, settings: settings, faultInjection: nil, db)
    }
  }

  /// The body of a batch commit, inside the caller's transaction.
  private static func commit(
    _ batch: CollectedBatch, settings: CorrelationSettings, faultInjection: (@Sendable () throws -> Void)?,
    _ db: Database
  ) throws -> CommitSummary {
    let nodeID = try Self.nodeID(db, batch.node)
    let stored = try Data.fetchOne(
      db, sql: "SELECT state FROM correlation_state WHERE node_id = ?", arguments: [nodeID])
    let state = try stored.map { try CorrelatorState(encoded: [UInt8]($0)) } ?? CorrelatorState()
    var correlator = Correlator(node: batch.node, settings: settings, state: state)

    try db.execute(
      sql: """
        INSERT INTO batches (node_id, source, collected_at, clock_offset_us, clock_bound_us, bytes,
          transferred_bytes, lines, skipped, events)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: [
        nodeID, batch.sourceID, batch.collectedAtMicros, batch.clock.offsetMicros, batch.clock.boundMicros,
        batch.byteCount, batch.transferredBytes, batch.lineCount, batch.skippedCount,
        batch.events.map(\.description).joined(separator: "\n"),
      ])
    let batchID = db.lastInsertedRowID

    // Line ids are assigned here (the write lock is held) so the correlator can name them.
    let firstID = (try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM lines") ?? 0) + 1
    let observations = batch.lines.enumerated().map { index, collected in
      Observation(id: firstID + Int64(index), line: collected.line, clockOffsetMicros: batch.clock.offsetMicros)
    }
    let output = correlator.correlate(observations)
    // This batch's lines have consecutive ids from `firstID`: their outcomes go by index (no
    // per-line hashing); the last outcome reported for a line wins.
    var outcome = [ObservationOutcome](repeating: .pending, count: observations.count)
    for (id, result) in output.outcomes where id >= firstID && id - firstID < Int64(outcome.count) {
      outcome[Int(id - firstID)] = result
    }

    let insertLine = try db.cachedStatement(
      sql: """
        INSERT INTO lines (id, node_id, batch_id, time, stage, proto, src_ip, src_port, dst_ip, dst_port,
          ip_id, len, outcome, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    // Bound column by column (no per-row argument arrays, blobs and text bound in place):
    // this loop runs once per stored line.
    insertLine.setUncheckedArguments(StatementArguments())
    let lineHandle = insertLine.sqliteStatement
    // Blobs and text are bound without a copy: unbind before their buffers go, error or not.
    defer { sqlite3_clear_bindings(lineHandle) }
    sqlite3_bind_int64(lineHandle, 2, nodeID)
    sqlite3_bind_int64(lineHandle, 3, batchID)
    for (observation, collected) in zip(observations, batch.lines) {
      let line = collected.line
      // A stepped statement ignores new bindings until it is reset.
      sqlite3_reset(lineHandle)
      sqlite3_bind_int64(lineHandle, 1, observation.id)
      sqlite3_bind_int64(lineHandle, 4, line.timeMicros)
      sqlite3_bind_int64(lineHandle, 5, Int64(line.stage.rawValue))
      sqlite3_bind_int64(lineHandle, 6, Int64(line.proto))
      sqlite3_bind_int64(lineHandle, 8, Int64(line.sourcePort))
      sqlite3_bind_int64(lineHandle, 10, Int64(line.destinationPort))
      if let ipID = line.ipID {
        sqlite3_bind_int64(lineHandle, 11, Int64(ipID))
      } else {
        sqlite3_bind_null(lineHandle, 11)
      }
      sqlite3_bind_int64(lineHandle, 12, Int64(line.length))
      sqlite3_bind_int64(lineHandle, 13, Int64(outcome[Int(observation.id - firstID)].rawValue))
      var raw = collected.raw
      try line.source.withBlob { source in
        try line.destination.withBlob { destination in
          try raw.withUTF8 { text in
            sqlite3_bind_blob(lineHandle, 7, source.baseAddress, 16, nil)
            sqlite3_bind_blob(lineHandle, 9, destination.baseAddress, 16, nil)
            if let base = text.baseAddress {
              sqlite3_bind_text(
                lineHandle, 14, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), Int32(clamping: text.count),
                nil)
            } else {
              sqlite3_bind_text(lineHandle, 14, "", 0, sqliteTransient)
            }
            try insertLine.execute()
          }
        }
      }
    }
    // Earlier batches' pending lines decided now.
    let updateOutcome = try db.cachedStatement(sql: "UPDATE lines SET outcome = ? WHERE id = ?")
    for (id, result) in output.outcomes where id < firstID {
      try updateOutcome.execute(arguments: [result.rawValue, id])
    }

    let insertConnection = try db.cachedStatement(
      sql: """
        INSERT INTO connections (time, node_id, proto, client_ip, client_port, service_ip, service_port,
          pod_ip, pod_port, method, pre_line_id, post_line_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    insertConnection.setUncheckedArguments(StatementArguments())
    let connectionHandle = insertConnection.sqliteStatement
    defer { sqlite3_clear_bindings(connectionHandle) }
    for connection in output.connections {
      sqlite3_reset(connectionHandle)
      sqlite3_bind_int64(connectionHandle, 1, connection.timeMicros)
      sqlite3_bind_int64(connectionHandle, 2, nodeID)
      sqlite3_bind_int64(connectionHandle, 3, Int64(connection.proto))
      sqlite3_bind_int64(connectionHandle, 5, Int64(connection.clientPort))
      sqlite3_bind_int64(connectionHandle, 7, Int64(connection.servicePort))
      sqlite3_bind_int64(connectionHandle, 9, Int64(connection.podPort))
      sqlite3_bind_int64(connectionHandle, 10, Int64(connection.method.rawValue))
      sqlite3_bind_int64(connectionHandle, 11, connection.preID)
      sqlite3_bind_int64(connectionHandle, 12, connection.postID)
      try connection.client.withBlob { client in
        try connection.service.withBlob { service in
          try connection.pod.withBlob { pod in
            sqlite3_bind_blob(connectionHandle, 4, client.baseAddress, 16, nil)
            sqlite3_bind_blob(connectionHandle, 6, service.baseAddress, 16, nil)
            sqlite3_bind_blob(connectionHandle, 8, pod.baseAddress, 16, nil)
            try insertConnection.execute()
          }
        }
      }
    }
    // Connections of earlier batches whose retransmitted first packet was DNATed again.
    let redispatch = try db.cachedStatement(
      sql: """
        UPDATE connections SET pod_ip = ?, pod_port = ?, post_line_id = ?, method = ?
        WHERE client_ip = ? AND client_port = ? AND pre_line_id = ?
        """)
    for change in output.redispatches {
      try redispatch.execute(arguments: [
        change.pod.blob, Int64(change.podPort), change.postID, Int64(MatchMethod.reDNAT.rawValue),
        change.client.blob, Int64(change.clientPort), change.preID,
      ])
    }
    try db.execute(
      sql: "UPDATE batches SET connections = ? WHERE id = ?", arguments: [output.connections.count, batchID])
    try db.execute(
      sql: "INSERT OR REPLACE INTO correlation_state (node_id, state) VALUES (?, ?)",
      arguments: [nodeID, Data(correlator.state.encoded())])

    try faultInjection?()
    try db.execute(
      sql: """
        INSERT OR REPLACE INTO cursors (node_id, source, inode, fingerprint, size, offset, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: [
        nodeID, batch.sourceID, Int64(bitPattern: batch.cursor.inode), Data(batch.cursor.fingerprint),
        Int64(clamping: batch.cursor.size), Int64(clamping: batch.cursor.offset), batch.collectedAtMicros,
      ])
    return CommitSummary(
      batchID: batchID, lines: batch.lines.count, skipped: batch.skippedCount,
      connections: output.connections.count, correlation: output.stats)
  }

  /// The id of `node`'s row, inserting it on first sight.
  static func nodeID(_ db: Database, _ node: HostID) throws -> Int64 {
    if let id = try Int64.fetchOne(db, sql: "SELECT id FROM nodes WHERE name = ?", arguments: [node.name]) {
      return id
    }
    try db.execute(sql: "INSERT INTO nodes (name) VALUES (?)", arguments: [node.name])
    return db.lastInsertedRowID
  }

  /// What ``prune(olderThan:)`` removed.
  public struct PruneSummary: Sendable, Equatable, Codable {
    public var connections = 0
    public var lines = 0
    public var batches = 0
    public var snapshots = 0
    public var names = 0
  }

  /// Deletes connections, lines, batches, snapshots and name rows older than `cutoffMicros`
  /// (µs since the epoch). Pending pre lines are kept; the newest snapshot is always kept, and
  /// name rows still valid at the cutoff are kept so later connections keep resolving.
  ///
  /// - Throws: `DatabaseError`.
  @discardableResult
  public func prune(olderThan cutoffMicros: Int64) throws -> PruneSummary {
    try dbWriter.write { db in
      var summary = PruneSummary()
      try db.execute(sql: "DELETE FROM connections WHERE time < ?", arguments: [cutoffMicros])
      summary.connections = db.changesCount
      try db.execute(sql: "DELETE FROM lines WHERE time < ? AND outcome <> 0", arguments: [cutoffMicros])
      summary.lines = db.changesCount
      try db.execute(sql: "DELETE FROM batches WHERE collected_at < ?", arguments: [cutoffMicros])
      summary.batches = db.changesCount
      try db.execute(
        sql:
          "DELETE FROM snapshots WHERE taken_at < ? AND id <> (SELECT id FROM snapshots ORDER BY taken_at DESC LIMIT 1)",
        arguments: [cutoffMicros])
      summary.snapshots = db.changesCount
      for table in ["service_names", "pod_names", "endpoint_names"] {
        try db.execute(
          sql: "DELETE FROM \(table) WHERE valid_to IS NOT NULL AND valid_to < ?", arguments: [cutoffMicros])
        summary.names += db.changesCount
      }
      return summary
    }
  }
}

extension IPAddress {
  /// Calls `body` with the 16-byte network-order form (as ``blob``) in a stack buffer.
  func withBlob<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { try body($0) }
  }
}

/// SQLite's `SQLITE_TRANSIENT` destructor (the C macro is not imported): SQLite copies the value.
private let sqliteTransient = unsafeBitCast(Int(-1), to: sqlite3_destructor_type.self)
