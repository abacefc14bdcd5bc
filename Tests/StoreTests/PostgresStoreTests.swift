import Foundation
import PostgresStore
import SVCTraceCore
import StoreTestSupport
import Synchronization
import Testing

@testable import Logs
@testable import Store

/// What only the PostgreSQL store has: URLs and passwords, the schema table, claims and commits
/// of several store connections (as several collectors on several machines) at once.
@Suite("PostgreSQL store")
struct PostgresStoreTests {
  let t1: Int64 = 1_780_000_000_000_000
  let source = "file:/var/log/iptables.log"

  func open(_ url: String) async throws -> PostgresTraceStore {
    try await PostgresTraceStore.open(
      try PostgresStoreLocation(url: url), password: nil, replayParser: { _ in FakeParser() })
  }

  @Test func urlsParseAndNeverCarryAPassword() throws {
    let location = try PostgresStoreLocation(url: "postgres://svc@db.example:6543/traces?sslmode=verify-full")
    #expect(location.user == "svc" && location.host == "db.example" && location.port == 6543)
    #expect(location.database == "traces" && location.sslMode == .verifyFull)
    #expect(location.description == "postgres://svc@db.example:6543/traces?sslmode=verify-full")
    #expect(try PostgresStoreLocation(url: "postgresql://svc@h/d").sslMode == .prefer)
    let withPassword = #expect(throws: StoreError.self) {
      try PostgresStoreLocation(url: "postgres://svc:hunter2@db.example/traces")
    }
    #expect(withPassword.map { !$0.description.contains("hunter2") && $0.description.contains("***") } == true)
    #expect(throws: StoreError.self) { try PostgresStoreLocation(url: "postgres://svc@h/d?sslmode=sometimes") }
    #expect(throws: StoreError.self) { try PostgresStoreLocation(url: "postgres://svc@h/") }
    #expect(throws: StoreError.self) { try PostgresStoreLocation(url: "postgres://h/d", environment: [:]) }
    #expect(PostgresStoreLocation.masked("postgres://a:b@c/d") == "postgres://a:***@c/d")
    #expect(PostgresStoreLocation.isPostgresURL("/var/lib/svctrace.sqlite") == false)
  }

  @Test func pgpassFollowsLibpqRules() throws {
    let location = try PostgresStoreLocation(url: "postgres://collector@db.example:5432/traces")
    let file = """
      # comment
      other.example:5432:traces:collector:wrong
      db.example:*:other:collector:wrong-db
      db.example:5432:traces:collector:pa\\:ss\\\\word
      *:*:*:*:fallback
      """
    #expect(PostgresPassword.lookup(file, for: location) == "pa:ss\\word")
    #expect(PostgresPassword.lookup("*:*:*:*:any", for: location) == "any")
    #expect(PostgresPassword.lookup("db.example:5433:*:*:x", for: location) == nil)

    // The environment wins; a file others can read is ignored with a warning.
    let directory = try TempDirectory()
    let path = directory.file("pgpass")
    try Data("*:*:*:*:from-file\n".utf8).write(to: URL(fileURLWithPath: path))
    #expect(chmod(path, 0o644) == 0)
    var warnings: [String] = []
    #expect(PostgresPassword.resolve(for: location, environment: ["PGPASSFILE": path]) { warnings.append($0) } == nil)
    #expect(warnings.count == 1 && warnings[0].contains("0600"))
    #expect(chmod(path, 0o600) == 0)
    #expect(PostgresPassword.resolve(for: location, environment: ["PGPASSFILE": path]) { _ in } == "from-file")
    #expect(
      PostgresPassword.resolve(for: location, environment: ["PGPASSFILE": path, "PGPASSWORD": "env"]) { _ in }
        == "env")
  }

  @Test func aStoreMigratedByANewerSvctraceIsRefused() async throws {
    let url = try await TestPostgres.makeDatabase()
    let store = try await open(url)
    #expect(try await store.appliedMigrations() == ["line-loss", "v1"])
    // Opening again is a no-op.
    _ = try await open(url)
    try await TestPostgres.psql(url, "INSERT INTO svctrace_migrations (id) VALUES ('v9-from-the-future')")
    let refused = await #expect(throws: StoreError.self) { try await open(url) }
    #expect(refused?.cause == .unsupportedSchema(unknownMigrations: ["v9-from-the-future"]))
  }

  @Test func anUnreachableServerIsATypedErrorNamingTheStore() async throws {
    let error = await #expect(throws: StoreError.self) {
      try await open("postgres://nobody@127.0.0.1:1/none?sslmode=disable")
    }
    #expect(error?.description.contains("127.0.0.1:1/none") == true)
  }

  @Test func aClaimExcludesOtherConnectionsUntilReleased() async throws {
    let url = try await TestPostgres.makeDatabase()
    let first = try await open(url)
    let second = try await open(url)
    let claim = try #require(try await first.claimCollect(node: HostID("node1")))
    #expect(try await second.claimCollect(node: HostID("node1")) == nil)
    let other = try #require(try await second.claimCollect(node: HostID("node2")))
    claim.release()
    // The lock is let go of on the server before this process claims again.
    let again = try #require(try await first.claimCollect(node: HostID("node1")))
    #expect(try await second.claimCollect(node: HostID("node1")) == nil)
    again.release()
    other.release()
  }

  @Test func twoWritersOfOneNodeStoreEachLineOnce() async throws {
    let url = try await TestPostgres.makeDatabase()
    let first = try await open(url)
    let second = try await open(url)
    let node = HostID("node1")
    // Both pull the same bytes after the same (no) cursor and commit at once: one wins.
    var lines: [String] = []
    for index in 0..<200 {
      let port = UInt16(30000 + index)
      lines.append(fakeLine(t1 + Int64(index), .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1)))
      lines.append(
        fakeLine(t1 + Int64(index) + 1, .post, "10.244.1.5", port, "10.244.1.7", 8080, id: UInt32(index + 1)))
    }
    let collected = batch(lines)
    // Both read the same start and prepare the same bytes before either commits.
    var prepared: [(PostgresTraceStore, PreparedBatch)] = []
    for store in [first, second] {
      let start = try await store.ingestStart(node: node, source: collected.sourceID)
      var base: IngestBase? = start.base
      prepared.append(
        (store, store.prepare(collected, after: start.cursor, base: &base, storesState: true, staging: nil)))
    }
    let results = await withTaskGroup(of: Result<CommitResult, any Error>.self) { group in
      for (store, batch) in prepared {
        group.addTask {
          do {
            return .success(try await store.commit(batch))
          } catch {
            return .failure(error)
          }
        }
      }
      var results: [Result<CommitResult, any Error>] = []
      for await result in group { results.append(result) }
      return results
    }
    let refused = results.compactMap { result -> StoreError? in
      if case .failure(let error) = result { return error as? StoreError }
      return nil
    }
    #expect(results.count { if case .success = $0 { true } else { false } } == 1)
    #expect(refused.map(\.cause) == [.cursorMoved])
    let records = try await first.connections(matching: TraceQuery())
    #expect(records.count == 200)
    #expect(
      try await second.lines(ids: records.flatMap { [$0.preLineID, $0.postLineID].compactMap { $0 } }).count == 400)
    #expect(try await first.storedLineIDs(limit: 1000).count == 400)
    #expect(try await first.collectStatus().map(\.batches) == [1])
  }

  /// `trace --follow` asks for the connections after the newest id it printed: a commit that
  /// took a lower id but commits later must not slip behind it.
  @Test func aFollowingReaderNeverSkipsAConnectionOfALaterCommit() async throws {
    let url = try await TestPostgres.makeDatabase()
    let first = try await open(url)
    let second = try await open(url)
    func connection(_ node: String, _ port: UInt16) -> CollectedBatch {
      batch(
        [
          fakeLine(t1, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(port)),
          fakeLine(t1 + 1, .post, "10.244.1.5", port, "10.244.1.7", 8080, id: UInt32(port)),
        ], node: node)
    }
    try await first.commit(PreparedBatch(connection("node0", 40000)))
    let startID = try #require(try await first.latestConnectionID())

    // The first commit takes its connection id and stays open until released.
    let (reached, reachedContinuation) = AsyncStream.makeStream(of: Void.self)
    let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
    let held = Task {
      try await first.commit(
        PreparedBatch(connection("node1", 40001)), faultInjection: nil,
        beforeCommit: {
          reachedContinuation.yield()
          for await _ in release { break }
        })
    }
    for await _ in reached { break }
    // The second commit, of another node, runs meanwhile: it either commits or waits.
    let done = Mutex(false)
    let later = Task {
      defer { done.withLock { $0 = true } }
      return try await second.commit(PreparedBatch(connection("node2", 40002)))
    }
    while !done.withLock({ $0 }) {
      let waiting = try await TestPostgres.query(
        url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
      if waiting != "0" { break }
      try await Task.sleep(for: .milliseconds(10))
    }

    // A follow round now, and one after both committed.
    var lastID = startID
    var followed: [ConnectionRecord] = []
    for round in 0..<2 {
      if round == 1 {
        releaseContinuation.yield()
        _ = try await held.value
        _ = try await later.value
      }
      let records = try await second.connections(matching: TraceQuery(afterID: lastID))
      followed += records
      lastID = records.map(\.id).reduce(lastID, max)
    }
    #expect(followed.map(\.node.name).sorted() == ["node1", "node2"])
  }

  @Test func writersOfDifferentNodesCommitSideBySideWithDistinctLineIDs() async throws {
    let url = try await TestPostgres.makeDatabase()
    let stores = [try await open(url), try await open(url)]
    // Each store correlates ahead with ids of its own: no commit has to correlate again.
    let reCorrelated = try await withThrowingTaskGroup(of: Int.self) { group in
      for (index, store) in stores.enumerated() {
        group.addTask {
          var reCorrelated = 0
          let node = "node\(index + 1)"
          var start = try await store.ingestStart(node: HostID(node), source: source)
          var base: IngestBase? = start.base
          var last = start.base.lastBatch
          for round in 0..<10 {
            let lines = [
              fakeLine(
                t1 + Int64(round * 10), .pre, "10.244.\(index).5", UInt16(40000 + round), "10.96.0.10", 80, id: 1),
              fakeLine(
                t1 + Int64(round * 10 + 1), .post, "10.244.\(index).5", UInt16(40000 + round), "10.244.1.7", 8080,
                id: 1),
            ]
            var prepared = store.prepare(
              batch(lines, node: node, offset: UInt64(round * 1000)), after: start.cursor, base: &base,
              storesState: round == 9,
              staging: nil)
            prepared.expectedLastBatch = last
            let committed = try await store.commit(prepared)
            if committed.reCorrelated {
              base = nil
              reCorrelated += 1
            }
            last = committed.summary.batchID
            start.cursor = prepared.batch.cursor
          }
          return reCorrelated
        }
      }
      return try await group.reduce(0, +)
    }
    #expect(reCorrelated == 0)
    let records = try await stores[0].connections(matching: TraceQuery())
    #expect(records.count == 20)
    let ids = records.flatMap { [$0.preLineID, $0.postLineID].compactMap { $0 } }
    #expect(Set(ids).count == 40)
    let explained = try await stores[1].lines(ids: ids)
    #expect(explained.count == 40 && explained.allSatisfy { $0.outcome == "matched" })
    for record in records {
      let lines = try await stores[0].explain(record)
      #expect(lines.map(\.node) == [record.node.name, record.node.name])
    }
  }
}

