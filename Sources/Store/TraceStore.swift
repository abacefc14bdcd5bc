package import Foundation
public import GRDB
public import Logs
package import SVCTraceCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// svctrace's embedded store: collected packet lines, cursors, correlated connections and
/// cluster name snapshots, in one SQLite database.
///
/// The SQLite implementation of ``TraceStoring``: one owner of a GRDB `DatabaseWriter` (a WAL
/// `DatabasePool` for a file, an in-memory `DatabaseQueue` in tests) and of the raw segment
/// files beside it. Its settings are fixed when it opens; the mutable parts (line-id
/// reservations, segment writers) keep their own locks. Opening runs the migrations.
public final class TraceStore: TraceStoring {
  let dbWriter: any DatabaseWriter
  /// Correlation tunables used by every commit.
  public let correlation: CorrelationSettings
  /// Line ids for batches correlated ahead of their commit (``CorrelatedBatch``).
  let lineIDs = LineIDAllocator()
  /// Where the raw text of lines goes: segment files beside a store on disk; `nil` (the text
  /// stays in `line_blocks.raw`) for an in-memory store.
  let rawSegments: RawSegments?
  /// Appends the text of batches committed one at a time (``commit(_:)``); a collect has a
  /// writer of its own per node.
  let commitRawWriter: RawSegmentWriter?
  /// Reads stored lines back when a node's correlator state must be rebuilt by replaying the
  /// batches committed after its last stored state (a collect interrupted between two states):
  /// for the kind of source of each batch (``SourceCursor/kind``), the parser that parsed them.
  /// Default: the kernel LOG parser for every kind.
  public let replayParser: ReplayParsers
  /// The nodes a collect has claimed, for a store without a file to lock beside it
  /// (``claimCollect(node:)``).
  let memoryClaims = Mutex<Set<String>>([])

  /// A fresh parser for the lines of batches from one kind of source.
  public typealias ReplayParsers = @Sendable (_ sourceKind: String) -> any LineParsing

  /// The kernel LOG parser for every kind of source, the default ``replayParser``.
  public static let kernelLogParser: ReplayParsers = { _ in
    PacketLineParser(referenceMicros: ClockOffset.wallClockMicros())
  }

  /// Opens (creating if needed) the store at `path`, in WAL mode.
  ///
  /// - Throws: ``StoreError`` when the file cannot be created, opened or migrated, `CocoaError` when
  ///   the directory cannot be created.
  public convenience init(
    path: String, correlation: CorrelationSettings = CorrelationSettings(),
    replayParser: @escaping ReplayParsers = TraceStore.kernelLogParser
  ) throws {
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    // Creating, switching to WAL and migrating a store are not safe against a second process
    // doing the same at once (SQLite answers "locking protocol", "database is locked", even
    // "malformed" to a reader of a half-created file; both would run the migrations): a cron
    // collect beside `trace --follow` opens one store twice. Opening is serialised across
    // processes by an exclusive lock held until the store is open and migrated.
    let openLock = try Self.lockForOpening(path)
    defer { close(openLock) }
    // The store holds the cluster's traffic: readable by its owner only. SQLite gives the -wal
    // and -shm files the database file's mode.
    if !FileManager.default.fileExists(atPath: path),
      !FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
    {
      throw StoreError(operation: "create the store \(path)", errno: errno)
    }
    var configuration = Configuration()
    configuration.busyMode = .timeout(10)
    configuration.prepareDatabase { db in
      try db.execute(sql: "PRAGMA synchronous = NORMAL")
      // The connection indexes keyed by client take inserts at random places; with SQLite's
      // default 2 MiB page cache every such insert reads a page back from the OS once the
      // store outgrows it. A bounded cache keeps ingest throughput flat (memory stays capped).
      try db.execute(sql: "PRAGMA cache_size = -\(Self.cacheKiB)")
    }
    let pool: DatabasePool
    do {
      pool = try DatabasePool(path: path, configuration: configuration)
    } catch let error as DatabaseError {
      throw StoreError(operation: "open the store \(path)", error)
    }
    try self.init(
      writer: pool, correlation: correlation,
      rawSegments: RawSegments(directory: path + ".raw"), replayParser: replayParser)
  }

