import Foundation
import GRDB
import PostgresStore
import SVCTraceCore
import StoreTestSupport
import Testing

@testable import Logs
@testable import Store

/// A store implementation under test, made fresh for each test.
struct StoreFactory: Sendable, CustomTestStringConvertible {
  var name: String
  var open: @Sendable (_ directory: TempDirectory, _ correlation: CorrelationSettings) async throws -> any TraceStoring

  var testDescription: String { name }

  /// Every implementation of ``TraceStoring``: the behaviour tests run against each.
  static let all: [StoreFactory] = [
    StoreFactory(name: "SQLite in memory") { _, correlation in
      try TraceStore.inMemory(correlation: correlation, replayParser: { _ in FakeParser() })
    },
    StoreFactory(name: "SQLite file with raw segments") { directory, correlation in
      try TraceStore(
        path: directory.file("store.sqlite"), correlation: correlation, replayParser: { _ in FakeParser() })
    },
    // A database of its own on the test server (TestPostgres): fails, never skips, without one.
    StoreFactory(name: "PostgreSQL") { _, correlation in
      try await PostgresTraceStore.open(
        try PostgresStoreLocation(url: try await TestPostgres.makeDatabase()), password: nil, correlation: correlation,
        replayParser: { _ in FakeParser() })
    },
  ]

  /// A new, empty store (parsing replayed lines with ``FakeParser``).
  func make(correlation: CorrelationSettings = CorrelationSettings()) async throws -> StoreUnderTest {
    let directory = try TempDirectory()
    return StoreUnderTest(store: try await open(directory, correlation), directory: directory)
  }
}

/// A store and the directory it lives in (removed when the test lets go of it).
struct StoreUnderTest {
  var store: any TraceStoring
  var directory: TempDirectory
}

extension TraceStoring {
  /// Commits `batch` on its own (correlated in the transaction).
  @discardableResult
  func commit(_ batch: CollectedBatch) async throws -> CommitSummary {
    try await commit(PreparedBatch(batch)).summary
  }

  /// The first stored lines (the behaviour tests store few).
  func firstLines() async throws -> [StoredLine] {
    if let store = self as? PostgresTraceStore { return try await lines(ids: store.storedLineIDs(limit: 200)) }
    return try await lines(ids: Array(1...200))
  }
}

extension FaultInjectableStore {
  /// Commits `batch` on its own, calling `faultInjection` in the transaction before the cursor.
  @discardableResult
  func commit(_ batch: CollectedBatch, faultInjection: @escaping @Sendable () throws -> Void) async throws
    -> CommitSummary
  {
    try await commit(PreparedBatch(batch), faultInjection: faultInjection).summary
  }
}

/// What every ``TraceStoring`` implementation must do, run against each of ``StoreFactory/all``:
/// atomic commits (cursor, lines, connections and correlator state together), correlator state
/// carried across batches and replayed, re-DNAT rewrites, names by time, lookups, stats,
/// `--explain`, status and prune.
@Suite("Store behaviour")
struct StoreBehaviourTests {
  let ms: Int64 = 1000
  let t1: Int64 = 1_780_000_000_000_000  // first snapshot
  var t2: Int64 { t1 + 3_600_000_000 }  // second snapshot, an hour later
  let source = "file:/var/log/iptables.log"

