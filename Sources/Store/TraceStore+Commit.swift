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

  package init(batchID: Int64, lines: Int, skipped: Int, connections: Int, correlation: CorrelationStats) {
    self.batchID = batchID
    self.lines = lines
    self.skipped = skipped
    self.connections = connections
    self.correlation = correlation
  }
}

/// What ``TraceStoring/prune(olderThan:)`` removed.
public struct PruneSummary: Sendable, Equatable, Codable {
  public var connections = 0
  public var lines = 0
  public var batches = 0
  public var snapshots = 0
  public var names = 0

  package init() {}
}

extension TraceStore: FaultInjectableStore {
  /// The committed cursor of `node`'s `source`, `nil` before its first collect.
  public func cursor(node: HostID, source: String) throws -> SourceCursor? {
    try reading("read the cursor of \(node) \(source)") { db in try Self.cursor(db, node: node, source: source) }
  }

  static func cursor(_ db: Database, node: HostID, source: String) throws -> SourceCursor? {
    guard
      let row = try Row.fetchOne(
        db,
        sql: """
          SELECT c.kind, c.state FROM cursors c JOIN nodes n ON n.id = c.node_id WHERE n.name = ? AND c.source = ?
          """, arguments: [node.name, source])
    else { return nil }
    return SourceCursor(kind: row[0], state: [UInt8](row[1] as Data))
  }

  /// Where a collect of `node`'s `source` starts: the committed cursor and the node's correlator
  /// state after its newest batch (replayed when needed), in one read.
  ///
  /// - Throws: ``StoreError`` (a replayed line cannot be read back, a database failure).
  public func ingestStart(node: HostID, source: String) async throws -> IngestStart {
    let (settings, raw, parser) = (correlation, rawSegments, replayParser)
    return try await reading("read where \(node) \(source) continues") { db in
      let cursor = try Self.cursor(db, node: node, source: source)
      let base = try Self.correlationBase(node: node, settings: settings, raw: raw, parser: parser, db)
      return IngestStart(cursor: cursor, base: IngestBase(correlation: base.0, lineFloor: base.1))
    }
  }

  /// A writer of batch text ahead of the commits for one collect run (`nil`: the store keeps
  /// the text in the commit's transaction). Close it when the run ends, failed or not.
  public func makeStaging() -> BatchStaging? {
    rawSegments.map { BatchStaging(writer: $0.makeWriter()) }
  }

  /// Prepares `batch`, pulled after `start`, for ``commit(_:)-(PreparedBatch)`` on the caller's
  /// task (its commit requires `start` to be the stored cursor): its text starts
  /// going to `staging`, and when `base` is given it is correlated against it (with line ids
  /// reserved above its floor) and `base` moves on to the state after it. `storesState`: the
  /// commit stores the correlator state after the batch.
  public func prepare(
    _ batch: CollectedBatch, after start: SourceCursor?, base: inout IngestBase?, storesState: Bool,
    staging: BatchStaging?
  ) -> PreparedBatch {
    let rawWrite = batch.lines.isEmpty ? nil : staging?.writer.append(batch.text)
    var ahead: CorrelatedBatch?
    if var current = base {
      ahead = correlateAhead(batch, base: &current.correlation, floor: current.lineFloor, storesState: storesState)
      base = current
    }
    return PreparedBatch(
      batch: batch, precondition: .continues(from: start), ahead: ahead,
      expectedLastBatch: base?.correlation.lastBatch, rawWrite: rawWrite, staging: staging)
  }

  /// Commits one prepared batch atomically (see ``TraceStoring/commit(_:)``); tells whether
  /// the correlation done ahead was dropped because the node had moved on (another writer).
  ///
  /// - Throws: ``StoreError``; on any error nothing of the batch is stored.
  @discardableResult
  public func commit(_ prepared: PreparedBatch) async throws -> CommitResult {
    try await commit(prepared, faultInjection: nil)
  }