  /// Takes an exclusive `flock` on `<path>.locks/open`, waiting for another opener; returns the
  /// descriptor that holds it.
  /// - Throws: ``StoreError`` with the errno when the lock file cannot be made or locked.
  static func lockForOpening(_ path: String) throws -> Int32 {
    let operation = "lock the store \(path) for opening"
    let directory = path + ".locks"
    if mkdir(directory, 0o700) != 0, errno != EEXIST { throw StoreError(operation: operation, errno: errno) }
    let descriptor = open(directory + "/open", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw StoreError(operation: operation, errno: errno) }
    while flock(descriptor, LOCK_EX) != 0 {
      guard errno == EINTR else {
        let code = errno
        close(descriptor)
        throw StoreError(operation: operation, errno: code)
      }
    }
    return descriptor
  }

  /// The page cache of each connection, KiB (an upper bound: pages are allocated as used).
  static let cacheKiB = 64 * 1024

  /// Wraps an existing writer (an in-memory `DatabaseQueue()` in tests) and migrates it.
  public convenience init(
    writer: any DatabaseWriter, correlation: CorrelationSettings = CorrelationSettings(),
    replayParser: @escaping ReplayParsers = TraceStore.kernelLogParser
  ) throws {
    try self.init(writer: writer, correlation: correlation, rawSegments: nil, replayParser: replayParser)
  }

  init(
    writer: any DatabaseWriter, correlation: CorrelationSettings, rawSegments: RawSegments?,
    replayParser: @escaping ReplayParsers = TraceStore.kernelLogParser
  ) throws {
    self.dbWriter = writer
    self.correlation = correlation
    self.replayParser = replayParser
    self.rawSegments = rawSegments
    self.commitRawWriter = rawSegments?.makeWriter()
    try Self.migrate(writer, location: writer.path)
  }

  /// An empty in-memory store.
  public static func inMemory(
    correlation: CorrelationSettings = CorrelationSettings(),
    replayParser: @escaping ReplayParsers = TraceStore.kernelLogParser
  ) throws -> TraceStore {
    try TraceStore(writer: DatabaseQueue(), correlation: correlation, replayParser: replayParser)
  }

