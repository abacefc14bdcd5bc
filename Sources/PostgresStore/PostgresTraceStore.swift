import Foundation
import Logging
public import Logs
import NIOCore
import NIOSSL
import PostgresNIO
import SVCTraceCore
public import Store
import Synchronization

/// The team store: the ``TraceStoring`` seam on a shared PostgreSQL database (postgres-nio), so
/// that several collectors and any number of readers share one store.
///
/// It behaves as the SQLite ``TraceStore`` does (the same behaviour suite runs against both) and
/// reuses its pure parts: correlation ahead of the commit, connection blocks with their block
/// keys and client Bloom filters, name resolution by time, stats. Differences that come from
/// sharing one database between processes on several machines:
///
/// - the raw text of the lines is kept in the database (`line_blocks.raw`), so the store is
///   self-contained;
/// - a commit takes a transaction-level advisory lock on its node (commits of one node queue,
///   commits of different nodes run side by side) and then compares and swaps the cursor;
/// - line ids are handed out by a counter row (`line_ids`): each store connection reserves a
///   range of them per node (one `UPDATE … RETURNING` per run and per four million lines), so
///   that collectors in several processes never correlate ahead with the same ids; a batch
///   correlated in its commit claims fresh ids in a statement of its own; ids of a failed
///   commit or of the rest of a range stay unused;
/// - new connection ids become visible in id order (see ``connectionOrderLockKey``);
/// - ``claimCollect(node:)`` is a session-level advisory lock held by a connection of its own for
///   as long as the claim lives (the server drops it when the collector dies).
///
/// Every query runs on postgres-nio's event loop: nothing blocks the cooperative pool.
public final class PostgresTraceStore: TraceStoring, FaultInjectableStore {
  public let location: PostgresStoreLocation
  /// Correlation tunables used by every commit.
  public let correlation: CorrelationSettings
  /// The parser that replays stored lines of a kind of source (see ``TraceStore/replayParser``).
  public let replayParser: TraceStore.ReplayParsers
  let client: PostgresClient
  private let runTask: Task<Void, Never>
  /// How the claim connections connect (the pool's settings).
  let connectionConfiguration: PostgresConnection.Configuration
  /// Line ids reserved in the database, per node, for batches correlated ahead of their commit.
  let reservedLineIDs = Mutex<[HostID: NodeLineIDs]>([:])
  let logger: Logger
  /// Claims released but whose connection may still hold the lock, per node.
  let releasing = Mutex<[String: Task<Void, Never>]>([:])
  private let connectionIDs = Atomic<Int>(1)

  /// The schema migrations this svctrace knows, in order (see ``migrate()``).
  static let migrations = ["v1", "line-loss"]

  /// Connects to the store at `location` and migrates it (creating the schema in an empty
  /// database).
  ///
  /// - Throws: ``StoreError`` naming the store when it cannot connect, when the schema was made by
  ///   a newer svctrace (`.unsupportedSchema`), or when a migration fails.
  public static func open(
    _ location: PostgresStoreLocation, password: String?, correlation: CorrelationSettings = CorrelationSettings(),
    replayParser: @escaping TraceStore.ReplayParsers = TraceStore.kernelLogParser
  ) async throws -> PostgresTraceStore {
    let store = try PostgresTraceStore(
      location: location, password: password, correlation: correlation, replayParser: replayParser)
    try await store.migrate()
    return store
  }

  private init(
    location: PostgresStoreLocation, password: String?, correlation: CorrelationSettings,
    replayParser: @escaping TraceStore.ReplayParsers
  ) throws {
    self.location = location
    self.correlation = correlation
    self.replayParser = replayParser
    var logger = Logger(label: "svctrace.postgres")
    logger.logLevel = .critical
    self.logger = logger
    let tls = try location.tls()
    var configuration = PostgresClient.Configuration(
      host: location.host, port: location.port, username: location.user, password: password,
      database: location.database, tls: tls)
    configuration.options.maximumConnections = 8
    var connection = PostgresConnection.Configuration(
      host: location.host, port: location.port, username: location.user, password: password,
      database: location.database, tls: try Self.connectionTLS(tls: location))
    if location.sslMode == .verifyFull {
      connection.options.tlsServerName = location.host
      configuration.options.tlsServerName = location.host
    }
    self.connectionConfiguration = connection
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    self.client = client
    self.runTask = Task { await client.run() }
  }