  /// The node's correlator state (replayed up to its newest batch when needed) and the store's
  /// next free line id: where a collect starts correlating ahead.
  static func correlationBase(
    node: HostID, settings: CorrelationSettings, raw: RawSegments?, parser: TraceStore.ReplayParsers,
    _ db: Database
  ) throws -> (CorrelationBase, Int64) {
    let nodeID = try Int64.fetchOne(db, sql: "SELECT id FROM nodes WHERE name = ?", arguments: [node.name])
    let stored = try nodeID.map { try StoredCorrelation.fetch($0, db) } ?? StoredCorrelation()
    let state = try nodeID.map {
      try Self.currentState(node: node, nodeID: $0, stored, settings: settings, raw: raw, parser: parser, db)
    }
    return (CorrelationBase(state: state ?? CorrelatorState(), lastBatch: stored.lastBatch), try Self.nextLineID(db))
  }

  /// Correlates `batch` against `base` with line ids reserved above `floor` (no database
  /// access), and moves `base` on to the state after it.
  func correlateAhead(
    _ batch: CollectedBatch, base: inout CorrelationBase, floor: Int64, storesState: Bool
  ) -> CorrelatedBatch {
    Self.correlate(
      batch, firstID: lineIDs.reserve(batch.lines.count, floor: floor), state: &base.state, settings: correlation,
      storesState: storesState)
  }

  /// Correlates `batch` (its lines numbered from `firstID`) on from `state`, which becomes the
  /// state after it, and prepares what its commit writes: the connection blocks, and the
  /// state encoded when `storesState`.
  package static func correlate(
    _ batch: CollectedBatch, firstID: Int64, state: inout CorrelatorState, settings: CorrelationSettings,
    storesState: Bool
  ) -> CorrelatedBatch {
    // Moved, not copied, into the correlator (`consume`: a second reference to the tables
    // would make the first write copy them all).
    var moved = CorrelatorState()
    swap(&moved, &state)
    var correlator = Correlator(node: batch.node, settings: settings, state: consume moved)
    let output = correlator.correlate(lines: batch.lines, firstID: firstID, clockOffsetMicros: batch.clock.offsetMicros)
    state = correlator.state
    return CorrelatedBatch(
      batch: batch, firstID: firstID, output: output, encodedState: storesState ? state.encoded() : nil,
      blocks: PreparedConnectionBlock.blocks(
        of: storedConnections(
          output.connections, reported: batch.connections, clockOffsetMicros: batch.clock.offsetMicros)
      ))
  }

  /// A node's `correlation_state` row.
  package struct StoredCorrelation {
    /// The encoded state; `nil` without a row.
    package var state: [UInt8]?
    /// The batch the state follows (0: before the first); `nil` without a row.
    package var stateBatch: Int64?
    /// The node's newest batch; `nil` without a row.
    package var lastBatch: Int64?

    package init(state: [UInt8]? = nil, stateBatch: Int64? = nil, lastBatch: Int64? = nil) {
      self.state = state
      self.stateBatch = stateBatch
      self.lastBatch = lastBatch
    }

    static func fetch(_ nodeID: Int64, _ db: Database) throws -> StoredCorrelation {
      guard
        let row = try Row.fetchOne(
          db, sql: "SELECT state, state_batch, last_batch FROM correlation_state WHERE node_id = ?", arguments: [nodeID]
        )
      else { return StoredCorrelation() }
      return StoredCorrelation(state: (row[0] as Data?).map { [UInt8]($0) }, stateBatch: row[1], lastBatch: row[2])
    }

    /// The batches after the state, when there are any.
    package var batchesToReplay: ClosedRange<Int64>? {
      guard let stateBatch, let lastBatch, stateBatch < lastBatch else { return nil }
      return (stateBatch + 1)...lastBatch
    }
  }

