import Foundation
import Logging
public import Logs
import NIOCore
import PostgresNIO
public import SVCTraceCore
public import Store

/// Runs queries: the pool (one statement on any connection) or one connection (in a transaction).
protocol Querying {
  func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> PostgresRowSequence
}

extension PostgresClient: Querying {
  func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> PostgresRowSequence {
    try await self.query(query, logger: logger)
  }
}

extension PostgresConnection: Querying {
  func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> PostgresRowSequence {
    try await self.query(query, logger: logger)
  }
}

extension AsyncSequence {
  /// Every element, in order.
  @discardableResult
  func array() async throws -> [Element] {
    var elements: [Element] = []
    for try await element in self { elements.append(element) }
    return elements
  }
}

extension PostgresTraceStore {
  // MARK: Ingest

  /// Where a collect of `node`'s `source` starts: the committed cursor and the node's correlator
  /// state after its newest batch (replayed when needed), read in one snapshot.
  ///
  /// - Throws: ``StoreError`` (a replayed line no longer parses, a database failure).
  public func ingestStart(node: HostID, source: String) async throws -> IngestStart {
    let start = try await run("read where \(node) \(source) continues") {
      try await client.withTransaction(logger: logger) { connection in
        try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
        let cursor = try await Self.cursor(connection, node: node, source: source, logger)
        let nodeID = try await Self.nodeID(connection, existing: node, logger)
        let stored = try await nodeID.asyncMap { try await Self.storedCorrelation(connection, nodeID: $0, logger) }
        let state = try await nodeID.asyncMap { nodeID in
          try await self.currentState(connection, node: node, nodeID: nodeID, stored ?? .init())
        }
        let floor = try await Self.nextLineID(connection, logger)
        return IngestStart(
          cursor: cursor,
          base: IngestBase(
            correlation: CorrelationBase(state: state ?? CorrelatorState(), lastBatch: stored?.lastBatch),
            lineFloor: floor))
      }
    }
    // After the snapshot: a range reserved now lies above every line of the node it saw.
    try await run("reserve line ids for \(node)") {
      try await reserveLineIDs(for: node, lastBatch: start.base.lastBatch)
    }
    return start
  }

  /// The committed cursor of `node`'s `source`, `nil` before its first collect.
  public func cursor(node: HostID, source: String) async throws -> SourceCursor? {
    try await run("read the cursor of \(node) \(source)") {
      try await Self.cursor(client, node: node, source: source, logger)
    }
  }

  static func cursor(_ db: some Querying, node: HostID, source: String, _ logger: Logger) async throws
    -> SourceCursor?
  {
    let rows = try await db.rows(
      """
      SELECT c.kind, c.state FROM cursors c JOIN nodes n ON n.id = c.node_id
      WHERE n.name = \(node.name) AND c.source = \(source)
      """, logger
    ).decode((String, ByteBuffer).self).array()
    return rows.first.map { SourceCursor(kind: $0.0, state: $0.1.bytes) }
  }

  /// The id of `node`'s row, `nil` before its first batch.
  static func nodeID(_ db: some Querying, existing node: HostID, _ logger: Logger) async throws -> Int64? {
    try await db.rows("SELECT id FROM nodes WHERE name = \(node.name)", logger).decode(Int64.self).array().first
  }

  /// The id of `node`'s row, inserting it on first sight.
  static func nodeID(_ db: some Querying, inserting node: HostID, _ logger: Logger) async throws -> Int64 {
    if let id = try await nodeID(db, existing: node, logger) { return id }
    try await db.rows("INSERT INTO nodes (name) VALUES (\(node.name)) ON CONFLICT (name) DO NOTHING", logger).array()
    guard let id = try await nodeID(db, existing: node, logger) else {
      throw StoreError(operation: "add the node \(node)", message: "its row is missing after the insert")
    }
    return id
  }