extension PostgresStoreTests {
  /// A batch prepared ahead whose node another store connection committed meanwhile (another
  /// source of it) is correlated again with fresh ids, above the other's.
  @Test func aBatchOvertakenByAnotherCollectOfItsNodeTakesFreshIDs() async throws {
    let url = try await TestPostgres.makeDatabase()
    let first = try await open(url)
    let second = try await open(url)
    let node = HostID("node1")
    let mineLine = fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)
    let theirLine = fakeLine(t1, .pre, "10.244.1.6", 40001, "10.96.0.10", 80, id: 2)
    let start = try await first.ingestStart(node: node, source: "file:/a")
    var base: IngestBase? = start.base
    let mine = first.prepare(
      batch([mineLine], source: "file:/a"),
      after: start.cursor, base: &base, storesState: true, staging: nil)
    let other = try await second.ingestStart(node: node, source: "file:/b")
    var otherBase: IngestBase? = other.base
    let theirs = second.prepare(
      batch([theirLine], source: "file:/b"),
      after: other.cursor, base: &otherBase, storesState: true, staging: nil)
    #expect(try await second.commit(theirs).reCorrelated == false)
    #expect(try await first.commit(mine).reCorrelated == true)
    let ids = try await first.storedLineIDs(limit: 10)
    let lines = try await first.lines(ids: ids)
    #expect(lines.map(\.raw) == [theirLine, mineLine])
  }
}