  @Test(arguments: StoreFactory.all)
  func theCursorMovesOnlyWithItsBatch(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    #expect(try await store.ingestStart(node: HostID("node1"), source: source).cursor == nil)
    let first = batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)])
    try await store.commit(first)
    #expect(try await store.ingestStart(node: HostID("node1"), source: source).cursor == first.cursor)
    #expect(try await store.ingestStart(node: HostID("node1"), source: "file:/other").cursor == nil)
    #expect(try await store.ingestStart(node: HostID("node2"), source: source).cursor == nil)
  }

  @Test(arguments: StoreFactory.all)
  func aCommitWhoseCursorMovedIsRefusedAndStoresNothing(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let node = HostID("node1")
    // Two collects start from the same (no) cursor and pull the same bytes.
    let start = try await store.ingestStart(node: node, source: source)
    var theirBase: IngestBase? = start.base
    var myBase: IngestBase? = start.base
    let lines = [
      fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1),
      fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1),
    ]
    let theirs = store.prepare(batch(lines), after: start.cursor, base: &theirBase, storesState: true, staging: nil)
    let mine = store.prepare(batch(lines), after: start.cursor, base: &myBase, storesState: true, staging: nil)
    #expect(mine.precondition == .continues(from: nil))
    try await store.commit(theirs)
    let refused = await #expect(throws: StoreError.self) { try await store.commit(mine) }
    #expect(refused?.cause == .cursorMoved)
    // Stored once: the lines, the connection, the batch; the cursor is the winner's.
    #expect(try await store.firstLines().map(\.outcome) == ["matched", "matched"])
    #expect(try await store.connections(matching: TraceQuery()).count == 1)
    let status = try #require(try await store.collectStatus().first)
    #expect(status.batches == 1 && status.lines == 2 && status.connections == 1)
    #expect(try await store.ingestStart(node: node, source: source).cursor == theirs.batch.cursor)

    // A later batch pulled after a stale cursor is refused too; after the stored one it commits.
    let later = [fakeLine(t1 + 10, .pre, "10.244.1.5", 40001, "10.96.0.10", 80, id: 2)]
    var base: IngestBase? = try await store.ingestStart(node: node, source: source).base
    let stale = store.prepare(
      batch(later, offset: 100), after: batch(lines, offset: 50).cursor, base: &base, storesState: true, staging: nil)
    let again = await #expect(throws: StoreError.self) { try await store.commit(stale) }
    #expect(again?.cause == .cursorMoved)
    #expect(try await store.firstLines().count == 2)
    base = try await store.ingestStart(node: node, source: source).base
    let current = store.prepare(
      batch(later, offset: 100), after: theirs.batch.cursor, base: &base, storesState: true, staging: nil)
    #expect(try await store.commit(current).summary.lines == 1)
    #expect(try await store.ingestStart(node: node, source: source).cursor == current.batch.cursor)
    #expect(try await store.firstLines().count == 3)
  }

  @Test(arguments: StoreFactory.all)
  func aNodeIsClaimedByOneCollectAtATime(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let claim = try #require(try await store.claimCollect(node: HostID("node1")))
    #expect(try await store.claimCollect(node: HostID("node1")) == nil)
    let unusual = try #require(try await store.claimCollect(node: HostID("../node 2")))
    claim.release()
    claim.release()
    let again = try #require(try await store.claimCollect(node: HostID("node1")))
    #expect(try await store.claimCollect(node: HostID("../node 2")) == nil)
    again.release()
    unusual.release()
  }

  @Test(arguments: StoreFactory.all)
  func stateNotStoredWithABatchIsReplayedForTheNextCollect(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    // A collect that correlated the pre line ahead and stopped before storing its state.
    let start = try await store.ingestStart(node: HostID("node1"), source: source)
    var base: IngestBase? = start.base
    var pre = store.prepare(
      batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)]), after: start.cursor, base: &base,
      storesState: false, staging: nil)
    pre.expectedLastBatch = start.base.lastBatch
    let first = try await store.commit(pre)
    #expect(first.reCorrelated == false)
    // The next collect starts from the state after that batch, rebuilt by replaying it: the
    // post line correlated ahead joins the pending pre line.
    let next = try await store.ingestStart(node: HostID("node1"), source: source)
    #expect(next.base.lastBatch == first.summary.batchID)
    var again: IngestBase? = next.base
    var post = store.prepare(
      batch([fakeLine(t1 + 5, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], offset: 100),
      after: next.cursor, base: &again, storesState: true, staging: nil)
    post.expectedLastBatch = next.base.lastBatch
    let second = try await store.commit(post)
    #expect(second.reCorrelated == false && second.summary.connections == 1)
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.map(\.pod) == [IPAddress("10.244.1.7")!])
    #expect(records.map(\.preLineID) == [1] && records.map(\.postLineID) == [2])
    #expect(try await store.firstLines().map(\.outcome) == ["matched", "matched"])
  }

  @Test(arguments: StoreFactory.all) func commitStoresLinesConnectionsBatchAndCursorTogether(_ factory: StoreFactory)
    async throws
  {
    let subject = try await factory.make()
    let store = subject.store
    let summary = try await store.commit(
      batch(
        [
          fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1),
          "garbage that the parser skips",
          fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1),
        ], clock: ClockOffset(offsetMicros: 500, boundMicros: 20)))
    #expect(summary.lines == 2 && summary.skipped == 1 && summary.connections == 1)
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.count == 1)
    #expect(records[0].timeMicros == t1 - 500)
    let cursor = try await store.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log").cursor
    let position = cursor.flatMap(FileCursor.init)
    #expect(cursor?.kind == FileCursor.kind && position?.inode == 7 && position?.offset ?? 0 > 0)
    let status = try #require(try await store.collectStatus().first)
    #expect(status.clockOffset == 500 && status.clockBound == 20 && status.batches == 1)
    #expect(status.lines == 3 && status.skipped == 1 && status.connections == 1)
    let explained = try await store.explain(records[0])
    #expect(explained.map(\.stage) == ["pre", "post"])
    #expect(explained.allSatisfy { $0.outcome == "matched" })
    #expect(explained[0].raw.hasPrefix("T=\(t1) PRE"))
  }

  @Test(arguments: StoreFactory.all) func collectStatusSummarizesEachNodeSource(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    try await store.commit(
      batch(
        [fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1), "junk"],
        clock: ClockOffset(offsetMicros: -40, boundMicros: 3)))
    try await store.commit(
      batch([fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], node: "node2"))
    let status = try await store.collectStatus()
    #expect(status.map(\.node) == ["node1", "node2"])
    #expect(status[0].lines == 2 && status[0].skipped == 1 && status[0].pending == 1 && status[0].batches == 1)
    #expect(status[0].clockOffset == -40 && status[0].clockBound == 3)
    #expect(status[1].connections == 0 && status[1].pending == 0)
  }

  @Test(arguments: StoreFactory.all) func failedCommitLeavesDataStateAndCursorUnchanged(_ factory: StoreFactory)
    async throws
  {
    let subject = try await factory.make()
    let store = subject.store
    try await store.commit(batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)]))
    let cursorBefore = try await store.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log").cursor
    let post = batch([fakeLine(t1 + 5, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], offset: 100)
    let faulty = try #require(store as? any FaultInjectableStore)
    await #expect(throws: InjectedFault.self) {
      try await faulty.commit(post, faultInjection: { throw InjectedFault() })
    }
    #expect(try await store.connections(matching: TraceQuery()).isEmpty)
    #expect(
      try await store.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log").cursor == cursorBefore)
    #expect(try await store.firstLines().count == 1)
    // The retry joins the pending pre line that the failed attempt had (in memory) consumed.
    try await store.commit(post)
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.count == 1)
    #expect(try await store.explain(records[0]).allSatisfy { $0.outcome == "matched" })
  }

  @Test(arguments: StoreFactory.all) func explainReadsOneLineOfABlockAndLaterOutcomesPatchIt(_ factory: StoreFactory)
    async throws
  {
    let subject = try await factory.make()
    let store = subject.store
    // A block whose last line stays pending, then the batch that decides it.
    var lines: [String] = []
    for index in 0..<500 {
      let port = UInt16(20000 + index)
      lines.append(fakeLine(t1 + Int64(index) * ms, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1)))
      if index < 499 {
        lines.append(
          fakeLine(t1 + Int64(index) * ms + 1, .post, "10.244.1.5", port, "10.244.2.7", 8080, id: UInt32(index + 1)))
      }
    }
    try await store.commit(batch(lines))
    #expect(try await store.collectStatus()[0].pending == 1)
    try await store.commit(
      batch([fakeLine(t1 + 500 * ms, .post, "10.244.1.5", 20499, "10.244.3.3", 8080, id: 500)], offset: 1))
    #expect(try await store.collectStatus()[0].pending == 0)
    let record = try #require(
      try await store.connections(matching: TraceQuery(client: IPAddress("10.244.1.5"), clientPort: 20499)).first)
    #expect(record.pod == IPAddress("10.244.3.3"))
    let explained = try await store.explain(record)
    #expect(explained.map(\.id) == [999, 1000], "ids from 1, on across batches")
    #expect(explained.map(\.outcome) == ["matched", "matched"])
    #expect(explained[0].raw == lines[998] && explained[0].timeMicros == t1 + 499 * ms)
    // A record in the middle of the first block.
    let middle = try #require(
      try await store.connections(matching: TraceQuery(client: IPAddress("10.244.1.5"), clientPort: 20250)).first)
    #expect(try await store.explain(middle).map(\.raw) == [lines[500], lines[501]])
  }

  @Test(arguments: StoreFactory.all) func pendingPreJoinsPostOfALaterBatchPerNode(_ factory: StoreFactory) async throws
  {
    let subject = try await factory.make()
    let store = subject.store
    try await store.commit(batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)], node: "node1"))
    // The same key on another node is another connection: it must not join node1's pre line.
    try await store.commit(
      batch([fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.9.9", 8080, id: 1)], node: "node2"))
    #expect(try await store.connections(matching: TraceQuery()).isEmpty)
    try await store.commit(
      batch([fakeLine(t1 + 2, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], node: "node1"))
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.map(\.node) == [HostID("node1")])
    #expect(records.map(\.pod) == [IPAddress("10.244.1.7")!])
  }

  @Test(arguments: StoreFactory.all) func aRetryDNATedAgainInALaterBatchMovesTheStoredConnection(
    _ factory: StoreFactory
  ) async throws {
    let subject = try await factory.make()
    let store = subject.store
    try await store.commit(
      batch([
        fakeLine(t1, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57408),
        fakeLine(t1 + 2, .post, "10.244.1.10", 37535, "10.244.1.10", 8080, id: 57408),
      ]))
    #expect(try await store.connections(matching: TraceQuery()).map(\.pod) == [IPAddress("10.244.1.10")!])
    try await store.commit(
      batch([
        fakeLine(t1 + 8 * ms, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57409),
        fakeLine(t1 + 8 * ms + 3, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 57409),
      ]))
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.map(\.pod) == [IPAddress("10.244.2.10")!])
    #expect(records.map(\.method) == [.reDNAT])
    #expect(records.map(\.postLineID) == [4])
  }

  @Test(arguments: StoreFactory.all) func aPreLineWithoutPostLineIsStoredWithoutAPodAndFoundByClientAndService(
    _ factory: StoreFactory
  ) async throws {
    let subject = try await factory.make()
    let store = subject.store
    // A client whose packet was never DNATed (no post line) beside one that was.
    try await store.commit(
      batch([
        fakeLine(t1, .pre, "10.250.0.7", 40000, "10.96.0.10", 80, id: 1),
        fakeLine(t1 + 10 * ms, .pre, "10.244.1.5", 40001, "10.96.0.10", 80, id: 2),
        fakeLine(t1 + 10 * ms + 1, .post, "10.244.1.5", 40001, "10.244.1.7", 8080, id: 2),
      ]))
    // Within the expiry bound the pre line waits for its post line.
    #expect(try await store.connections(matching: TraceQuery()).map(\.method) == [.exactID])
    // Once the node's log runs past the bound it is kept, pod unknown.
    try await store.commit(
      batch([fakeLine(t1 + 200_000 * ms, .pre, "10.244.1.6", 40002, "10.96.0.11", 80, id: 3)], offset: 1))
    let byClient = try await store.connections(matching: TraceQuery(client: IPAddress("10.250.0.7"), clientPort: 40000))
    let record = try #require(byClient.first)
    #expect(byClient.count == 1)
    #expect(record.method == .podUnknown && record.pod == nil && record.podPort == nil)
    #expect(record.service == IPAddress("10.96.0.10") && record.servicePort == 80 && record.timeMicros == t1)
    #expect(record.preLineID != nil && record.postLineID == nil)
    #expect(record.podName == nil && record.podServices.isEmpty)
    let explained = try await store.explain(record)
    #expect(explained.map(\.stage) == ["pre"] && explained.map(\.outcome) == ["expired"])
    // In JSON: the pod is null, the method says why.
    let json = try #require(
      try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
    #expect(json["pod_ip"] is NSNull && json["pod_port"] is NSNull && json["method"] as? String == "pod-unknown")
    // By Service: both connections; by pod: never (not even the placeholder address).
    let byService = try await store.connections(matching: TraceQuery(service: IPAddress("10.96.0.10"), servicePort: 80))
    #expect(byService.map(\.method) == [.podUnknown, .exactID])
    #expect(try await store.connections(matching: TraceQuery(pod: IPAddress("10.244.1.7"))).map(\.method) == [.exactID])
    #expect(try await store.connections(matching: TraceQuery(pod: IPAddress("::"))).isEmpty)
    #expect(try await store.connections(matching: TraceQuery(pod: IPAddress("0.0.0.0"))).isEmpty)
    // Stats count it apart, in no endpoint's share.
    let stats = try await store.stats(
      service: .address(IPAddress("10.96.0.10")!, port: 80), sinceMicros: nil, untilMicros: nil)
    #expect(stats.connections == 1 && stats.podUnknown == 1)
    #expect(stats.endpoints.map(\.endpoint) == ["10.244.1.7:8080"] && stats.endpoints[0].share == 1)
    #expect(try await store.collectStatus()[0].pending == 1)
  }

  /// A store with both fixture snapshots and a set of connections around them.
  func populated(_ subject: StoreUnderTest, snapshot: (Data) throws -> Data = { $0 }) async throws
    -> any TraceStoring
  {
    let store = subject.store
    try await store.ingestSnapshot(
      json: try snapshot(fixture("snapshot-1.json")), takenAtMicros: t1, source: "fixture-1")
    try await store.ingestSnapshot(
      json: try snapshot(fixture("snapshot-2.json")), takenAtMicros: t2, source: "fixture-2")
    var lines: [String] = []
    var port: UInt16 = 41000
    func connection(
      _ time: Int64, client: String = "10.244.5.5", _ service: String, _ sport: UInt16, _ pod: String, _ dport: UInt16,
      proto: UInt8 = 6
    ) {
      port += 1
      lines.append(fakeLine(time, .pre, proto: proto, client, port, service, sport, id: UInt32(port)))
      lines.append(fakeLine(time + 1, .post, proto: proto, client, port, pod, dport, id: UInt32(port)))
    }
    // Between the snapshots: 3 to web-aaaaa, 1 to 10.244.2.8 (then web-bbbbb).
    for i in 0..<3 { connection(t1 + Int64(i + 1) * 60_000 * ms, "10.96.0.10", 80, "10.244.1.7", 8080) }
    connection(t1 + 10 * 60_000 * ms, "10.96.0.10", 80, "10.244.2.8", 8080)
    // After the second snapshot: 3 to web-aaaaa (10.244.2.8 is now web-ddddd, gets none).
    for i in 0..<3 { connection(t2 + Int64(i + 1) * 60_000 * ms, "10.96.0.10", 80, "10.244.1.7", 8080) }
    // Others: web-admin, DNS over UDP, a NodePort, a hostNetwork endpoint, one before any snapshot.
    connection(t1 + 20 * 60_000 * ms, "10.96.0.20", 9090, "10.244.1.7", 9090)
    connection(t1 + 21 * 60_000 * ms, "10.96.0.53", 53, "10.244.1.9", 53, proto: 17)
    connection(t2 + 20 * 60_000 * ms, client: "192.168.50.99", "192.168.50.11", 30080, "10.244.1.7", 8080)
    connection(t2 + 21 * 60_000 * ms, "10.96.0.99", 9100, "192.168.50.11", 9100)
    connection(t1 - 60_000 * ms, "10.96.0.10", 80, "10.244.2.8", 8080)
    lines.sort()  // same-width timestamps: text order is time order
    try await store.commit(batch(lines))
    return store
  }
  /// `json` with a container spec on every pod whose environment holds a literal password.
  func withPasswords(_ json: Data) throws -> Data {
    var list = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
    let items = try #require(list["items"] as? [[String: Any]])
    list["items"] = items.map { item -> [String: Any] in
      guard item["kind"] as? String == "Pod" else { return item }
      var item = item
      var spec = item["spec"] as? [String: Any] ?? [:]
      spec["containers"] = [
        ["name": "app", "image": "app:1", "env": [["name": "PASSWORD", "value": "hunter2"]]]
      ]
      item["spec"] = spec
      var metadata = item["metadata"] as? [String: Any] ?? [:]
      metadata["annotations"] = ["last-applied": "{\"env\":[{\"name\":\"PASSWORD\",\"value\":\"hunter2\"}]}"]
      item["metadata"] = metadata
      return item
    }
    return try JSONSerialization.data(withJSONObject: list)
  }

  @Test(arguments: StoreFactory.all) func snapshotsKeepNoPodSpecsOrEnvironmentValues(_ factory: StoreFactory)
    async throws
  {
    let secret = Array("hunter2".utf8)
    #expect(try withPasswords(fixture("snapshot-1.json")).contains(secret))
    let subject = try await factory.make()
    let store = try await populated(subject, snapshot: withPasswords)
    let plainSubject = try await factory.make()
    let plain = try await populated(plainSubject)
    // Names resolve as with the plain snapshots.
    let describe = { (records: [ConnectionRecord]) in
      records.map {
        "\($0.timeMicros) \($0.serviceName ?? "-") \($0.podName ?? "-") \($0.podNode ?? "-") \($0.podServices)"
      }
    }
    let resolved = describe(try await store.connections(matching: TraceQuery()))
    #expect(resolved == describe(try await plain.connections(matching: TraceQuery())))
    #expect(resolved.contains { $0.contains("default/web-5d9f-bbbbb") })
    // The stored snapshots hold no password, and still read as a Kubernetes List.
    let snapshots: [String]
    if let stored = store as? TraceStore {
      snapshots = try await stored.dbWriter.read { db in try String.fetchAll(db, sql: "SELECT json FROM snapshots") }
    } else {
      snapshots = try await #require(store as? PostgresTraceStore).snapshotJSON()
    }
    #expect(snapshots.count == 2)
    for json in snapshots {
      #expect(!json.contains("hunter2") && !json.contains("PASSWORD") && !json.contains("containers"))
      #expect(try JSONDecoder().decode(KubeList.self, from: Data(json.utf8)).items.count > 5)
    }
    // Nor does any file of the store: the database, its WAL, the raw segments.
    let files = try #require(FileManager.default.subpaths(atPath: subject.directory.path))
    for file in files {
      let path = subject.directory.file(file)
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
        continue
      }
      let bytes = try #require(FileManager.default.contents(atPath: path))
      #expect(!bytes.contains(secret), "\(file)")
    }
  }

  @Test(arguments: StoreFactory.all) func namesResolveByTimeIncludingAMovedIP(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = try await populated(subject)
    let moved = try await store.connections(matching: TraceQuery(pod: IPAddress("10.244.2.8")))
    #expect(moved.count == 2)
    // Before the first snapshot: nearest snapshot (the first) names it; between: the same pod.
    #expect(moved.map(\.podName) == ["default/web-5d9f-bbbbb", "default/web-5d9f-bbbbb"])
    #expect(moved.allSatisfy { $0.serviceName == "default/web" && $0.podNode == "node2" })

    // The pod that took the IP later is found by name only for connections it could have had.
    let laterPod = try await store.connections(matching: TraceQuery(podName: "default/web-5d9f-ddddd"))
    #expect(
      laterPod.map(\.podName) == ["default/web-5d9f-bbbbb", "default/web-5d9f-bbbbb"], "same IP, resolved at their time"
    )

    // A pod behind two Services lists both.
    let admin = try await store.connections(matching: TraceQuery(service: IPAddress("10.96.0.20"), servicePort: 9090))
    #expect(admin.count == 1)
    #expect(admin[0].serviceName == "default/web-admin")
    #expect(admin[0].podName == "default/web-5d9f-aaaaa")
    #expect(admin[0].podServices == ["default/web", "default/web-admin"])

    // NodePort on a node address resolves to the Service through the port.
    let nodePort = try await store.connections(matching: TraceQuery(client: IPAddress("192.168.50.99")))
    #expect(nodePort.map(\.serviceName) == ["default/web"])

    // hostNetwork endpoint: the pod address is the node's; the pod table names it.
    let host = try await store.connections(matching: TraceQuery(pod: IPAddress("192.168.50.11")))
    #expect(host.map(\.podName) == ["monitoring/node-exporter-qqqqq"])
    #expect(host.map(\.serviceName) == [nil])

    // UDP DNS.
    let dns = try await store.connections(matching: TraceQuery(proto: 17))
    #expect(dns.map(\.serviceName) == ["kube-system/kube-dns"])
    #expect(dns.map(\.podName) == ["kube-system/coredns-7db6-xxxxx"])
  }

  @Test(arguments: StoreFactory.all) func lookupsFilterAndOrder(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = try await populated(subject)
    let all = try await store.connections(matching: TraceQuery())
    #expect(all.count == 12)
    #expect(all.map(\.timeMicros) == all.map(\.timeMicros).sorted())
    let first = all[3]
    let point = try await store.connections(matching: TraceQuery(client: first.client, clientPort: first.clientPort))
    #expect(point.map(\.id) == [first.id])
    let byName = try await store.connections(matching: TraceQuery(serviceName: "default/web"))
    #expect(byName.count == 9, "7 ClusterIP + 1 NodePort + 1 before the first snapshot")
    let window = try await store.connections(
      matching: TraceQuery(serviceName: "default/web", sinceMicros: t2, untilMicros: t2 + 3_600_000_000))
    #expect(window.count == 4)
    #expect(try await store.connections(matching: TraceQuery(node: HostID("node1"), limit: 2)).count == 2)
    let later = try await store.connections(matching: TraceQuery(afterID: all[9].id))
    #expect(Set(later.map(\.id)) == Set(all.map(\.id).filter { $0 > all[9].id }))
    #expect(try await store.connections(matching: TraceQuery(node: HostID("nope"))).isEmpty)
    await #expect(throws: StoreError.self) {
      try await store.connections(matching: TraceQuery(serviceName: "default/missing"))
    }
    await #expect(throws: StoreError.self) { try await store.connections(matching: TraceQuery(podName: "no-slash")) }
  }

  @Test(arguments: StoreFactory.all) func recordsEncodeToTheDocumentedJSON(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = try await populated(subject)
    let admin = try await store.connections(matching: TraceQuery(service: IPAddress("10.96.0.20")))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json = String(decoding: try encoder.encode(admin[0]), as: UTF8.self)
    #expect(json.contains("\"time\":\"2026-05-28T20:46:40.000000Z\""))
    for key in [
      "node", "proto\":\"tcp", "client_ip", "client_port", "service_ip\":\"10.96.0.20", "service_port\":9090",
      "pod_ip\":\"10.244.1.7", "pod_port", "service\":\"default\\/web-admin", "pod\":\"default\\/web-5d9f-aaaaa",
      "pod_node\":\"node1", "pod_services", "method\":\"exact-id",
    ] {
      #expect(json.contains("\"\(key)"), "\(key) in \(json)")
    }
  }

  @Test(arguments: StoreFactory.all) func statsCompareSharesWithEndpointsKnownAtEachTime(_ factory: StoreFactory)
    async throws
  {
    let subject = try await factory.make()
    let store = try await populated(subject)
    let stats = try await store.stats(
      service: .address(IPAddress("10.96.0.10")!, port: 80), sinceMicros: t1, untilMicros: nil)
    #expect(stats.service == "default/web")
    #expect(stats.connections == 7)
    let byEndpoint = Dictionary(uniqueKeysWithValues: stats.endpoints.map { ($0.endpoint, $0) })
    // Expected: 4 connections while 2 endpoints were ready (web-ccccc not ready), 3 while 3 were.
    #expect(byEndpoint["10.244.1.7:8080"]?.connections == 6)
    #expect(abs((byEndpoint["10.244.1.7:8080"]?.expectedShare ?? 0) - 3.0 / 7) < 1e-9)
    #expect(abs((byEndpoint["10.244.2.8:8080"]?.expectedShare ?? 0) - 3.0 / 7) < 1e-9)
    #expect(abs((byEndpoint["10.244.3.9:8080"]?.expectedShare ?? 0) - 1.0 / 7) < 1e-9)
    #expect(stats.idleEndpoints.map(\.endpoint) == ["10.244.3.9:8080"])
    #expect(abs(stats.skew - 1.0) < 1e-9)
    #expect(abs(stats.chiSquare - (3.0 + 4.0 / 3 + 1)) < 1e-9)
    #expect(stats.degreesOfFreedom == 2)
    let byName = try await store.stats(service: .name("default/web"), sinceMicros: t1, untilMicros: t2)
    #expect(byName.connections == 4)
  }

  @Test(arguments: StoreFactory.all) func statsBeforeTheFirstSnapshotExpectTheFirstSnapshotsEndpoints(
    _ factory: StoreFactory
  ) async throws {
    // The usual first run: traffic, then a collect whose snapshot is newer than every connection.
    let subject = try await factory.make()
    let store = try await populated(subject)
    let early = try await store.stats(
      service: .address(IPAddress("10.96.0.10")!, port: 80), sinceMicros: nil, untilMicros: t1)
    #expect(early.connections == 1)
    #expect(abs(early.endpoints.map(\.expectedShare).reduce(0, +) - 1) < 1e-9)
    // snapshot-1 has two ready endpoints of default/web (web-ccccc is not ready).
    #expect(early.endpoints.filter { $0.expectedShare > 0 }.count == 2)
  }

  @Test(arguments: StoreFactory.all) func snapshotsRejectGarbageAndOutOfOrder(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    await #expect(throws: StoreError.self) {
      try await store.ingestSnapshot(json: Data("{\"kind\": \"Pod\"".utf8), takenAtMicros: t1, source: "bad")
    }
    let summary = try await store.ingestSnapshot(json: try fixture("snapshot-2.json"), takenAtMicros: t2, source: "f2")
    #expect(summary.pods == 5 && summary.opened > 0 && summary.closed == 0)
    await #expect(throws: StoreError.self) {
      try await store.ingestSnapshot(json: try fixture("snapshot-1.json"), takenAtMicros: t1, source: "f1")
    }
    // The same snapshot again changes nothing.
    let again = try await store.ingestSnapshot(
      json: try fixture("snapshot-2.json"), takenAtMicros: t2 + 1, source: "f2")
    #expect(again.opened == 0 && again.closed == 0)
  }

  @Test(arguments: StoreFactory.all) func pruneRemovesOldRowsButKeepsPendingLinesAndCurrentNames(
    _ factory: StoreFactory
  ) async throws {
    // Long expiry so that an old pre line stays pending.
    let subject = try await factory.make(correlation: CorrelationSettings(pendingExpiryMicros: 24 * 3_600_000_000))
    let store = try await populated(subject)
    try await store.commit(batch([fakeLine(t1 - 120_000 * ms, .pre, "10.244.5.6", 1234, "10.96.0.10", 80, id: 1)]))
    let before = try await store.connections(matching: TraceQuery()).count
    let summary = try await store.prune(olderThan: t2 + 1)
    #expect(summary.connections == before - 5)
    #expect(try await store.connections(matching: TraceQuery()).count == 5)
    #expect(try await store.connections(matching: TraceQuery()).allSatisfy { $0.timeMicros >= t2 })
    #expect(try await store.firstLines().filter { $0.outcome == "pending" }.count == 1)
    #expect(summary.names > 0, "rows closed by the second snapshot are gone")
    // Names still resolve for what is left.
    #expect(
      try await store.connections(matching: TraceQuery(service: IPAddress("10.96.0.10"))).allSatisfy {
        $0.podName != nil
      })
  }
}
