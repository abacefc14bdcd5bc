import Foundation
import GRDB
import LogGeneration
import SVCTraceCore
import StoreTestSupport
import Testing

@testable import Logs
@testable import Store

/// A generated connection with the id the store must give it.
private struct Generated {
  var id: Int64
  var node: String
  var entry: StoredConnection
}

/// Random connections over a few nodes, clients, services and pods (IPv4 and IPv6).
private func randomConnections(count: Int, seed: UInt64) -> [(node: Int, entry: StoredConnection)] {
  var random = SplitMix64(seed: seed)
  let base: Int64 = 1_780_000_000_000_000
  var time = base
  return (0..<count).map { _ in
    time += Int64(random.next() % 2_000_000)
    let v6 = random.next() % 10 == 0
    let client =
      v6
      ? IPAddress(high: 0xFD00_0000_0000_0001, low: random.next() % 5)
      : IPAddress(ipv4: 0x0AF4_0100 | UInt32(random.next() % 40))
    let service = UInt32(random.next() % 6)
    return (
      Int(random.next() % 3),
      StoredConnection(
        slot: 0, timeMicros: time - Int64(random.next() % 500_000), proto: random.next() % 4 == 0 ? 17 : 6,
        client: client, clientPort: UInt16(30000 + random.next() % 40), service: IPAddress(ipv4: 0x0A60_0000 | service),
        servicePort: service % 2 == 0 ? 80 : 443,
        pod: IPAddress(ipv4: 0x0AF4_0200 | service << 2 | UInt32(random.next() % 3)),
        podPort: 8080, method: 1, preID: Int64(random.next() % 1_000_000), postID: Int64(random.next() % 1_000_000))
    )
  }
}

/// A store holding `connections` as blocks of at most `blockSize` per node (in generation order,
/// each block sorted by time as a commit does), and every connection with its expected id.
private func blockStore(
  _ connections: [(node: Int, entry: StoredConnection)], blockSize: Int
) throws -> (TraceStore, [Generated]) {
  let store = try TraceStore.inMemory()
  var generated: [Generated] = []
  try store.dbWriter.write { db in
    for node in 0..<3 {
      try db.execute(sql: "INSERT INTO nodes (id, name) VALUES (?, ?)", arguments: [node + 1, "node\(node)"])
    }
    var pending = [[StoredConnection]](repeating: [], count: 3)
    func flush(_ node: Int) throws {
      let sorted = pending[node].sorted { $0.timeMicros < $1.timeMicros }
      let blocks = try TraceStore.insertConnectionBlocks(sorted, nodeID: Int64(node + 1), batchID: 0, db)
      #expect(blocks.count == 1)
      for (slot, entry) in sorted.enumerated() {
        var entry = entry
        entry.slot = UInt32(slot)
        generated.append(Generated(id: blocks[0] << 24 | Int64(slot), node: "node\(node)", entry: entry))
      }
      pending[node] = []
    }
    for (node, entry) in connections {
      pending[node].append(entry)
      if pending[node].count == blockSize { try flush(node) }
    }
    for node in 0..<3 where !pending[node].isEmpty { try flush(node) }
  }
  return (store, generated)
}

/// The brute-force answer to `query` (without name filters).
private func bruteForce(_ all: [Generated], _ query: TraceQuery) -> [Int64] {
  var matching = all.filter { item in
    let entry = item.entry
    if let client = query.client, entry.client != client { return false }
    if let port = query.clientPort, entry.clientPort != port { return false }
    if let service = query.service, entry.service != service { return false }
    if let port = query.servicePort, entry.servicePort != port { return false }
    if let pod = query.pod, entry.pod != pod { return false }
    if let node = query.node, item.node != node.name { return false }
    if let proto = query.proto, entry.proto != proto { return false }
    if let since = query.sinceMicros, entry.timeMicros < since { return false }
    if let until = query.untilMicros, entry.timeMicros >= until { return false }
    if let after = query.afterID, item.id <= after { return false }
    return true
  }
  matching.sort { ($0.entry.timeMicros, $0.id) < ($1.entry.timeMicros, $1.id) }
  if let limit = query.limit { matching = Array(matching.prefix(max(0, limit))) }
  return matching.map(\.id)
}