/// `svctrace store copy`: SQLite → PostgreSQL → SQLite gives the same connections, names and
/// lines, and copying again copies nothing.
@Suite("Store copy")
struct StoreCopyTests {
  let t1: Int64 = 1_780_000_000_000_000
  let ms: Int64 = 1000

  /// What a store answers, apart from its ids.
  func contents(_ store: any TraceStoring) async throws -> [String] {
    var out: [String] = []
    for record in try await store.connections(matching: TraceQuery()) {
      let lines = try await store.explain(record).map { "\($0.stage) \($0.outcome) \($0.raw)" }
      out.append(
        "\(record.timeMicros) \(record.node) \(record.client):\(record.clientPort) \(record.pod.map { "\($0)" } ?? "-"):\(record.podPort.map { "\($0)" } ?? "-") \(record.method) \(record.serviceName ?? "-") \(record.podName ?? "-") \(lines)"
      )
    }
    out += try await store.collectStatus().map { "\($0.node) \($0.source) \($0.lines) \($0.connections) \($0.pending)" }
    return out
  }

  @Test func aCopyThereAndBackKeepsEverythingAndTwiceCopiesNothing() async throws {
    let directory = try TempDirectory()
    let sqlite = try TraceStore(path: directory.file("a.sqlite"), replayParser: { _ in FakeParser() })
    try sqlite.ingestSnapshot(json: try fixture("snapshot-1.json"), takenAtMicros: t1, source: "fixture-1")
    // 70 batches of node1 (more than a page), a re-DNAT across batches, a pending line, node2.
    for index in 0..<70 {
      let port = UInt16(20000 + index)
      try await sqlite.commit(
        batch(
          [
            fakeLine(t1 + Int64(index) * ms, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1)),
            fakeLine(t1 + Int64(index) * ms + 1, .post, "10.244.1.5", port, "10.244.1.7", 8080, id: UInt32(index + 1)),
          ], offset: UInt64(index) * 1000))
    }
    try await sqlite.commit(
      batch(
        [
          fakeLine(t1 + 100 * ms, .pre, "10.244.1.5", 20000, "10.96.0.10", 80, id: 9999),
          fakeLine(t1 + 100 * ms + 3, .post, "10.244.1.5", 20000, "10.244.2.8", 8080, id: 9999),
          fakeLine(t1 + 101 * ms, .pre, "10.244.1.6", 1, "10.96.0.10", 80, id: 5),
        ], offset: 900_000))
    try await sqlite.commit(
      batch([fakeLine(t1, .post, "10.244.1.9", 3, "10.244.1.7", 8080, id: 3)], node: "node2", offset: 5))
    // Two settled loss intervals of node1.
    let losses = [
      LossInterval(
        node: "node1", fromMicros: t1, untilMicros: t1 + 30_000_000, packets: 140, lines: 103, lost: 37,
        recordedAtMicros: t1 + 31_000_000),
      LossInterval(
        node: "node1", fromMicros: t1 + 30_000_000, untilMicros: t1 + 60_000_000, packets: 5, lines: 5, lost: 0,
        recordedAtMicros: t1 + 61_000_000),
    ]
    try await sqlite.recordLoss(node: HostID("node1"), ledger: LossLedger(), intervals: losses)
    let expected = try await contents(sqlite)
    #expect(expected.count > 70)

