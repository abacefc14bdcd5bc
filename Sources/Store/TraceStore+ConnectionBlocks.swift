package import Foundation
import GRDB
import GRDBSQLite
import Logs
package import SVCTraceCore

/// Kinds of `block_keys` rows: which value of a block's connections the key is.
package enum BlockKeyKind: Int {
  /// A client address (16 bytes).
  case client = 1
  /// A service address and port (16 + 2 bytes big-endian): a range of it serves "any port".
  case service = 2
  /// A service port alone (2 bytes big-endian): NodePort names match any address.
  case servicePort = 3
  /// A pod address (16 bytes).
  case pod = 4
}

extension TraceStore {
  /// The id of slot `slot` of block `block`.
  package static func connectionID(block: Int64, slot: UInt32) -> Int64 { block << 24 | Int64(slot) }

  /// The `block_keys` key of a service address and port.
  package static func serviceKey(_ ip: IPAddress, _ port: UInt16) -> Data {
    var key = ip.blob
    key.append(UInt8(port >> 8))
    key.append(UInt8(port & 0xFF))
    return key
  }

  /// The `block_keys` key of a port.
  package static func portKey(_ port: UInt16) -> Data { Data([UInt8(port >> 8), UInt8(port & 0xFF)]) }

  /// Stores `connections` (in the order they should get ids; sorted by time within each block)
  /// as blocks of `nodeID`, at most ``ConnectionBlock/maxEntries`` each. Returns the block ids.
  @discardableResult
  static func insertConnectionBlocks(
    _ connections: [StoredConnection], nodeID: Int64, batchID: Int64, _ db: Database
  ) throws -> [Int64] {
    try insertConnectionBlocks(PreparedConnectionBlock.blocks(of: connections), nodeID: nodeID, batchID: batchID, db)
  }

  /// Stores blocks encoded ahead of the transaction. Returns the block ids.
  @discardableResult
  static func insertConnectionBlocks(
    _ blocks: [PreparedConnectionBlock], nodeID: Int64, batchID: Int64, _ db: Database
  ) throws -> [Int64] {
    var ids: [Int64] = []
    let insertBlock = try db.cachedStatement(
      sql: """
        INSERT INTO connection_blocks (node_id, batch_id, count, min_time, max_time, max_slot)
        VALUES (?, ?, ?, ?, ?, ?)
        """)
    let insertData = try db.cachedStatement(
      sql: "INSERT INTO connection_block_data (block_id, client_bloom, data) VALUES (?, ?, ?)")
    for block in blocks {
      try insertBlock.execute(arguments: [nodeID, batchID, block.count, block.minTime, block.maxTime, block.count - 1])
      let id = db.lastInsertedRowID
      try insertData.execute(arguments: [id, Data(block.bloom), Data(block.data)])
      try insertBlockKeys(block.keys, block: id, db)
      ids.append(id)
    }
    return ids
  }

  /// One `block_keys` row per distinct client, service address:port, service port and pod.
  static func insertBlockKeys(_ entries: [StoredConnection], block: Int64, _ db: Database) throws {
    try insertBlockKeys(ConnectionBlock.AddressColumns(entries).keys(entries), block: block, db)
  }

  /// Inserts the `block_keys` rows `keys` (in key order: successive inserts land on the same
  /// or the next pages of the table).
  static func insertBlockKeys(_ keys: [BlockKey], block: Int64, _ db: Database) throws {
    let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO block_keys (kind, key, block_id) VALUES (?, ?, ?)")
    for key in keys {
      try insert.execute(arguments: [key.kind.rawValue, key.bytes, block])
    }
  }

  /// Deletes the `block_keys` rows of a block holding `entries` (derived from them: the table
  /// has no index by block, which would double the cost of every key row).
  static func deleteBlockKeys(_ entries: [StoredConnection], block: Int64, _ db: Database) throws {
    let delete = try db.cachedStatement(sql: "DELETE FROM block_keys WHERE kind = ? AND key = ? AND block_id = ?")
    for key in ConnectionBlock.AddressColumns(entries).keys(entries) {
      try delete.execute(arguments: [key.kind.rawValue, key.bytes, block])
    }
  }