  /// The node's correlator state after its newest batch: the stored state, with the batches
  /// committed after it replayed.
  ///
  /// - Throws: ``StoreError`` when a replayed line cannot be read or parsed back,
  ///   `CorrelatorState.DecodingError`, `DatabaseError` (the caller names the operation).
  static func currentState(
    node: HostID, nodeID: Int64, _ stored: StoredCorrelation, settings: CorrelationSettings, raw: RawSegments?,
    parser makeParser: TraceStore.ReplayParsers, _ db: Database
  ) throws -> CorrelatorState {
    let state = try stored.state.map { try CorrelatorState(encoded: $0) } ?? CorrelatorState()
    guard let replay = stored.batchesToReplay else { return state }
    var correlator = Correlator(node: node, settings: settings, state: state)
    var parsers: [String: any LineParsing] = [:]
    let batches = try Row.fetchAll(
      db, sql: "SELECT id, clock_offset_us, kind FROM batches WHERE node_id = ? AND id BETWEEN ? AND ? ORDER BY id",
      arguments: [nodeID, replay.lowerBound, replay.upperBound])
    for batch in batches {
      let batchID: Int64 = batch[0]
      let offset: Int64 = batch[1]
      let kind: String = batch[2]
      // One parser per kind of source, kept across its batches (as the collect kept it).
      var parser = parsers.removeValue(forKey: kind) ?? makeParser(kind)
      defer { parsers[kind] = parser }
      var observations: [Observation] = []
      let blocks = try Row.fetchAll(
        db,
        sql: """
          SELECT b.first_id, b.times, b.ends, b.raw, r.segment, r.offset
          FROM line_blocks b LEFT JOIN line_raw r ON r.first_id = b.first_id
          WHERE b.batch_id = ? ORDER BY b.first_id
          """, arguments: [batchID])
      for block in blocks {
        let first: Int64 = block[0]
        let times = [UInt8](block[1] as Data)
        let ends = [UInt8](block[2] as Data)
        let count = ends.count / 4
        let segment: Int64? = block[4]
        let text =
          try segment.map { segment in
            try Self.segments(raw).read(
              segment: segment, offset: block[5], length: count == 0 ? 0 : Int(Self.uint32(ends, at: count - 1)))
          } ?? [UInt8](block[3] as Data)
        try Self.replayObservations(
          node: node, first: first, times: times, ends: ends, text: text, clockOffsetMicros: offset,
          parser: &parser, into: &observations)
      }
      _ = correlator.correlate(observations)
    }
    return correlator.state
  }

  /// The observations of one stored line block being replayed (its lines parsed again with
  /// `parser`, at their stored times), appended to `observations`.
  ///
  /// - Throws: ``StoreError`` when a stored line no longer parses.
  package static func replayObservations(
    node: HostID, first: Int64, times: [UInt8], ends: [UInt8], text: [UInt8], clockOffsetMicros offset: Int64,
    parser: inout any LineParsing, into observations: inout [Observation]
  ) throws {
    var start = 0
    for entry in 0..<(ends.count / 4) {
      let end = Int(Self.uint32(ends, at: entry))
      let line = text.withUnsafeBufferPointer { bytes in
        let range = CollectedBatch.lineRange(in: UnsafeRawBufferPointer(bytes), from: start, to: end)
        return parser.parse(UnsafeBufferPointer(rebasing: bytes[range]))
      }
      guard var line else {
        throw StoreError(
          operation: "replay line \(first + Int64(entry)) of \(node) to rebuild its correlator state",
          message: "the stored line no longer parses")
      }
      // The time as stored (the parser's year inference may differ today).
      line.timeMicros = times.withUnsafeBytes {
        Int64(littleEndian: $0.loadUnaligned(fromByteOffset: entry * 8, as: Int64.self))
      }
      observations.append(Observation(id: first + Int64(entry), line: line, clockOffsetMicros: offset))
      start = end
    }
  }

  /// A batch's new connections as stored, in time order (the order of their ids), stable: those
  /// its lines completed, then those its source reported whole (their time corrected by the
  /// node's clock offset, as the correlator does for lines; no lines behind them).
  static func storedConnections(
    _ connections: [Connection], reported: [FinishedConnection], clockOffsetMicros: Int64
  ) -> [StoredConnection] {
    let joined = storedConnections(connections)
    guard !reported.isEmpty else { return joined }
    let whole = reported.map {
      StoredConnection(
        slot: 0, timeMicros: $0.timeMicros - clockOffsetMicros, proto: $0.proto, client: $0.client,
        clientPort: $0.clientPort, service: $0.service, servicePort: $0.servicePort, pod: $0.pod, podPort: $0.podPort,
        method: MatchMethod.reportedBySource.rawValue, preID: nil, postID: nil)
    }
    // Stable: lines' connections before reported ones of the same time.
    return (joined + whole).enumerated().sorted {
      ($0.element.timeMicros, $0.offset) < ($1.element.timeMicros, $1.offset)
    }
    .map(\.element)
  }