  static func storedCorrelation(_ db: some Querying, nodeID: Int64, _ logger: Logger) async throws
    -> TraceStore.StoredCorrelation
  {
    let rows = try await db.rows(
      "SELECT state, state_batch, last_batch FROM correlation_state WHERE node_id = \(nodeID)", logger
    ).decode((ByteBuffer, Int64, Int64).self).array()
    guard let row = rows.first else { return TraceStore.StoredCorrelation() }
    return TraceStore.StoredCorrelation(state: row.0.bytes, stateBatch: row.1, lastBatch: row.2)
  }

  /// The id the next stored line gets (the counter; ids claimed by failed commits stay unused).
  static func nextLineID(_ db: some Querying, _ logger: Logger) async throws -> Int64 {
    try await db.rows("SELECT next FROM line_ids", logger).decode(Int64.self).array().first ?? 1
  }

  /// The node's correlator state after its newest batch: the stored state, with the batches
  /// committed after it replayed (their lines parsed again).
  func currentState(
    _ db: some Querying, node: HostID, nodeID: Int64, _ stored: TraceStore.StoredCorrelation
  ) async throws -> CorrelatorState {
    let state: CorrelatorState
    do {
      state = try stored.state.map { try CorrelatorState(encoded: $0) } ?? CorrelatorState()
    } catch {
      throw StoreError(operation: "read the correlator state of \(node)", message: "\(error)")
    }
    guard let replay = stored.batchesToReplay else { return state }
    var correlator = Correlator(node: node, settings: correlation, state: state)
    var parsers: [String: any LineParsing] = [:]
    let batches = try await db.rows(
      """
      SELECT id, clock_offset_us, kind FROM batches WHERE node_id = \(nodeID)
        AND id BETWEEN \(replay.lowerBound) AND \(replay.upperBound) ORDER BY id
      """, logger
    ).decode((Int64, Int64, String).self).array()
    for (batchID, offset, kind) in batches {
      var parser = parsers.removeValue(forKey: kind) ?? replayParser(kind)
      defer { parsers[kind] = parser }
      var observations: [Observation] = []
      let blocks = try await db.rows(
        "SELECT first_id, times, ends, raw FROM line_blocks WHERE batch_id = \(batchID) ORDER BY first_id", logger
      ).decode((Int64, ByteBuffer, ByteBuffer, ByteBuffer).self).array()
      for (first, times, ends, raw) in blocks {
        try TraceStore.replayObservations(
          node: node, first: first, times: times.bytes, ends: ends.bytes, text: raw.bytes, clockOffsetMicros: offset,
          parser: &parser, into: &observations)
      }
      _ = correlator.correlate(observations)
    }
    return correlator.state
  }

  /// No staging: the text of a batch goes into the database with its commit.
  public func makeStaging() -> BatchStaging? { nil }

  /// Prepares `batch`, pulled after `start`, for ``commit(_:)`` on the caller's task: when
  /// `base` is given it is correlated against it, with line ids of the node's range that this
  /// store reserved in the database (see ``reserveLineIDs(for:lastBatch:)``), and `base` moves
  /// on to the state after it. Should the range have no room left, `base` becomes `nil`: this
  /// batch and the rest of the run are correlated in their commits.
  public func prepare(
    _ batch: CollectedBatch, after start: SourceCursor?, base: inout IngestBase?, storesState: Bool,
    staging: BatchStaging?
  ) -> PreparedBatch {
    var ahead: CorrelatedBatch?
    if var current = base {
      if let first = takeReservedLineIDs(batch.lines.count, node: batch.node) {
        ahead = TraceStore.correlate(
          batch, firstID: first, state: &current.correlation.state, settings: correlation, storesState: storesState)
        base = current
      } else {
        base = nil
      }
    }
    return PreparedBatch(
      batch: batch, precondition: .continues(from: start), ahead: ahead,
      expectedLastBatch: base?.correlation.lastBatch)
  }