  deinit { runTask.cancel() }

  /// The claim connections' TLS (postgres-nio spells it apart from the pool's).
  private static func connectionTLS(tls location: PostgresStoreLocation) throws
    -> PostgresConnection.Configuration.TLS
  {
    guard let configuration = try location.tlsConfiguration() else { return .disable }
    let context: NIOSSLContext
    do {
      context = try NIOSSLContext(configuration: configuration)
    } catch {
      throw StoreError(operation: "set up TLS for the store \(location)", message: "\(error)")
    }
    return location.sslMode == .prefer ? .prefer(context) : .require(context)
  }

  // MARK: Errors

  /// `body`, any postgres-nio error becoming a ``StoreError`` naming `operation` and the store.
  func run<T>(_ operation: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch {
      throw storeError(operation(), error)
    }
  }

  /// `error` as thrown by ``run(_:_:)``: a ``StoreError`` or a cancellation as they are (also
  /// out of a transaction's wrapper), anything else a ``StoreError`` naming `operation`.
  func storeError(_ operation: String, _ error: any Error) -> any Error {
    switch error {
    case let error as StoreError: return error
    case let error as CancellationError: return error
    case let error as PSQLError: return storeError(operation, error)
    case let error as PostgresTransactionError:
      if let inner = error.closureError ?? error.beginError ?? error.commitError {
        return storeError(operation, inner)
      }
      return StoreError(operation: "\(operation) (\(location))", message: "the transaction failed")
    // Not the database's (a test's injected fault, a decoding error of svctrace's own): as it is.
    default: return error
    }
  }

  /// A ``StoreError`` for a postgres-nio error: the server's SQLSTATE and message, or what broke
  /// the connection. Never the password: the server does not echo it and the URL holds none.
  func storeError(_ operation: String, _ error: PSQLError) -> StoreError {
    let state = error.serverInfo?[.sqlState] ?? ""
    var message: String
    if let server = error.serverInfo?[.message] {
      message = server
      if let detail = error.serverInfo?[.detail] { message += " (\(detail))" }
    } else if let underlying = error.underlying {
      message = "\(error.code): \(underlying)"
    } else {
      message = "\(error.code)"
    }
    return StoreError(operation: "\(operation) (\(location))", cause: .postgres(sqlState: state), message: message)
  }

  // MARK: Schema