  /// A batch's connections completed by its lines, as stored: in time order, stable.
  static func storedConnections(_ connections: [Connection]) -> [StoredConnection] {
    // Sorted as small (time, position) pairs, then built in that order: the records are large
    // to move.
    let order = connections.indices.map { (time: connections[$0].timeMicros, index: Int32(truncatingIfNeeded: $0)) }
      .sorted { ($0.time, $0.index) < ($1.time, $1.index) }
    return connections.withUnsafeBufferPointer { connections in
      order.map { position in
        let connection = connections[Int(position.index)]
        return StoredConnection(
          slot: 0, timeMicros: connection.timeMicros, proto: connection.proto, client: connection.client,
          clientPort: connection.clientPort, service: connection.service, servicePort: connection.servicePort,
          pod: connection.pod ?? StoredConnection.noPod, podPort: connection.podPort ?? 0,
          method: connection.method.rawValue,
          preID: connection.preID, postID: connection.postID)
      }
    }
  }

  /// ``commit(_:)`` with a test hook called inside the transaction just before the cursor is
  /// written.
  package func commit(_ prepared: PreparedBatch, faultInjection: (@Sendable () throws -> Void)?) async throws
    -> CommitResult
  {
    let location = try await prepared.rawWrite?.location()
    let raw: RawPlacement = location.map { .written($0) } ?? commitRawWriter.map { .writeNow($0) } ?? .inBlock
    let context = commitContext(raw: raw, faultInjection: faultInjection)
    let (summary, correlatedHere) = try await writing("commit a batch of \(prepared.batch.node)") { db in
      try Self.commit(
        prepared.batch, precondition: prepared.precondition, ahead: prepared.ahead,
        expectedLastBatch: prepared.expectedLastBatch, context, db)
    }
    if let location { prepared.staging?.writer.committed(location, length: prepared.batch.text.count) }
    return CommitResult(summary: summary, reCorrelated: prepared.ahead != nil && correlatedHere)
  }

  /// What a commit needs besides the batch (all `Sendable`, for the writer's queue).
  struct CommitContext: Sendable {
    var settings: CorrelationSettings
    var lineIDs: LineIDAllocator
    var raw: RawPlacement
    var segments: RawSegments?
    var parser: TraceStore.ReplayParsers
    var faultInjection: (@Sendable () throws -> Void)?
  }

  func commitContext(raw: RawPlacement, faultInjection: (@Sendable () throws -> Void)?) -> CommitContext {
    CommitContext(
      settings: correlation, lineIDs: lineIDs, raw: raw, segments: rawSegments, parser: replayParser,
      faultInjection: faultInjection)
  }

  /// Where a committed batch's raw text goes.
  enum RawPlacement: Sendable {
    /// Already written to a raw segment, there.
    case written(RawLocation)
    /// To be appended, inside the transaction, with this writer.
    case writeNow(RawSegmentWriter)
    /// Into the line block's own `raw` column (a store without segment files).
    case inBlock
  }