  /// The store path: `$SVCTRACE_STORE`, else `$XDG_DATA_HOME/svctrace/svctrace.sqlite`, else
  /// `~/.local/share/svctrace/svctrace.sqlite`.
  public static func defaultPath(environment: [String: String]? = nil) -> String {
    let environment = environment ?? ProcessInfo.processInfo.environment
    if let explicit = environment["SVCTRACE_STORE"], !explicit.isEmpty { return explicit }
    let base: String
    if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") {
      base = xdg
    } else {
      let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
      base = (home as NSString).appendingPathComponent(".local/share")
    }
    return (base as NSString).appendingPathComponent("svctrace/svctrace.sqlite")
  }

  /// Names of the migrations applied so far, in order.
  public func appliedMigrations() throws -> [String] {
    try dbWriter.read { db in try Self.migrator.appliedIdentifiers(db).sorted() }
  }

  // MARK: Schema

  /// The schema, as one migration per released change (`line-loss`: the loss accounting). A
  /// migration, once released, never changes: later changes are new migrations.
  static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE nodes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
          );
          -- Where each node's source was read up to; updated with the data it covers.
          -- The cursor is the source's own: its kind (SourceCursor.kind) and its encoding of
          -- its position (read only by a source of that kind).
          CREATE TABLE cursors (
            node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            state BLOB NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (node_id, source)
          ) WITHOUT ROWID;
          -- kind: the kind of source (as in cursors), which picks the parser that replays the
          -- batch's lines.
          CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            collected_at INTEGER NOT NULL,
            clock_offset_us INTEGER NOT NULL,
            clock_bound_us INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            transferred_bytes INTEGER NOT NULL,
            lines INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            connections INTEGER NOT NULL DEFAULT 0,
            events TEXT NOT NULL DEFAULT ''
          );
          CREATE INDEX batches_by_time ON batches(collected_at);
          -- The correlator's carry-over per node (pending pre lines, recent matches). A collect
          -- stores it with some of its batches only (every few, and the last of a run): `state`
          -- is the state after batch `state_batch` (0: before the node's first batch),
          -- `last_batch` the node's newest batch. Lines of the batches in between are replayed
          -- through the correlator to continue (after an interrupted collect).
          CREATE TABLE correlation_state (
            node_id INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
            state BLOB NOT NULL,
            state_batch INTEGER NOT NULL,
            last_batch INTEGER NOT NULL
          );
          -- A batch's packet lines, stored as one block: their raw text in one blob, with
          -- per-line times, stages and outcomes in parallel arrays. Line first_id + i is entry i
          -- of the block.
          CREATE TABLE line_blocks (
            first_id INTEGER PRIMARY KEY,
            node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
            batch_id INTEGER NOT NULL,
            count INTEGER NOT NULL,
            -- The newest line time (node clock, µs), for prune.
            last_time INTEGER NOT NULL,
            -- Pre lines of the block still waiting for their post line.
            pending INTEGER NOT NULL,
            -- Per line: node-clock time (Int64 LE, µs); stage << 4 | outcome (1 byte; stage 1
            -- pre, 2 post; outcome 0 pending, 1 matched, 2 duplicate, 3 orphan, 4 expired); end
            -- offset in raw after its newline (UInt32 LE).
            times BLOB NOT NULL,
            flags BLOB NOT NULL,
            ends BLOB NOT NULL,
            raw BLOB NOT NULL
          );
          CREATE INDEX line_blocks_by_time ON line_blocks(last_time);
          CREATE INDEX line_blocks_by_batch ON line_blocks(batch_id);
          -- A store on disk keeps the raw text of a line block in a segment file beside it
          -- (RawSegments.swift): this row says which and where (the block's own `raw` is then
          -- empty). Blocks without a row keep their text in `raw`.
          CREATE TABLE line_raw (
            first_id INTEGER PRIMARY KEY,
            segment INTEGER NOT NULL,
            offset INTEGER NOT NULL
          );
          CREATE INDEX line_raw_by_segment ON line_raw(segment);
          -- A batch's connections, stored as one block (a row per batch and node, not per
          -- connection): the columns of its connections encoded together in `data`, a Bloom
          -- filter over their (client ip, client port) pairs in `client_bloom` (ClientBloom.swift),
          -- and one `block_keys` row per distinct client, service address:port, service port and
          -- pod of the block. The id of a connection is block id << 24 | slot (its position in
          -- the block); AUTOINCREMENT so that ids never come back after a prune (`trace
          -- --follow` polls with the last id). Addresses are 16-byte IPv6 (IPv4-mapped) blobs.
          -- `data` (ConnectionBlock.swift): version, count, then one column after the other:
          -- slots (only after a prune rewrote the block), times as zigzag varint deltas, protos,
          -- an address dictionary (4 or 16 bytes each), client/service/pod dictionary indices
          -- (varints), client ports (u16), service/pod ports (varints), methods (1 exact-id,
          -- 2 sport-window, 3 retransmit-dedup, ...), pre line ids as deltas and post line ids
          -- relative to their pre line: ≈ 15 bytes a connection.
          CREATE TABLE connection_blocks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
            batch_id INTEGER NOT NULL,
            count INTEGER NOT NULL,
            -- Oldest and newest connection time (µs, corrected clock).
            min_time INTEGER NOT NULL,
            max_time INTEGER NOT NULL,
            -- The highest slot ever given in the block (ids stay even when prune drops entries).
            max_slot INTEGER NOT NULL
          );
          CREATE INDEX connection_blocks_by_time ON connection_blocks(max_time, min_time);
          CREATE INDEX connection_blocks_by_start ON connection_blocks(min_time);
          -- The blobs apart from the metadata, so that selecting blocks reads a few small pages;
          -- the filter before the data, so that a filter line is read without walking the
          -- data's overflow pages.
          CREATE TABLE connection_block_data (
            block_id INTEGER PRIMARY KEY REFERENCES connection_blocks(id) ON DELETE CASCADE,
            client_bloom BLOB NOT NULL,
            data BLOB NOT NULL
          );
          -- kind: 1 client ip (16 bytes), 2 service ip + port (18), 3 service port (2), 4 pod ip (16).
          CREATE TABLE block_keys (
            kind INTEGER NOT NULL,
            key BLOB NOT NULL,
            block_id INTEGER NOT NULL,
            PRIMARY KEY (kind, key, block_id)
          ) WITHOUT ROWID;
          -- Cluster object snapshots (kubectl get services,endpointslices,pods -A -o json), trimmed to
          -- the fields the name tables come from.
          CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY,
            taken_at INTEGER NOT NULL,
            source TEXT NOT NULL,
            json TEXT NOT NULL
          );
          CREATE INDEX snapshots_by_time ON snapshots(taken_at);
          -- Name tables derived from the snapshots; a row is valid in [valid_from, valid_to),
          -- valid_to NULL while the latest snapshot still has it. NodePorts use ip = :: (any).
          CREATE TABLE service_names (
            id INTEGER PRIMARY KEY,
            ip BLOB NOT NULL,
            port INTEGER NOT NULL,
            proto INTEGER NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER
          );
          CREATE INDEX service_names_by_address ON service_names(ip, port);
          CREATE INDEX service_names_by_name ON service_names(namespace, name);
          CREATE TABLE pod_names (
            id INTEGER PRIMARY KEY,
            ip BLOB NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            node TEXT NOT NULL,
            host_network INTEGER NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER
          );
          CREATE INDEX pod_names_by_ip ON pod_names(ip);
          CREATE INDEX pod_names_by_name ON pod_names(namespace, name);
          CREATE TABLE endpoint_names (
            id INTEGER PRIMARY KEY,
            service_namespace TEXT NOT NULL,
            service_name TEXT NOT NULL,
            ip BLOB NOT NULL,
            port INTEGER NOT NULL,
            proto INTEGER NOT NULL,
            pod_namespace TEXT NOT NULL,
            pod_name TEXT NOT NULL,
            node TEXT NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER
          );
          CREATE INDEX endpoint_names_by_ip ON endpoint_names(ip, port);
          CREATE INDEX endpoint_names_by_service ON endpoint_names(service_namespace, service_name);
          """)
    }
    migrator.registerMigration("line-loss") { db in try db.execute(sql: lossSchema) }
    return migrator
  }

  /// Migrates `writer`, refusing a store that a newer svctrace has migrated further (its
  /// schema is unknown here).
  static func migrate(_ writer: any DatabaseWriter, location: String) throws {
    let migrator = Self.migrator
    let unknown: Set<String>
    do {
      unknown = try writer.read { db in try migrator.appliedIdentifiers(db).subtracting(migrator.migrations) }
    } catch let error as DatabaseError {
      throw StoreError(operation: "open the store \(location)", error)
    }
    guard unknown.isEmpty else {
      throw StoreError(
        operation: "open the store \(location)", cause: .unsupportedSchema(unknownMigrations: unknown.sorted()),
        message:
          "it was written by a newer svctrace (schema \(unknown.sorted().joined(separator: ", ")) is unknown here); use that svctrace or another store"
      )
    }
    do {
      try migrator.migrate(writer)
    } catch let error as DatabaseError {
      throw StoreError(operation: "migrate the store \(location)", error)
    }
  }
}

// MARK: Value encoding

extension IPAddress {
  /// The 16-byte network-order form stored in the database.
  package var blob: Data {
    var bytes = Data(count: 16)
    bytes.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
      raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
    }
    return bytes
  }

  /// Reads the 16-byte form back; `nil` for any other length.
  package init?(blob: Data) {
    guard blob.count == 16 else { return nil }
    var high: UInt64 = 0
    var low: UInt64 = 0
    for (index, byte) in blob.enumerated() {
      if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
    }
    self.init(high: high, low: low)
  }

  /// `::`, the wildcard address of NodePort rows.
  package static let any = IPAddress(high: 0, low: 0)
}

/// A store failure: the operation ("open the store /x", "commit a batch of node1"), its cause
/// as a value, and the reason in words. Reads "Unable to <operation>: <message>".
public struct StoreError: Error, Sendable, CustomStringConvertible, Equatable {
  /// Why an operation failed.
  public enum Cause: Sendable, Equatable {
    /// SQLite refused: its primary and extended result codes, as GRDB reported them.
    case sqlite(code: Int32, extendedCode: Int32)
    /// PostgreSQL refused (the team store): its SQLSTATE, or `""` when the connection failed
    /// before the server answered.
    case postgres(sqlState: String)
    /// A system call failed with this `errno`.
    case system(errno: Int32)
    /// The store was migrated by a newer svctrace: the schema changes this build does not know.
    case unsupportedSchema(unknownMigrations: [String])
    /// The request names something no stored data knows (a Service, a pod).
    case notFound
    /// The input or the stored data is not what it must be (the message says how).
    case invalidData
    /// A batch's commit found its source's cursor moved since the batch was pulled: another
    /// collect of the node committed the same bytes, or further ones (see
    /// ``CursorPrecondition``). Nothing of the batch was stored.
    case cursorMoved
  }

  public var operation: String
  public var cause: Cause
  public var message: String

  public init(operation: String, cause: Cause = .invalidData, message: String) {
    self.operation = operation
    self.cause = cause
    self.message = message
  }

  /// A failed system call: `errno` and its text.
  public init(operation: String, errno code: Int32) {
    self.init(operation: operation, cause: .system(errno: code), message: String(cString: strerror(code)))
  }

  /// A database error with its SQLite result codes.
  public init(operation: String, _ error: DatabaseError) {
    self.init(
      operation: operation,
      cause: .sqlite(
        code: error.resultCode.primaryResultCode.rawValue, extendedCode: error.extendedResultCode.rawValue),
      message: error.message ?? "\(error.resultCode)")
  }

  public var description: String { "Unable to \(operation): \(message)" }
}

extension TraceStore {
  /// `dbWriter.read`, a `DatabaseError` becoming a ``StoreError`` naming `operation`.
  func reading<T>(_ operation: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
    do { return try dbWriter.read(body) } catch let error as DatabaseError {
      throw StoreError(operation: operation(), error)
    }
  }

  /// ``reading(_:_:)`` off the caller's thread.
  func reading<T: Sendable>(_ operation: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
    async throws -> T
  {
    do { return try await dbWriter.read(body) } catch let error as DatabaseError {
      throw StoreError(operation: operation(), error)
    }
  }

  /// `dbWriter.write` (one transaction), a `DatabaseError` becoming a ``StoreError``.
  func writing<T>(_ operation: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
    do { return try dbWriter.write(body) } catch let error as DatabaseError {
      throw StoreError(operation: operation(), error)
    }
  }

  /// ``writing(_:_:)`` off the caller's thread.
  func writing<T: Sendable>(_ operation: @autoclosure () -> String, _ body: @escaping @Sendable (Database) throws -> T)
    async throws -> T
  {
    do { return try await dbWriter.write(body) } catch let error as DatabaseError {
      throw StoreError(operation: operation(), error)
    }
  }
}