  /// Commits one prepared batch atomically (see ``TraceStoring/commit(_:)``).
  ///
  /// - Throws: ``StoreError``; on any error nothing of the batch is stored.
  @discardableResult
  public func commit(_ prepared: PreparedBatch) async throws -> CommitResult {
    try await commit(prepared, faultInjection: nil)
  }

  /// ``commit(_:)`` with a test hook called inside the transaction just before the cursor is
  /// written.
  package func commit(_ prepared: PreparedBatch, faultInjection: (@Sendable () throws -> Void)?) async throws
    -> CommitResult
  {
    try await commit(prepared, faultInjection: faultInjection, beforeCommit: nil)
  }

  /// ``commit(_:faultInjection:)`` with a second test hook, awaited inside the transaction after
  /// everything is written, just before it commits (a test holds a commit open with it).
  package func commit(
    _ prepared: PreparedBatch, faultInjection: (@Sendable () throws -> Void)?,
    beforeCommit: (@Sendable () async -> Void)?
  ) async throws -> CommitResult {
    let batch = prepared.batch
    let count = Int64(batch.lines.count)
    return try await run("commit a batch of \(batch.node)") {
      func attempt(firstID: Int64, mayUseAhead: Bool) async throws -> (CommitSummary, Bool) {
        try await client.withTransaction(logger: logger) { connection in
          let result = try await commitBody(
            prepared, firstID: firstID, mayUseAhead: mayUseAhead, faultInjection: faultInjection, connection)
          await beforeCommit?()
          return result
        }
      }
      // Ids prepared ahead are the store's own (a reserved range): nothing to claim. A batch
      // correlated in its commit takes fresh ids, above every stored one.
      let mayUseAhead = prepared.ahead != nil && aheadStateHolds(node: batch.node, after: prepared.expectedLastBatch)
      var result: (summary: CommitSummary, correlatedHere: Bool)
      do {
        result = try await attempt(
          firstID: mayUseAhead ? prepared.ahead?.firstID ?? 0 : try await claimFreshLineIDs(count),
          mayUseAhead: mayUseAhead)
      } catch let error as PostgresTransactionError where error.closureError is NeedsFreshLineIDs {
        result = try await attempt(firstID: try await claimFreshLineIDs(count), mayUseAhead: false)
      }
      await committed(
        node: batch.node, batchID: result.summary.batchID, usedAhead: prepared.ahead != nil && !result.correlatedHere,
        hadAhead: prepared.ahead != nil)
      return CommitResult(summary: result.summary, reCorrelated: prepared.ahead != nil && result.correlatedHere)
    }
  }