  /// Creates the schema of an empty database, or checks a migrated one: a store migrated
  /// further by a newer svctrace (a migration this build does not know) is refused. Runs in a
  /// transaction under an advisory lock, so two svctraces opening one new store at once do not
  /// both create it.
  func migrate() async throws {
    let unknown: [String] = try await run("open the store") {
      // On a connection of its own: one attempt, which fails at once when the server cannot be
      // reached or refuses the login (the pool would retry).
      let connection = try await PostgresConnection.connect(
        configuration: connectionConfiguration, id: nextConnectionID(), logger: logger)
      defer { Task { try? await connection.close() } }
      return try await connection.withTransaction(logger: logger) { connection in
        try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
        // Only when missing: a reader role may not create (CREATE … IF NOT EXISTS still checks).
        let exists =
          try await connection.query("SELECT to_regclass('svctrace_migrations') IS NOT NULL", logger: logger)
          .decode(Bool.self).array().first ?? false
        if !exists {
          try await connection.query(
            """
            CREATE TABLE svctrace_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        }
        var applied: [String] = []
        for try await id in try await connection.query("SELECT id FROM svctrace_migrations ORDER BY id", logger: logger)
          .decode(String.self)
        {
          applied.append(id)
        }
        let unknown = applied.filter { !Self.migrations.contains($0) }
        guard unknown.isEmpty else { return unknown }
        if !applied.contains("v1") {
          for statement in Self.schemaV1 {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
          }
          try await connection.query("INSERT INTO svctrace_migrations (id) VALUES ('v1')", logger: logger)
        }
        if !applied.contains("line-loss") {
          for statement in Self.lossSchema {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
          }
          try await connection.query(
            "INSERT INTO svctrace_migrations (id) VALUES ('line-loss')", logger: logger)
        }
        return []
      }
    }
    guard unknown.isEmpty else {
      throw StoreError(
        operation: "open the store \(location)", cause: .unsupportedSchema(unknownMigrations: unknown.sorted()),
        message:
          "it was written by a newer svctrace (schema \(unknown.sorted().joined(separator: ", ")) is unknown here); use that svctrace or another store"
      )
    }
  }

  /// Names of the migrations applied so far, in order.
  public func appliedMigrations() async throws -> [String] {
    try await run("read the schema version") {
      var applied: [String] = []
      for try await id in try await client.query("SELECT id FROM svctrace_migrations ORDER BY id", logger: logger)
        .decode(String.self)
      {
        applied.append(id)
      }
      return applied
    }
  }

  /// The advisory lock key that serialises migrations (`svctrace` in ASCII).
  static let migrationLockKey: Int64 = 0x7376_6374_7261_6365

  /// The first schema: the SQLite store's tables (see `TraceStore.migrator`), with the raw text of
  /// the lines in `line_blocks.raw`, the connection blocks' filter and data in their row, and the
  /// line-id counter.
  static let schemaV1 = [
    "CREATE TABLE nodes (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE)",
    """
    CREATE TABLE cursors (
      node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE, source text NOT NULL, kind text NOT NULL,
      state bytea NOT NULL, updated_at bigint NOT NULL, PRIMARY KEY (node_id, source))
    """,
    """
    CREATE TABLE batches (
      id bigserial PRIMARY KEY, node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
      source text NOT NULL, kind text NOT NULL, collected_at bigint NOT NULL, clock_offset_us bigint NOT NULL,
      clock_bound_us bigint NOT NULL, bytes bigint NOT NULL, transferred_bytes bigint NOT NULL, lines bigint NOT NULL,
      skipped bigint NOT NULL, connections bigint NOT NULL DEFAULT 0, events text NOT NULL DEFAULT '')
    """,
    "CREATE INDEX batches_by_time ON batches(collected_at)",
    "CREATE INDEX batches_by_node ON batches(node_id, source, id)",
    """
    CREATE TABLE correlation_state (
      node_id bigint PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE, state bytea NOT NULL,
      state_batch bigint NOT NULL, last_batch bigint NOT NULL)
    """,
    """
    CREATE TABLE line_blocks (
      first_id bigint PRIMARY KEY, node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
      batch_id bigint NOT NULL, count bigint NOT NULL, last_time bigint NOT NULL, pending bigint NOT NULL,
      times bytea NOT NULL, flags bytea NOT NULL, ends bytea NOT NULL, raw bytea NOT NULL)
    """,
    "CREATE INDEX line_blocks_by_time ON line_blocks(last_time)",
    "CREATE INDEX line_blocks_by_batch ON line_blocks(batch_id)",
    "CREATE INDEX line_blocks_by_node ON line_blocks(node_id)",
    // The raw text is read a line at a time (substring): stored uncompressed, so that a
    // substring reads only the pages it needs.
    "ALTER TABLE line_blocks ALTER COLUMN raw SET STORAGE EXTERNAL",
    "CREATE TABLE line_ids (one boolean PRIMARY KEY DEFAULT true CHECK (one), next bigint NOT NULL)",
    "INSERT INTO line_ids (next) VALUES (1)",
    """
    CREATE TABLE connection_blocks (
      id bigserial PRIMARY KEY, node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
      batch_id bigint NOT NULL, count bigint NOT NULL, min_time bigint NOT NULL, max_time bigint NOT NULL,
      max_slot bigint NOT NULL, client_bloom bytea NOT NULL, data bytea NOT NULL)
    """,
    "ALTER TABLE connection_blocks ALTER COLUMN client_bloom SET STORAGE EXTERNAL",
    "CREATE INDEX connection_blocks_by_time ON connection_blocks(max_time, min_time)",
    "CREATE INDEX connection_blocks_by_start ON connection_blocks(min_time)",
    """
    CREATE TABLE block_keys (
      kind smallint NOT NULL, key bytea NOT NULL, block_id bigint NOT NULL, PRIMARY KEY (kind, key, block_id))
    """,
    """
    CREATE TABLE snapshots (
      id bigserial PRIMARY KEY, taken_at bigint NOT NULL, source text NOT NULL, json text NOT NULL)
    """,
    "CREATE INDEX snapshots_by_time ON snapshots(taken_at)",
    """
    CREATE TABLE service_names (
      id bigserial PRIMARY KEY, ip bytea NOT NULL, port bigint NOT NULL, proto bigint NOT NULL,
      namespace text NOT NULL, name text NOT NULL, valid_from bigint NOT NULL, valid_to bigint)
    """,
    "CREATE INDEX service_names_by_address ON service_names(ip, port)",
    "CREATE INDEX service_names_by_name ON service_names(namespace, name)",
    """
    CREATE TABLE pod_names (
      id bigserial PRIMARY KEY, ip bytea NOT NULL, namespace text NOT NULL, name text NOT NULL, node text NOT NULL,
      host_network bigint NOT NULL, valid_from bigint NOT NULL, valid_to bigint)
    """,
    "CREATE INDEX pod_names_by_ip ON pod_names(ip)",
    "CREATE INDEX pod_names_by_name ON pod_names(namespace, name)",
    """
    CREATE TABLE endpoint_names (
      id bigserial PRIMARY KEY, service_namespace text NOT NULL, service_name text NOT NULL, ip bytea NOT NULL,
      port bigint NOT NULL, proto bigint NOT NULL, pod_namespace text NOT NULL, pod_name text NOT NULL,
      node text NOT NULL, valid_from bigint NOT NULL, valid_to bigint)
    """,
    "CREATE INDEX endpoint_names_by_ip ON endpoint_names(ip, port)",
    "CREATE INDEX endpoint_names_by_service ON endpoint_names(service_namespace, service_name)",
  ]

  // MARK: Keys

  /// A stable 64-bit key for `text` (FNV-1a), the same on every machine and run: advisory lock
  /// keys of nodes.
  static func stableKey(_ text: String) -> Int64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    return Int64(bitPattern: hash)
  }

  /// The advisory lock (transaction level) a commit takes just before it inserts connection
  /// blocks, held until it commits: new connection ids become visible in id order.
  ///
  /// Connection ids are block ids (a sequence) shifted left by 24 bits, plus a slot. Without
  /// the lock two commits could take ids 11 and 12 and commit 12 first: `trace --follow`, which
  /// asks for connections after the newest id it printed, would see 12 and then never ask for
  /// 11. With it, a commit takes its block ids only after every earlier taker has committed or
  /// rolled back, so a reader that sees an id has seen (or will never see) every lower one.
  /// Only the tail of a commit is serialised (inserting its blocks and their keys, re-DNAT
  /// rewrites, the cursor, the commit itself); commits without connections do not take it.
  /// Chosen over a reader-side horizon (`pg_snapshot_xmin`) because block ids say nothing about
  /// which transaction took them, and over re-reading a trailing window because no window is
  /// safe against a transaction held open for long.
  static let connectionOrderLockKey: Int64 = stableKey("svctrace connection order")

  /// The advisory lock a collect's claim on `node` holds (session level).
  static func claimKey(_ node: HostID) -> Int64 { stableKey("svctrace claim " + node.name) }
  /// The advisory lock a commit of `node` holds (transaction level).
  static func commitKey(_ node: HostID) -> Int64 { stableKey("svctrace commit " + node.name) }

  func nextConnectionID() -> Int { connectionIDs.add(1, ordering: .relaxed).newValue }
}

/// Converts bytea cells and values.
extension ByteBuffer {
  var bytes: [UInt8] { Array(readableBytesView) }
}

extension Array where Element == UInt8 {
  var buffer: ByteBuffer { ByteBuffer(bytes: self) }
}

extension Data {
  var buffer: ByteBuffer { ByteBuffer(bytes: self) }
}