    let url = try await TestPostgres.makeDatabase()
    let postgres = try await PostgresTraceStore.open(
      try PostgresStoreLocation(url: url), password: nil, replayParser: { _ in FakeParser() })
    let there = try await StoreCopier.copy(from: sqlite, to: postgres, parser: { _ in FakeParser() })
    #expect(there.copiedSources == 2 && there.batches == 72 && there.snapshots == 1 && there.conflictingSources.isEmpty)
    #expect(try await contents(postgres) == expected)
    #expect(there.lossIntervals == 2)
    #expect(try await postgres.lossIntervals(sinceMicros: nil, untilMicros: nil) == losses)
    let again = try await StoreCopier.copy(from: sqlite, to: postgres, parser: { _ in FakeParser() })
    #expect(
      again.copiedSources == 0 && again.upToDateSources == 2 && again.batches == 0 && again.snapshots == 0
        && again.lossIntervals == 0)
    #expect(try await contents(postgres) == expected)

    let back = try TraceStore(path: directory.file("b.sqlite"), replayParser: { _ in FakeParser() })
    let returned = try await StoreCopier.copy(from: postgres, to: back, parser: { _ in FakeParser() })
    #expect(returned.batches == 72 && returned.lossIntervals == 2)
    #expect(try await contents(back) == expected)
    // Cursors came along: a collect continues where the original left off.
    #expect(
      try await back.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log").cursor
        == (try sqlite.cursor(node: HostID("node1"), source: "file:/var/log/iptables.log")))

    // A destination that collected the node itself is left alone.
    let other = try TraceStore(path: directory.file("c.sqlite"), replayParser: { _ in FakeParser() })
    try await other.commit(batch([fakeLine(t1, .pre, "10.244.1.5", 1, "10.96.0.10", 80, id: 1)], offset: 77))
    let conflict = try await StoreCopier.copy(from: sqlite, to: other, parser: { _ in FakeParser() })
    #expect(conflict.conflictingSources.count == 1 && conflict.copiedSources == 1)
  }
}