@Suite("Connection blocks")
struct ConnectionBlockTests {
  @Test func encodingRoundTripsIPv6ExtremeTimesSlotsAndMissingLineIDs() throws {
    #expect(try ConnectionBlock.decode(ConnectionBlock.encode([])) == [])
    var entries = randomConnections(count: 3000, seed: 1).map(\.entry)
    entries[0].timeMicros = .min
    entries[1].timeMicros = .max
    entries[2].timeMicros = 0
    entries[3].client = IPAddress("2001:db8::1")!
    entries[3].pod = IPAddress("::")!
    entries[4].clientPort = .max
    entries[4].servicePort = 0
    entries[4].podPort = .max
    entries[5].preID = nil
    entries[6].postID = nil
    entries[7].preID = .max - 1
    entries[7].postID = 0
    for index in entries.indices { entries[index].slot = UInt32(index) }
    #expect(try ConnectionBlock.decode(ConnectionBlock.encode(entries)) == entries)
    // Explicit slots (a block rewritten by prune keeps its ids).
    let sparse = entries.enumerated().filter { $0.offset % 3 == 1 }.map(\.element)
    #expect(try ConnectionBlock.decode(ConnectionBlock.encode(sparse)) == sparse)
    // Compact: well under 30 bytes per connection.
    #expect(ConnectionBlock.encode(entries).count < entries.count * 30)
  }

  @Test func truncatedOrGarbledBlocksThrowInsteadOfCrashing() throws {
    let entries = randomConnections(count: 50, seed: 2).enumerated().map { index, item in
      var entry = item.entry
      entry.slot = UInt32(index)
      return entry
    }
    let bytes = ConnectionBlock.encode(entries)
    for length in 0..<bytes.count {
      #expect(throws: StoreError.self) { try ConnectionBlock.decode(Array(bytes.prefix(length))) }
    }
    var random = SplitMix64(seed: 3)
    for _ in 0..<2000 {
      var garbled = bytes
      garbled[Int(random.next() % UInt64(garbled.count))] = UInt8(truncatingIfNeeded: random.next())
      _ = try? ConnectionBlock.decode(garbled)
    }
  }

  @Test func bloomFilterHasNoFalseNegatives() throws {
    var random = SplitMix64(seed: 4)
    let keys = (0..<50_000).map { _ in
      (IPAddress(ipv4: 0x0AF4_0000 | UInt32(random.next() % 65536)), UInt16(truncatingIfNeeded: random.next()))
    }
    var bloom = ClientBloom(capacity: keys.count)
    for (ip, port) in keys { bloom.insert(ClientBloom.hash(ip, port)) }
    #expect(keys.allSatisfy { bloom.mayContain(ClientBloom.hash($0.0, $0.1)) })
    let others = (0..<50_000).map { _ in (IPAddress(ipv4: 0x0B00_0000 | UInt32(random.next() % 65536)), UInt16(1)) }
    let falsePositives = others.count { bloom.mayContain(ClientBloom.hash($0.0, $0.1)) }
    #expect(falsePositives < others.count / 50, "\(falsePositives) false positives")
    #expect(ClientBloom(bytes: bloom.bytes) == bloom)
    #expect(ClientBloom(bytes: []) == nil && ClientBloom(bytes: [1, 2, 3]) == nil)
  }