  /// The body of a batch commit, inside the caller's transaction.
  ///
  /// Uses `ahead`'s correlation when the node's newest stored batch is still `expectedLastBatch`
  /// and its line ids are free; otherwise correlates here, against the node's current state
  /// (replayed when needed), and stores that state. Returns the summary and whether it
  /// correlated here.
  private static func commit(
    _ batch: CollectedBatch, precondition: CursorPrecondition, ahead: CorrelatedBatch?, expectedLastBatch: Int64?,
    _ context: CommitContext, _ db: Database
  ) throws -> (summary: CommitSummary, correlatedHere: Bool) {
    // Compare and swap: the cursor is written at the end of this (immediate) transaction, so no
    // other writer can move it between this check and that write.
    if case .continues(let start) = precondition {
      let stored = try cursor(db, node: batch.node, source: batch.sourceID)
      guard stored == start else {
        throw StoreError(
          operation: "commit a batch of \(batch.node) \(batch.sourceID)", cause: .cursorMoved,
          message: "another collect of \(batch.node) moved the cursor since this batch was pulled")
      }
    }
    let nodeID = try Self.nodeID(db, batch.node)
    let stored = try StoredCorrelation.fetch(nodeID, db)
    let prepared: CorrelatedBatch
    var correlatedHere = false
    if let ahead, stored.lastBatch == expectedLastBatch,
      try lineRangeIsFree(from: ahead.firstID, count: batch.lines.count, db)
    {
      prepared = ahead
    } else {
      var state = try currentState(
        node: batch.node, nodeID: nodeID, stored, settings: context.settings, raw: context.segments,
        parser: context.parser, db)
      // Above every stored line and every range reserved for a batch correlated ahead.
      let firstID = context.lineIDs.reserve(batch.lines.count, floor: try Self.nextLineID(db))
      prepared = correlate(batch, firstID: firstID, state: &state, settings: context.settings, storesState: true)
      correlatedHere = true
    }
    let (firstID, output) = (prepared.firstID, prepared.output)

    try db.execute(
      sql: """
        INSERT INTO batches (node_id, source, kind, collected_at, clock_offset_us, clock_bound_us, bytes,
          transferred_bytes, lines, skipped, events, connections)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: [
        nodeID, batch.sourceID, batch.cursor.kind, batch.collectedAtMicros, batch.clock.offsetMicros,
        batch.clock.boundMicros,
        batch.byteCount, batch.transferredBytes, batch.lineCount, batch.skippedCount,
        batch.events.map(\.description).joined(separator: "\n"), output.connections.count + batch.connections.count,
      ])
    let batchID = db.lastInsertedRowID

    // Text appended to a raw segment here is dropped again if the transaction fails.
    var location: RawLocation?
    var appendedHere: RawSegmentWriter?
    var done = false
    defer {
      if let appendedHere, let location {
        if done { appendedHere.committed(location, length: batch.text.count) } else { appendedHere.discard(location) }
      }
    }
    if !batch.lines.isEmpty {
      switch context.raw {
      case .written(let written): location = written
      case .writeNow(let writer):
        location = try batch.text.withUnsafeBytes { try writer.appendNow($0) }
        appendedHere = writer
      case .inBlock: break
      }
    }
    try insertLineBlock(
      batch, firstID: firstID, nodeID: nodeID, batchID: batchID, outcomes: output.outcomes, raw: location, db)
    // Earlier batches' pending lines decided now.
    try updateOutcomes(output.outcomes.filter { $0.id < firstID }, db)

    // The batch's connections become one block (ids in time order), and connections of earlier
    // batches whose retransmitted first packet was DNATed again are rewritten in their blocks.
    try insertConnectionBlocks(prepared.blocks, nodeID: nodeID, batchID: batchID, db)
    for change in output.redispatches {
      try applyRedispatch(change, nodeID: nodeID, db)
    }
    if let encodedState = prepared.encodedState {
      try db.execute(
        sql: "INSERT OR REPLACE INTO correlation_state (node_id, state, state_batch, last_batch) VALUES (?, ?, ?, ?)",
        arguments: [nodeID, Data(encodedState), batchID, batchID])
    } else if stored.state != nil {
      // The stored state stays; this batch is replayed onto it when needed.
      try db.execute(
        sql: "UPDATE correlation_state SET last_batch = ? WHERE node_id = ?", arguments: [batchID, nodeID])
    } else {
      try db.execute(
        sql: "INSERT INTO correlation_state (node_id, state, state_batch, last_batch) VALUES (?, ?, 0, ?)",
        arguments: [nodeID, Data(CorrelatorState().encoded()), batchID])
    }

    try context.faultInjection?()
    try db.execute(
      sql: """
        INSERT OR REPLACE INTO cursors (node_id, source, kind, state, updated_at) VALUES (?, ?, ?, ?, ?)
        """,
      arguments: [nodeID, batch.sourceID, batch.cursor.kind, Data(batch.cursor.state), batch.collectedAtMicros])
    let summary = CommitSummary(
      batchID: batchID, lines: batch.lines.count, skipped: batch.skippedCount,
      connections: output.connections.count + batch.connections.count, correlation: output.stats)
    done = true
    return (summary, correlatedHere)
  }

  /// `true` when no stored line has an id in `first ..< first + count`.
  static func lineRangeIsFree(from first: Int64, count: Int, _ db: Database) throws -> Bool {
    guard count > 0 else { return true }
    let end = first + Int64(count)
    // Blocks never overlap: only the last one starting below `end` can reach into the range.
    guard
      let row = try Row.fetchOne(
        db, sql: "SELECT first_id, count FROM line_blocks WHERE first_id < ? ORDER BY first_id DESC LIMIT 1",
        arguments: [end])
    else { return true }
    return (row[0] as Int64) + (row[1] as Int64) <= first
  }

  /// The id the next stored line gets: after the last line of the newest block.
  static func nextLineID(_ db: Database) throws -> Int64 {
    let last = try Int64.fetchOne(
      db, sql: "SELECT first_id + count - 1 FROM line_blocks ORDER BY first_id DESC LIMIT 1")
    return (last ?? 0) + 1
  }

  /// Stores the batch's lines as one block, with the outcomes the correlator gave them (the
  /// last outcome reported for a line wins); their text is at `raw` in a raw segment, or, without
  /// one, in the block's own `raw` column.
  private static func insertLineBlock(
    _ batch: CollectedBatch, firstID: Int64, nodeID: Int64, batchID: Int64,
    outcomes: [(id: Int64, outcome: ObservationOutcome)], raw: RawLocation?, _ db: Database
  ) throws {
    guard !batch.lines.isEmpty else { return }
    if let raw {
      try db.execute(
        sql: "INSERT INTO line_raw (first_id, segment, offset) VALUES (?, ?, ?)",
        arguments: [firstID, raw.segment, raw.offset])
    }
    let flags = lineFlags(batch, firstID: firstID, outcomes: outcomes)
    // Little-endian columns: the arrays as they are in memory on little-endian machines.
    let times = Int64(1).littleEndian == 1 ? batch.lineTimes : batch.lineTimes.map { $0.littleEndian }
    let ends = UInt32(1).littleEndian == 1 ? batch.lineEnds : batch.lineEnds.map { $0.littleEndian }
    let insert = try db.cachedStatement(
      sql: """
        INSERT INTO line_blocks (first_id, node_id, batch_id, count, last_time, pending, times, flags, ends, raw)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    insert.setUncheckedArguments([
      firstID, nodeID, batchID, batch.lines.count, batch.lineTimes.max(),
      flags.count { $0 & 0x0F == ObservationOutcome.pending.rawValue },
    ])
    // The blobs are bound in place (SQLITE_STATIC): the batch text is megabytes, and each copy
    // of it costs as much as SQLite's own write of it.
    let handle = insert.sqliteStatement
    defer { sqlite3_clear_bindings(handle) }
    try times.withUnsafeBytes { times in
      try flags.withUnsafeBytes { flags in
        try ends.withUnsafeBytes { ends in
          try (raw == nil ? batch.text : []).withUnsafeBytes { text in
            for (index, blob) in [(7, times), (8, flags), (9, ends), (10, text)] {
              // A zero-length blob, not NULL, for an empty buffer.
              sqlite3_bind_blob(
                handle, Int32(index), blob.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(blob.count), nil)
            }
            try insert.execute()
          }
        }
      }
    }
  }

  /// The `flags` column of a batch's line block: per line, stage << 4 | the outcome the
  /// correlator gave it (the last one reported wins).
  package static func lineFlags(
    _ batch: CollectedBatch, firstID: Int64, outcomes: [(id: Int64, outcome: ObservationOutcome)]
  ) -> [UInt8] {
    var flags = batch.lineStages.map { $0 << 4 }
    for (id, result) in outcomes where id >= firstID && id - firstID < Int64(flags.count) {
      let index = Int(id - firstID)
      flags[index] = flags[index] & 0xF0 | result.rawValue
    }
    return flags
  }

  /// Records the outcome of lines stored by earlier batches (pending pre lines that matched or
  /// expired now): one read and one write per block touched.
  private static func updateOutcomes(_ outcomes: [(id: Int64, outcome: ObservationOutcome)], _ db: Database) throws {
    guard !outcomes.isEmpty else { return }
    var last: [Int64: ObservationOutcome] = [:]
    for (id, outcome) in outcomes { last[id] = outcome }
    let decided = last.sorted { $0.key < $1.key }
    var index = 0
    while index < decided.count {
      let id = decided[index].key
      guard
        let block = try Row.fetchOne(
          db, sql: "SELECT first_id, count, flags FROM line_blocks WHERE first_id <= ? ORDER BY first_id DESC LIMIT 1",
          arguments: [id]),
        id < (block[0] as Int64) + (block[1] as Int64)
      else {
        // Not a stored line (pruned meanwhile): nothing to record.
        index += 1
        continue
      }
      let first: Int64 = block[0]
      let count: Int64 = block[1]
      var flags = [UInt8](block[2] as Data)
      while index < decided.count, decided[index].key < first + count {
        let entry = Int(decided[index].key - first)
        if entry < flags.count { flags[entry] = flags[entry] & 0xF0 | decided[index].value.rawValue }
        index += 1
      }
      try db.execute(
        sql: "UPDATE line_blocks SET flags = ?, pending = ? WHERE first_id = ?",
        arguments: [Data(flags), flags.count { $0 & 0x0F == ObservationOutcome.pending.rawValue }, first])
    }
  }

  /// The id of `node`'s row, inserting it on first sight.
  static func nodeID(_ db: Database, _ node: HostID) throws -> Int64 {
    if let id = try Int64.fetchOne(db, sql: "SELECT id FROM nodes WHERE name = ?", arguments: [node.name]) {
      return id
    }
    try db.execute(sql: "INSERT INTO nodes (name) VALUES (?)", arguments: [node.name])
    return db.lastInsertedRowID
  }

  public typealias PruneSummary = Store.PruneSummary

  /// Deletes connections, lines, batches, snapshots and name rows older than `cutoffMicros`
  /// (µs since the epoch). Pending pre lines are kept; the newest snapshot is always kept, and
  /// name rows still valid at the cutoff are kept so later connections keep resolving.
  ///
  /// Connection blocks whose connections are all older go entirely; a block straddling the
  /// cutoff is rewritten with only its newer connections, which keep their ids.
  ///
  /// Raw segment files no line block refers to any more (and no collect is writing) are
  /// deleted once the pruning transaction has committed.
  ///
  /// - Throws: ``StoreError``.
  @discardableResult
  public func prune(olderThan cutoffMicros: Int64) throws -> PruneSummary {
    let summary = try pruneRows(olderThan: cutoffMicros)
    try rawSegments?.deleteUnreferenced {
      try reading("list the raw segments in use") { db in
        Set(try Int64.fetchAll(db, sql: "SELECT DISTINCT segment FROM line_raw"))
      }
    }
    return summary
  }

  /// SQL condition: the `line_blocks` row belongs to a batch after its node's stored correlator
  /// state (replayed by the next collect).
  static let replayedBlock = """
    EXISTS (SELECT 1 FROM correlation_state s WHERE s.node_id = line_blocks.node_id
      AND line_blocks.batch_id > s.state_batch)
    """

  /// The database part of ``prune(olderThan:)``, in one transaction.
  private func pruneRows(olderThan cutoffMicros: Int64) throws -> PruneSummary {
    try writing("prune the store") { db in
      var summary = PruneSummary()
      summary.connections = try Self.pruneConnectionBlocks(olderThan: cutoffMicros, db)
      // A block goes as a whole once all its lines are old and none is still pending.
      summary.lines =
        try Int.fetchOne(
          db,
          sql:
            "SELECT IFNULL(SUM(count), 0) FROM line_blocks WHERE last_time < ? AND pending = 0 AND NOT \(Self.replayedBlock)",
          arguments: [cutoffMicros]) ?? 0
      // Batches committed after a node's stored correlator state are kept (lines and rows):
      // the next collect replays them.
      try db.execute(
        sql: "DELETE FROM line_blocks WHERE last_time < ? AND pending = 0 AND NOT \(Self.replayedBlock)",
        arguments: [cutoffMicros])
      try db.execute(sql: "DELETE FROM line_raw WHERE first_id NOT IN (SELECT first_id FROM line_blocks)")
      try db.execute(
        sql: """
          DELETE FROM batches WHERE collected_at < ? AND NOT EXISTS (SELECT 1 FROM correlation_state s
            WHERE s.node_id = batches.node_id AND batches.id > s.state_batch)
          """, arguments: [cutoffMicros])
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
      try db.execute(sql: "DELETE FROM loss_intervals WHERE until_time < ?", arguments: [cutoffMicros])
      return summary
    }
  }
}