  /// The body of a batch commit, inside the caller's transaction (see `TraceStore`'s): the
  /// node's commit lock, the cursor's compare-and-swap, the correlation ahead used when the
  /// node's newest batch is still the one it assumed (else the batch correlated here, with
  /// `claimedFirst` when those are fresh ids — `mayUseAhead` false —, or ``NeedsFreshLineIDs``
  /// thrown so that the caller claims some), the rows.
  private func commitBody(
    _ prepared: PreparedBatch, firstID claimedFirst: Int64, mayUseAhead: Bool,
    faultInjection: (@Sendable () throws -> Void)?, _ db: PostgresConnection
  ) async throws -> (CommitSummary, Bool) {
    let batch = prepared.batch
    try await db.rows("SELECT pg_advisory_xact_lock(\(Self.commitKey(batch.node)))", logger).array()
    if case .continues(let start) = prepared.precondition {
      let stored = try await Self.cursor(db, node: batch.node, source: batch.sourceID, logger)
      guard stored == start else {
        throw StoreError(
          operation: "commit a batch of \(batch.node) \(batch.sourceID)", cause: .cursorMoved,
          message: "another collect of \(batch.node) moved the cursor since this batch was pulled")
      }
    }
    let nodeID = try await Self.nodeID(db, inserting: batch.node, logger)
    let stored = try await Self.storedCorrelation(db, nodeID: nodeID, logger)
    let correlated: CorrelatedBatch
    var correlatedHere = false
    if let ahead = prepared.ahead, mayUseAhead, stored.lastBatch == prepared.expectedLastBatch {
      correlated = ahead
    } else {
      // The ids of the reserved range may lie below what another collect stored meanwhile.
      if mayUseAhead, !batch.lines.isEmpty { throw NeedsFreshLineIDs() }
      var state = try await currentState(db, node: batch.node, nodeID: nodeID, stored)
      correlated = TraceStore.correlate(
        batch, firstID: claimedFirst, state: &state, settings: correlation, storesState: true)
      correlatedHere = true
    }
    let (firstID, output) = (correlated.firstID, correlated.output)
    let connectionCount = Int64(output.connections.count + batch.connections.count)
    let events = batch.events.map(\.description).joined(separator: "\n")
    guard
      let batchID = try await db.rows(
        """
        INSERT INTO batches (node_id, source, kind, collected_at, clock_offset_us, clock_bound_us, bytes,
          transferred_bytes, lines, skipped, events, connections)
        VALUES (\(nodeID), \(batch.sourceID), \(batch.cursor.kind), \(batch.collectedAtMicros),
          \(batch.clock.offsetMicros), \(batch.clock.boundMicros), \(Int64(batch.byteCount)),
          \(Int64(batch.transferredBytes)), \(Int64(batch.lineCount)), \(Int64(batch.skippedCount)), \(events),
          \(connectionCount))
        RETURNING id
        """, logger
      ).decode(Int64.self).array().first
    else { throw StoreError(operation: "add a batch of \(batch.node)", message: "no id came back") }

    if !batch.lines.isEmpty {
      let flags = TraceStore.lineFlags(batch, firstID: firstID, outcomes: output.outcomes)
      let times = batch.lineTimes.map { $0.littleEndian }.withUnsafeBytes { ByteBuffer(bytes: $0) }
      let ends = batch.lineEnds.map { $0.littleEndian }.withUnsafeBytes { ByteBuffer(bytes: $0) }
      let pending = Int64(flags.count { $0 & 0x0F == ObservationOutcome.pending.rawValue })
      try await db.rows(
        """
        INSERT INTO line_blocks (first_id, node_id, batch_id, count, last_time, pending, times, flags, ends, raw)
        VALUES (\(firstID), \(nodeID), \(batchID), \(Int64(batch.lines.count)), \(batch.lineTimes.max() ?? 0),
          \(pending), \(times), \(flags.buffer), \(ends), \(batch.text.buffer))
        """, logger
      ).array()
    }
    // Earlier batches' pending lines decided now.
    try await updateOutcomes(output.outcomes.filter { $0.id < firstID }, db)
    if let encoded = correlated.encodedState {
      try await db.rows(
        """
        INSERT INTO correlation_state (node_id, state, state_batch, last_batch)
        VALUES (\(nodeID), \(encoded.buffer), \(batchID), \(batchID))
        ON CONFLICT (node_id) DO UPDATE SET state = EXCLUDED.state, state_batch = EXCLUDED.state_batch,
          last_batch = EXCLUDED.last_batch
        """, logger
      ).array()
    } else if stored.state != nil {
      // The stored state stays; this batch is replayed onto it when needed.
      try await db.rows(
        "UPDATE correlation_state SET last_batch = \(batchID) WHERE node_id = \(nodeID)", logger
      ).array()
    } else {
      try await db.rows(
        """
        INSERT INTO correlation_state (node_id, state, state_batch, last_batch)
        VALUES (\(nodeID), \(CorrelatorState().encoded().buffer), 0, \(batchID))
        """, logger
      ).array()
    }
    // New connection ids become visible in id order (see `connectionOrderLockKey`).
    if !correlated.blocks.isEmpty {
      try await db.rows("SELECT pg_advisory_xact_lock(\(Self.connectionOrderLockKey))", logger).array()
    }
    try await insertConnectionBlocks(correlated.blocks, nodeID: nodeID, batchID: batchID, db)
    for change in output.redispatches {
      try await applyRedispatch(change, nodeID: nodeID, db)
    }
    try faultInjection?()
    try await db.rows(
      """
      INSERT INTO cursors (node_id, source, kind, state, updated_at)
      VALUES (\(nodeID), \(batch.sourceID), \(batch.cursor.kind), \(batch.cursor.state.buffer),
        \(batch.collectedAtMicros))
      ON CONFLICT (node_id, source) DO UPDATE SET kind = EXCLUDED.kind, state = EXCLUDED.state,
        updated_at = EXCLUDED.updated_at
      """, logger
    ).array()
    let summary = CommitSummary(
      batchID: batchID, lines: batch.lines.count, skipped: batch.skippedCount,
      connections: output.connections.count + batch.connections.count, correlation: output.stats)
    return (summary, correlatedHere)
  }