  /// A distinct key value of a block.
  package struct BlockKey: Hashable, Comparable, Sendable {
    package var kind: BlockKeyKind
    package var address: IPAddress
    package var port: UInt16

    /// The order of the keys' bytes in `block_keys` (per kind: address big-endian, then port).
    package static func < (left: BlockKey, right: BlockKey) -> Bool {
      (left.kind.rawValue, left.address.high, left.address.low, left.port)
        < (right.kind.rawValue, right.address.high, right.address.low, right.port)
    }

    package var bytes: Data {
      switch kind {
      case .client, .pod: address.blob
      case .service: TraceStore.serviceKey(address, port)
      case .servicePort: TraceStore.portKey(port)
      }
    }
  }

  /// Replaces block `id`'s connections (`old`, as decoded) with `entries` (sorted by slot;
  /// slots kept, so ids stay), its filter and its key rows; deletes the block when `entries` is
  /// empty.
  static func rewriteConnectionBlock(
    _ id: Int64, old: [StoredConnection], entries: [StoredConnection], _ db: Database
  ) throws {
    try deleteBlockKeys(old, block: id, db)
    guard !entries.isEmpty else {
      try db.execute(sql: "DELETE FROM connection_block_data WHERE block_id = ?", arguments: [id])
      try db.execute(sql: "DELETE FROM connection_blocks WHERE id = ?", arguments: [id])
      return
    }
    try db.execute(
      sql: "UPDATE connection_blocks SET count = ?, min_time = ?, max_time = ? WHERE id = ?",
      arguments: [
        entries.count, entries.lazy.map { $0.timeMicros }.min(), entries.lazy.map { $0.timeMicros }.max(), id,
      ])
    try db.execute(
      sql: "UPDATE connection_block_data SET client_bloom = ?, data = ? WHERE block_id = ?",
      arguments: [Data(ClientBloom(entries: entries).bytes), Data(ConnectionBlock.encode(entries)), id])
    try insertBlockKeys(entries, block: id, db)
  }

  /// The decoded connections of block `id`.
  static func connectionBlock(_ id: Int64, _ db: Database) throws -> [StoredConnection] {
    let columns = try connectionColumns(id, db)
    return (0..<columns.count).map { columns.entry($0) }
  }

  /// The columns of block `id` (empty when the block is gone).
  static func connectionColumns(_ id: Int64, _ db: Database) throws -> ConnectionBlock.Columns {
    // Decoded straight from SQLite's buffer (no copy of the blob).
    let statement = try db.cachedStatement(sql: "SELECT data FROM connection_block_data WHERE block_id = ?")
    let handle = statement.sqliteStatement
    sqlite3_reset(handle)
    defer { sqlite3_reset(handle) }
    sqlite3_bind_int64(handle, 1, id)
    let code = sqlite3_step(handle)
    guard code == SQLITE_ROW else {
      guard code == SQLITE_DONE else {
        throw StoreError(operation: "read connection block \(id)", message: db.lastErrorMessage ?? "code \(code)")
      }
      return ConnectionBlock.Columns()
    }
    let bytes = Int(sqlite3_column_bytes(handle, 0))
    guard let base = sqlite3_column_blob(handle, 0) else { return ConnectionBlock.Columns() }
    return try ConnectionBlock.Columns(decoding: UnsafeRawBufferPointer(start: base, count: bytes))
  }