/// The README's roles: a reader role reads a team store and cannot write to it.
@Suite("PostgreSQL roles")
struct PostgresRoleTests {
  @Test func aReaderRoleTracesButCannotCommit() async throws {
    let url = try await TestPostgres.makeDatabase()
    let owner = try await PostgresTraceStore.open(
      try PostgresStoreLocation(url: url), password: nil, replayParser: { _ in FakeParser() })
    let t1: Int64 = 1_780_000_000_000_000
    try await owner.commit(
      batch([
        fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1),
        fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1),
      ]))
    let reader = "reader_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
    try await TestPostgres.psql(
      url,
      """
      CREATE ROLE \(reader) LOGIN; GRANT USAGE ON SCHEMA public TO \(reader);
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO \(reader)
      """)
    let readerURL = url.replacingOccurrences(of: "postgres://svctrace@", with: "postgres://\(reader)@")
    let store = try await PostgresTraceStore.open(
      try PostgresStoreLocation(url: readerURL), password: nil, replayParser: { _ in FakeParser() })
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.count == 1)
    #expect(try await store.explain(records[0]).count == 2)
    #expect(try await store.collectStatus().count == 1)
    let refused = await #expect(throws: StoreError.self) {
      try await store.commit(batch([fakeLine(t1 + 5, .pre, "10.244.1.6", 1, "10.96.0.10", 80, id: 2)], offset: 9))
    }
    #expect(refused?.cause == .postgres(sqlState: "42501"))
  }
}