  /// Records the outcome of lines stored by earlier batches (pending pre lines that matched or
  /// expired now): one read and one write per block touched.
  private func updateOutcomes(_ outcomes: [(id: Int64, outcome: ObservationOutcome)], _ db: PostgresConnection)
    async throws
  {
    guard !outcomes.isEmpty else { return }
    var last: [Int64: ObservationOutcome] = [:]
    for (id, outcome) in outcomes { last[id] = outcome }
    let decided = last.sorted { $0.key < $1.key }
    var index = 0
    while index < decided.count {
      let id = decided[index].key
      guard
        let block = try await db.rows(
          "SELECT first_id, count, flags FROM line_blocks WHERE first_id <= \(id) ORDER BY first_id DESC LIMIT 1",
          logger
        ).decode((Int64, Int64, ByteBuffer).self).array().first,
        id < block.0 + block.1
      else {
        // Not a stored line (pruned meanwhile): nothing to record.
        index += 1
        continue
      }
      let (first, count) = (block.0, block.1)
      var flags = block.2.bytes
      while index < decided.count, decided[index].key < first + count {
        let entry = Int(decided[index].key - first)
        if entry < flags.count { flags[entry] = flags[entry] & 0xF0 | decided[index].value.rawValue }
        index += 1
      }
      let pending = Int64(flags.count { $0 & 0x0F == ObservationOutcome.pending.rawValue })
      try await db.rows(
        "UPDATE line_blocks SET flags = \(flags.buffer), pending = \(pending) WHERE first_id = \(first)", logger
      ).array()
    }
  }

  // MARK: Connection blocks

  /// Stores blocks encoded ahead of the transaction, with their key rows (one multi-row insert
  /// per block).
  func insertConnectionBlocks(
    _ blocks: [PreparedConnectionBlock], nodeID: Int64, batchID: Int64, _ db: PostgresConnection
  ) async throws {
    for block in blocks {
      guard
        let id = try await db.rows(
          """
          INSERT INTO connection_blocks (node_id, batch_id, count, min_time, max_time, max_slot, client_bloom, data)
          VALUES (\(nodeID), \(batchID), \(Int64(block.count)), \(block.minTime), \(block.maxTime),
            \(Int64(block.count - 1)), \(block.bloom.buffer), \(block.data.buffer))
          RETURNING id
          """, logger
        ).decode(Int64.self).array().first
      else { throw StoreError(operation: "add a connection block", message: "no id came back") }
      try await insertBlockKeys(block.keys, block: id, db)
    }
  }

  /// The `block_keys` rows of `keys`, in one statement.
  func insertBlockKeys(_ keys: [TraceStore.BlockKey], block: Int64, _ db: PostgresConnection) async throws {
    guard !keys.isEmpty else { return }
    let kinds = keys.map { Int16($0.kind.rawValue) }
    let values = keys.map { $0.bytes.buffer }
    try await db.rows(
      """
      INSERT INTO block_keys (kind, key, block_id)
      SELECT k, v, \(block) FROM unnest(\(kinds)::int2[], \(values)::bytea[]) AS t(k, v)
      ON CONFLICT DO NOTHING
      """, logger
    ).array()
  }