  /// Points the connection of an earlier batch that `change` names at its new endpoint: finds
  /// it among `nodeID`'s blocks (newest first, skipping blocks whose filter rules the client
  /// out) and rewrites that block. Returns whether it was found.
  @discardableResult
  static func applyRedispatch(_ change: Redispatch, nodeID: Int64, _ db: Database) throws -> Bool {
    let hash = ClientBloom.hash(change.client, change.clientPort)
    var probe = BloomProbe(db)
    defer { probe.close() }
    let blocks = try Int64.fetchAll(
      db,
      sql: """
        SELECT id FROM connection_blocks WHERE node_id = ?
          AND id IN (SELECT block_id FROM block_keys WHERE kind = ? AND key = ?) ORDER BY id DESC
        """, arguments: [nodeID, BlockKeyKind.client.rawValue, change.client.blob])
    for block in blocks where try probe.mayContain(hash, block: block) {
      let old = try connectionBlock(block, db)
      guard let entries = change.applied(to: old) else { continue }
      probe.close()  // the handle would expire with the row it reads
      try rewriteConnectionBlock(block, old: old, entries: entries, db)
      return true
    }
    return false
  }

  /// Deletes the connections older than `cutoff`: whole blocks when all of theirs are; a block
  /// straddling the cutoff is rewritten with its newer connections (keeping their ids). Each
  /// block touched is decoded once (its key rows are found from its connections).
  /// Returns how many connections went.
  static func pruneConnectionBlocks(olderThan cutoff: Int64, _ db: Database) throws -> Int {
    var removed = 0
    let blocks = try Int64.fetchAll(db, sql: "SELECT id FROM connection_blocks WHERE min_time < ?", arguments: [cutoff])
    for block in blocks {
      let entries = try connectionBlock(block, db)
      let kept = entries.filter { $0.timeMicros >= cutoff }
      removed += entries.count - kept.count
      try rewriteConnectionBlock(block, old: entries, entries: kept, db)
    }
    return removed
  }
}

/// Tests `client_bloom` lines of successive blocks through one incremental blob handle (moved
/// from row to row with `sqlite3_blob_reopen`, reading 64 bytes per block).
struct BloomProbe {
  let db: Database
  private var handle: OpaquePointer?
  /// Blocks tested and blocks that passed, for the benchmark's report.
  private(set) var tested = 0
  private(set) var passed = 0

  init(_ db: Database) { self.db = db }

  mutating func close() {
    sqlite3_blob_close(handle)
    handle = nil
  }

  /// Whether block `block`'s filter may hold `hash` (true when the block has no usable filter).
  mutating func mayContain(_ hash: UInt64, block: Int64) throws -> Bool {
    tested += 1
    let code: Int32
    if let handle {
      code = sqlite3_blob_reopen(handle, block)
    } else {
      code = sqlite3_blob_open(db.sqliteConnection, "main", "connection_block_data", "client_bloom", block, 0, &handle)
    }
    guard code == SQLITE_OK, let handle else {
      throw StoreError(
        operation: "read the client filter of connection block \(block)", message: db.lastErrorMessage ?? "code \(code)"
      )
    }
    let size = Int(sqlite3_blob_bytes(handle))
    guard size >= ClientBloom.lineBytes, size % ClientBloom.lineBytes == 0 else {
      passed += 1
      return true
    }
    let line = ClientBloom.line(of: hash, lines: size / ClientBloom.lineBytes)
    var bytes = [UInt8](repeating: 0, count: ClientBloom.lineBytes)
    let read = bytes.withUnsafeMutableBytes {
      sqlite3_blob_read(handle, $0.baseAddress, Int32(ClientBloom.lineBytes), Int32(line * ClientBloom.lineBytes))
    }
    guard read == SQLITE_OK else {
      throw StoreError(operation: "read the client filter of connection block \(block)", message: "code \(read)")
    }
    let result = ClientBloom.lineMayContain(hash, bytes)
    if result { passed += 1 }
    return result
  }
}

extension Redispatch {
  /// `entries` (one connection block) with the connection this change re-DNATed sent to its new
  /// pod, or `nil` when the block does not hold that connection. Both stores rewrite blocks with it.
  package func applied(to entries: [StoredConnection]) -> [StoredConnection]? {
    guard
      let index = entries.firstIndex(where: { $0.preID == preID && $0.client == client && $0.clientPort == clientPort })
    else { return nil }
    var changed = entries
    changed[index].pod = pod
    changed[index].podPort = podPort
    changed[index].postID = postID
    changed[index].method = MatchMethod.reDNAT.rawValue
    return changed
  }
}