  @Test func addressColumnsNumberAddressesAndListEveryDistinctKeyOnce() throws {
    // Enough distinct addresses to make the dictionary grow several times.
    var entries = randomConnections(count: 20_000, seed: 9).map(\.entry)
    for index in entries.indices where index % 3 == 0 {
      entries[index].client = IPAddress(ipv4: 0x0B00_0000 | UInt32(index))
    }
    let columns = ConnectionBlock.AddressColumns(entries)
    let addresses = columns.dictionary.addresses
    #expect(Set(addresses).count == addresses.count, "each address once")
    for (index, entry) in entries.enumerated() {
      #expect(addresses[Int(columns.clients[index])] == entry.client)
      #expect(addresses[Int(columns.services[index])] == entry.service)
      #expect(addresses[Int(columns.pods[index])] == entry.pod)
    }
    // The keys: every distinct value of each kind, once, in the byte order of block_keys.
    var expected = Set<TraceStore.BlockKey>()
    for entry in entries {
      expected.insert(.init(kind: .client, address: entry.client, port: 0))
      expected.insert(.init(kind: .service, address: entry.service, port: entry.servicePort))
      expected.insert(.init(kind: .servicePort, address: .any, port: entry.servicePort))
      expected.insert(.init(kind: .pod, address: entry.pod, port: 0))
    }
    let keys = columns.keys(entries)
    #expect(keys.count == expected.count && Set(keys) == expected)
    let bytes = keys.map { [UInt8]($0.bytes) }
    #expect(zip(keys, keys.dropFirst()).allSatisfy { $0.kind.rawValue <= $1.kind.rawValue })
    #expect(
      zip(zip(keys, bytes), zip(keys, bytes).dropFirst()).allSatisfy { left, right in
        left.0.kind != right.0.kind || left.1.lexicographicallyPrecedes(right.1)
      })
  }

  @Test func lookupsAcrossManyBlocksAgreeWithABruteForceFilter() throws {
    let (store, all) = try blockStore(randomConnections(count: 3000, seed: 5), blockSize: 97)
    #expect(
      try store.dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM connection_blocks") } ?? 0 > 30)
    // Every connection is found by its client ip:port, and only connections with that pair are.
    for item in all.prefix(300) {
      let query = TraceQuery(client: item.entry.client, clientPort: item.entry.clientPort)
      let found = try store.connections(matching: query)
      #expect(found.map(\.id) == bruteForce(all, query))
      #expect(found.contains { $0.id == item.id && $0.pod == item.entry.pod && $0.preLineID == item.entry.preID })
    }
    // The client filter spares decoding most blocks that hold the client's address.
    let (candidates, decoded) = try store.dbWriter.read { db in
      var totals = (0, 0)
      for item in all.prefix(300) {
        var scan = try BlockScan(TraceQuery(client: item.entry.client, clientPort: item.entry.clientPort), db)
        _ = try scan.run(db)
        totals.0 += scan.candidates
        totals.1 += scan.decoded
      }
      return totals
    }
    #expect(decoded * 4 < candidates, "\(decoded) of \(candidates) candidate blocks decoded")
    let times = all.map(\.entry.timeMicros).sorted()
    let middle = times[times.count / 2]
    let sample = all[1234]
    var queries = [
      TraceQuery(),
      TraceQuery(client: sample.entry.client),
      TraceQuery(service: sample.entry.service),
      TraceQuery(service: sample.entry.service, servicePort: sample.entry.servicePort),
      TraceQuery(servicePort: 443),
      TraceQuery(pod: sample.entry.pod),
      TraceQuery(node: HostID("node1")),
      TraceQuery(node: HostID("nope")),
      TraceQuery(proto: 17),
      TraceQuery(sinceMicros: middle),
      TraceQuery(untilMicros: middle),
      TraceQuery(sinceMicros: times[100], untilMicros: times[200]),
      TraceQuery(afterID: sample.id),
      TraceQuery(limit: 17),
      TraceQuery(limit: 0),
      TraceQuery(service: sample.entry.service, sinceMicros: middle, limit: 5),
      TraceQuery(client: sample.entry.client, node: HostID("node2"), proto: 6, untilMicros: middle),
      TraceQuery(pod: sample.entry.pod, afterID: sample.id, limit: 3),
      TraceQuery(client: IPAddress("192.0.2.1"), clientPort: 1),
    ]
    for limit in [1, 2, 50, 1000] { queries.append(TraceQuery(sinceMicros: times[10], limit: limit)) }
    for query in queries {
      #expect(try store.connections(matching: query).map(\.id) == bruteForce(all, query), "\(query)")
    }
    #expect(try store.latestConnectionID() == all.map(\.id).max())
  }

  @Test func aRedispatchRewritesTheBlockOfAnEarlierBatchAmongMany() async throws {
    let store = try TraceStore.inMemory()
    let t0: Int64 = 1_780_000_000_000_000
    try await store.commit(
      batch([
        fakeLine(t0, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 100),
        fakeLine(t0 + 2, .post, "10.244.1.10", 37535, "10.244.1.10", 8080, id: 100),
      ]))
    // More batches in between, with the same client on other ports.
    for round in 0..<5 {
      var lines: [String] = []
      for index in 0..<20 {
        let port = UInt16(40000 + round * 20 + index)
        let time = t0 + Int64(round * 20 + index + 1) * 1000
        lines.append(fakeLine(time, .pre, "10.244.1.10", port, "10.96.0.10", 80, id: UInt32(port)))
        lines.append(fakeLine(time + 1, .post, "10.244.1.10", port, "10.244.3.3", 8080, id: UInt32(port)))
      }
      try await store.commit(batch(lines, offset: UInt64(round + 1)))
    }
    let before = try store.connections(matching: TraceQuery())
    #expect(before.count == 101)
    // The retry of the first connection, DNATed to another pod.
    try await store.commit(
      batch(
        [
          fakeLine(t0 + 900_000, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 101),
          fakeLine(t0 + 900_003, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 101),
        ], offset: 9))
    let after = try store.connections(matching: TraceQuery())
    #expect(after.map(\.id) == before.map(\.id), "no record added, none lost")
    let moved = try #require(after.first { $0.clientPort == 37535 })
    #expect(moved.pod == IPAddress("10.244.2.10") && moved.method == .reDNAT)
    #expect(Array(after.dropFirst()) == Array(before.dropFirst()), "other records untouched")
    // The block's keys follow: found by the new pod, not by the old one.
    #expect(try store.connections(matching: TraceQuery(pod: IPAddress("10.244.2.10"))).map(\.id) == [moved.id])
    #expect(try store.connections(matching: TraceQuery(pod: IPAddress("10.244.1.10"))).isEmpty)
  }

  @Test func pruneDropsOldBlocksAndRewritesStraddlingOnesKeepingIDs() async throws {
    let (store, all) = try blockStore(randomConnections(count: 2000, seed: 6), blockSize: 150)
    let times = all.map(\.entry.timeMicros).sorted()
    let cutoff = times[times.count / 3]
    let blocksBefore = try await store.dbWriter.read { db in
      try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM connection_blocks")
    }
    let straddling = try await store.dbWriter.read { db in
      try Int.fetchOne(
        db, sql: "SELECT COUNT(*) FROM connection_blocks WHERE min_time < ? AND max_time >= ?",
        arguments: [cutoff, cutoff])
    }
    #expect(straddling ?? 0 > 0, "the cutoff falls inside blocks")
    let latest = try store.latestConnectionID()
    let summary = try store.prune(olderThan: cutoff)
    let kept = all.filter { $0.entry.timeMicros >= cutoff }
    #expect(summary.connections == all.count - kept.count)
    #expect(try store.connections(matching: TraceQuery()).map(\.id) == bruteForce(kept, TraceQuery()))
    #expect(
      try await store.dbWriter.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM connection_blocks") } ?? 0
        < blocksBefore ?? 0)
    for item in kept.prefix(100) {
      let query = TraceQuery(client: item.entry.client, clientPort: item.entry.clientPort)
      #expect(try store.connections(matching: query).map(\.id) == bruteForce(kept, query))
    }
    for item in all.filter({ $0.entry.timeMicros < cutoff }).prefix(50) {
      #expect(
        try store.connections(matching: TraceQuery(pod: item.entry.pod)).map(\.id)
          == bruteForce(kept, TraceQuery(pod: item.entry.pod)))
    }
    #expect(try store.latestConnectionID() == latest)
    // Pruning everything, then committing: ids never come back.
    try store.prune(olderThan: .max)
    #expect(try store.latestConnectionID() == nil)
    let t = times[0]
    try await store.commit(
      batch([
        fakeLine(t, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1),
        fakeLine(t + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1),
      ]))
    #expect(try store.latestConnectionID() ?? 0 > latest ?? 0)
  }

  @Test func aCommitCorrelatesAgainstWhatAnotherWriterStored() async throws {
    let directory = try TempDirectory()
    let first = try TraceStore(path: directory.file("s.sqlite"))
    let second = try TraceStore(path: directory.file("s.sqlite"))
    let t: Int64 = 1_780_000_000_000_000
    let post = fakeLine(t + 2, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)
    // `first` leaves the pre line pending; `second` joins it behind its back.
    try await first.commit(batch([fakeLine(t, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)]))
    try await second.commit(batch([post], offset: 1))
    #expect(try first.connections(matching: TraceQuery()).count == 1)
    // The same post line again through `first`: with the state `first` last wrote it would join
    // the pre line a second time; with the stored one it is a duplicate.
    let summary = try await first.commit(batch([post], offset: 2))
    #expect(summary.connections == 0)
    #expect(try first.connections(matching: TraceQuery()).count == 1)
  }

  @Test func aPullFailingWhileTheLastChunkCommitsKeepsThatChunk() async throws {
    let store = try TraceStore.inMemory()
    let source = FailingSecondPullSource()
    await #expect(throws: CaptureError.self) {
      try await store.collect(from: source, makeParser: { FakeParser() }, clock: .zero)
    }
    // The first chunk (committing while the second pull ran) is stored, with its cursor.
    #expect(try storedSequence(store, node: "node-fail") == [1, 2, 3])
    #expect(try store.cursor(node: HostID("node-fail"), source: "test:fail").flatMap(FileCursor.init)?.offset == 18)
  }
}

/// A source whose first pull returns three lines and whose second pull fails.
private struct FailingSecondPullSource: CaptureSource {
  let node = HostID("node-fail")
  let sourceID = "test:fail"

  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    guard cursor == nil else { throw CaptureError(host: node, operation: "pull", message: "connection lost") }
    let data = Array("seq 1\nseq 2\nseq 3\n".utf8)
    return SourceChunk(
      data: data, cursor: FileCursor(inode: 1, fingerprint: [1], size: 100, offset: UInt64(data.count)).sourceCursor,
      isCaughtUp: false, transferredBytes: data.count, file: "/f", events: [])
  }
}