  /// Deletes the `block_keys` rows of a block holding `entries`.
  func deleteBlockKeys(_ entries: [StoredConnection], block: Int64, _ db: PostgresConnection) async throws {
    let keys = ConnectionBlock.AddressColumns(entries).keys(entries)
    guard !keys.isEmpty else { return }
    let kinds = keys.map { Int16($0.kind.rawValue) }
    let values = keys.map { $0.bytes.buffer }
    try await db.rows(
      """
      DELETE FROM block_keys WHERE block_id = \(block)
        AND (kind, key) IN (SELECT k, v FROM unnest(\(kinds)::int2[], \(values)::bytea[]) AS t(k, v))
      """, logger
    ).array()
  }

  /// Replaces block `id`'s connections (`old`, as decoded) with `entries` (sorted by slot;
  /// slots kept, so ids stay), its filter and its key rows; deletes the block when `entries` is
  /// empty.
  func rewriteConnectionBlock(
    _ id: Int64, old: [StoredConnection], entries: [StoredConnection], _ db: PostgresConnection
  ) async throws {
    try await deleteBlockKeys(old, block: id, db)
    guard !entries.isEmpty else {
      try await db.rows("DELETE FROM connection_blocks WHERE id = \(id)", logger).array()
      return
    }
    let times = entries.map(\.timeMicros)
    try await db.rows(
      """
      UPDATE connection_blocks SET count = \(Int64(entries.count)), min_time = \(times.min() ?? 0),
        max_time = \(times.max() ?? 0), client_bloom = \(ClientBloom(entries: entries).bytes.buffer),
        data = \(ConnectionBlock.encode(entries).buffer)
      WHERE id = \(id)
      """, logger
    ).array()
    try await insertBlockKeys(ConnectionBlock.AddressColumns(entries).keys(entries), block: id, db)
  }

  /// The decoded connections of block `id` (empty when it is gone).
  static func connectionBlock(_ id: Int64, _ db: some Querying, _ logger: Logger) async throws -> [StoredConnection] {
    guard
      let data = try await db.rows("SELECT data FROM connection_blocks WHERE id = \(id)", logger)
        .decode(ByteBuffer.self).array().first
    else { return [] }
    return try ConnectionBlock.decode(data.bytes)
  }

  /// Points the connection of an earlier batch that `change` names at its new endpoint: finds it
  /// among `nodeID`'s blocks (newest first, skipping blocks whose filter rules the client out)
  /// and rewrites that block. Returns whether it was found.
  @discardableResult
  func applyRedispatch(_ change: Redispatch, nodeID: Int64, _ db: PostgresConnection) async throws -> Bool {
    let hash = ClientBloom.hash(change.client, change.clientPort)
    let blocks = try await db.rows(
      """
      SELECT id, client_bloom FROM connection_blocks WHERE node_id = \(nodeID)
        AND id IN (SELECT block_id FROM block_keys WHERE kind = \(Int16(BlockKeyKind.client.rawValue))
          AND key = \(change.client.blob.buffer))
      ORDER BY id DESC
      """, logger
    ).decode((Int64, ByteBuffer).self).array()
    for (block, bloom) in blocks where ClientBloom(bytes: bloom.bytes)?.mayContain(hash) ?? true {
      let old = try await Self.connectionBlock(block, db, logger)
      guard let entries = change.applied(to: old) else { continue }
      try await rewriteConnectionBlock(block, old: old, entries: entries, db)
      return true
    }
    return false
  }
}

extension Optional {
  func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
    guard let self else { return nil }
    return try await transform(self)
  }
}
