import Foundation
import GRDB
import Ingest
import LogGeneration
import SVCTraceCore
import SVCTraceTestSupport
import StoreTestSupport
import Synchronization
import Testing

@testable import Logs
@testable import Store

/// Helpers to build batches from lines in `FakeParser`'s format.
func batch(
  _ lines: [String], node: String = "node1", source: String = "file:/var/log/iptables.log", offset: UInt64 = 0,
  clock: ClockOffset = .zero
) -> CollectedBatch {
  let data = Array(lines.map { $0 + "\n" }.joined().utf8)
  let chunk = SourceChunk(
    data: data,
    cursor: FileCursor(
      inode: 7, fingerprint: Array("fp".utf8), size: offset + UInt64(data.count), offset: offset + UInt64(data.count)
    ).sourceCursor,
    isCaughtUp: true, transferredBytes: data.count, file: "/var/log/iptables.log", events: [])
  var parser = FakeParser()
  return CollectedBatch(
    chunk: chunk, node: HostID(node), sourceID: source, parser: &parser, clock: clock, collectedAtMicros: 1)
}

func fixture(_ name: String) throws -> Data {
  let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
  return try Data(contentsOf: url)
}

@Suite("TraceStore")
struct StoreTests {
  let ms: Int64 = 1000
  let t1: Int64 = 1_780_000_000_000_000  // first snapshot
  var t2: Int64 { t1 + 3_600_000_000 }  // second snapshot, an hour later

  @Test func migrationsAreNamedAndIdempotent() async throws {
    let directory = try TempDirectory()
    let path = directory.file("sub/dir/svctrace.sqlite")
    let store = try TraceStore(path: path)
    #expect(
      try store.appliedMigrations() == ["line-loss", "v1"])
    let mode = try await store.dbWriter.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
    #expect(mode == "wal")
    // Reopening migrates nothing again and keeps data.
    try await store.commit(batch(["seq 1"]))
    let reopened = try TraceStore(path: path)
    #expect(
      try reopened.appliedMigrations() == ["line-loss", "v1"])
    #expect(try storedSequence(reopened, node: "node1") == [1])
  }

  @Test func storesOpenedAtOnceOnANewPathAllOpen() async throws {
    // Given a path no store exists at yet, when several processes' worth of stores open it at
    // once (each its own connection pool, as two svctrace processes would),
    for round in 0..<6 {
      let directory = try TempDirectory()
      let path = directory.file("svctrace-\(round).sqlite")
      let results = await withTaskGroup(of: String?.self) { group in
        for _ in 0..<6 {
          group.addTask {
            do {
              _ = try TraceStore(path: path)
              return nil
            } catch {
              return "\(error)"
            }
          }
        }
        return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
      }
      // then every one opens the one migrated store.
      #expect(results.isEmpty, "round \(round): \(results)")
      #expect(try TraceStore(path: path).appliedMigrations() == ["line-loss", "v1"])
    }
  }

  @Test func aStoreMigratedByANewerSvctraceIsRefused() async throws {
    let directory = try TempDirectory()
    let path = directory.file("svctrace.sqlite")
    let store = try TraceStore(path: path)
    try await store.commit(batch(["seq 1"]))
    // What a later svctrace would leave: a migration this one does not know.
    try await store.dbWriter.write { db in
      try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v2-from-the-future')")
    }
    let error = try #require(throws: StoreError.self) { try TraceStore(path: path) }
    #expect(error.description.contains("newer svctrace") && error.description.contains("v2-from-the-future"))
    #expect(error.description.hasPrefix("Unable to open the store \(path)"))
    #expect(error.cause == .unsupportedSchema(unknownMigrations: ["v2-from-the-future"]))
  }

  @Test func errorsCarryTheirCauseAsAValue() async throws {
    let directory = try TempDirectory()
    // SQLite cannot open a directory as a database: its result code comes with the error.
    let notAFile = try #require(throws: StoreError.self) { try TraceStore(path: directory.path) }
    guard case .sqlite(let code, _) = notAFile.cause else {
      Issue.record("expected a SQLite cause, got \(notAFile.cause)")
      return
    }
    #expect(code == 14, "SQLITE_CANTOPEN")
    #expect(notAFile.description.hasPrefix("Unable to open the store \(directory.path): "))
    // A raw segment gone from under the store: the errno of the failed open.
    let path = directory.file("store.sqlite")
    let store = try TraceStore(path: path)
    try await store.commit(
      batch([
        fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1),
        fakeLine(t1 + 1, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1),
      ]))
    for segment in try FileManager.default.contentsOfDirectory(atPath: path + ".raw") {
      try FileManager.default.removeItem(atPath: path + ".raw/" + segment)
    }
    let record = try #require(try store.connections(matching: TraceQuery()).first)
    let missing = try #require(throws: StoreError.self) { try store.explain(record) }
    #expect(missing.cause == .system(errno: ENOENT))
    #expect(missing.message == String(cString: strerror(ENOENT)))
    // A local capture source whose file is missing.
    let source = LocalFileSource(node: HostID("node1"), path: directory.file("missing.log"))
    let capture = try await #require(throws: CaptureError.self) {
      try await source.pull(after: nil, maxBytes: 4096)
    }
    #expect(capture.cause == .system(errno: ENOENT))
    #expect(capture.description == "Unable to read \(directory.file("missing.log")) on node1: no such readable file")
  }

  @Test func theStoreFileAndRawDirectoryAreTheOwnersOnly() async throws {
    let directory = try TempDirectory()
    let path = directory.file("new/svctrace.sqlite")
    let store = try TraceStore(path: path)
    var lines: [String] = []
    for index in 0..<10 { lines.append(fakeLine(t1 + Int64(index), .pre, "10.244.1.5", 40000, "10.96.0.10", 80)) }
    try await store.commit(batch(lines))
    func mode(_ path: String) throws -> Int {
      try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) & 0o777
    }
    #expect(try mode(path) == 0o600)
    #expect(try mode(path + "-wal") == 0o600)
    #expect(try mode(directory.file("new")) == 0o700)
    #expect(try mode(path + ".raw") == 0o700)
    let segments = try FileManager.default.contentsOfDirectory(atPath: path + ".raw")
    #expect(!segments.isEmpty)
    for segment in segments { #expect(try mode(path + ".raw/" + segment) == 0o600) }
  }

  @Test func defaultPathHonoursTheEnvironment() {
    #expect(TraceStore.defaultPath(environment: ["SVCTRACE_STORE": "/x/s.db", "XDG_DATA_HOME": "/d"]) == "/x/s.db")
    #expect(
      TraceStore.defaultPath(environment: ["XDG_DATA_HOME": "/d", "HOME": "/h"]) == "/d/svctrace/svctrace.sqlite")
    #expect(TraceStore.defaultPath(environment: ["HOME": "/h"]) == "/h/.local/share/svctrace/svctrace.sqlite")
    #expect(
      TraceStore.defaultPath(environment: ["XDG_DATA_HOME": "relative", "HOME": "/h"])
        == "/h/.local/share/svctrace/svctrace.sqlite")
  }

  @Test func localFileSourceReadsPlainAndGzipOnce() async throws {
    let directory = try TempDirectory()
    let store = try TraceStore.inMemory()
    let plain = directory.file("node7.log")
    try Data("seq 1\nseq 2\nseq 3".utf8).write(to: URL(fileURLWithPath: plain))
    let source = LocalFileSource(node: HostID("node7"), path: plain)
    let first = try await store.collect(from: source, makeParser: { FakeParser() }, clock: .zero)
    #expect(first.lines == 3)
    #expect(try await store.collect(from: source, makeParser: { FakeParser() }, clock: .zero).lines == 0)
    let gz = directory.file("node8.log")
    try Data((1...500).map { "seq \($0)\n" }.joined().utf8).write(to: URL(fileURLWithPath: gz))
    try await shell("gzip -n \(ShellQuote.quote(gz))")
    let gzSource = LocalFileSource(node: HostID("node8"), path: gz + ".gz")
    #expect(try await store.collect(from: gzSource, makeParser: { FakeParser() }, clock: .zero).lines == 500)
    #expect(try await store.collect(from: gzSource, makeParser: { FakeParser() }, clock: .zero).lines == 0)
    #expect(try storedSequence(store, node: "node7") == [1, 2, 3])
    #expect(try storedSequence(store, node: "node8") == Array(1...500))
    await #expect(throws: CaptureError.self) {
      try await store.collect(
        from: LocalFileSource(node: HostID("n"), path: directory.file("missing")), makeParser: { FakeParser() },
        clock: .zero)
    }
  }

  @Test func clockOffsetIsMeasuredWithTheTightestRoundTrip() async throws {
    let local = try await ClockOffset.measure(LocalShellSession(), rounds: 3)
    #expect(abs(local.offsetMicros) <= local.boundMicros + 1000, "same clock: offset within the bound")
    let ahead = try await ClockOffset.measure(ShiftedClockSession(shiftSeconds: 3600), rounds: 3)
    #expect(abs(ahead.offsetMicros - 3_600_000_000) <= ahead.boundMicros + 1000)
    await #expect(throws: RemoteError.self) {
      try await ClockOffset.measure(ShiftedClockSession(shiftSeconds: nil), rounds: 1)
    }
  }
}

/// A session whose `date +%s%N` reports the local time shifted, or garbage when `nil`.
struct ShiftedClockSession: RemoteSession {
  let host = HostID("shifted")
  let shiftSeconds: Int64?

  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    guard let shift = shiftSeconds else { return CommandResult(exitStatus: 0, stdout: Array("%N\n".utf8)) }
    let nanos = Int64(Date().timeIntervalSince1970 * 1e9) + shift * 1_000_000_000
    return CommandResult(exitStatus: 0, stdout: Array("\(nanos)\n".utf8))
  }

  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] { [] }
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {}
  func stat(_ path: String) async throws -> RemoteFileStat? { nil }
  func close() async {}
}

@Suite("TraceStore: correlation ahead of the commit")
struct CorrelateAheadTests {
  let t1: Int64 = 1_780_000_000_000_000

  @Test func batchesCorrelatedAheadJoinAcrossBatchesWithoutReCorrelating() async throws {
    let store = try TraceStore.inMemory()
    let start = try await store.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log")
    var base: IngestBase? = start.base
    let first = batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)])
    let second = batch([fakeLine(t1 + 5, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], offset: 100)
    // Both correlated before either commits, as collect does with one commit in flight.
    // The first stores no state (the second's will do), as in the middle of a collect run.
    var ahead1 = store.prepare(first, after: nil, base: &base, storesState: false, staging: nil)
    var ahead2 = store.prepare(second, after: first.cursor, base: &base, storesState: true, staging: nil)
    #expect(ahead1.ahead?.firstID == 1 && ahead2.ahead?.firstID == 2)
    ahead1.expectedLastBatch = start.base.lastBatch
    let committed1 = try await store.commit(ahead1)
    #expect(committed1.reCorrelated == false)
    let stateRow = { @Sendable (db: Database) in
      try Row.fetchOne(db, sql: "SELECT state_batch, last_batch FROM correlation_state")
    }
    let laggingRow = try store.dbWriter.read(stateRow)
    let lagging = try #require(laggingRow)
    #expect(lagging[0] as Int64 == 0 && lagging[1] as Int64 == committed1.summary.batchID, "state before batch 1")
    ahead2.expectedLastBatch = committed1.summary.batchID
    let committed2 = try await store.commit(ahead2)
    #expect(committed2.reCorrelated == false)
    let currentRow = try store.dbWriter.read(stateRow)
    let current = try #require(currentRow)
    #expect(current[0] as Int64 == committed2.summary.batchID && current[1] as Int64 == committed2.summary.batchID)
    let records = try store.connections(matching: TraceQuery())
    #expect(records.map(\.pod) == [IPAddress("10.244.1.7")!])
    #expect(records.map(\.preLineID) == [1] && records.map(\.postLineID) == [2])
    #expect(try store.storedLines().map(\.outcome) == ["matched", "matched"])
  }

  @Test func anotherWriterInBetweenMakesTheCommitCorrelateAgain() async throws {
    // Two stores on one file: two processes collecting the same node.
    let directory = try TempDirectory()
    let path = directory.file("store.sqlite")
    let mine = try TraceStore(path: path)
    let other = try TraceStore(path: path)
    let start = try await mine.ingestStart(node: HostID("node1"), source: "file:/var/log/iptables.log")
    var base: IngestBase? = start.base
    let post = batch([fakeLine(t1 + 5, .post, "10.244.1.5", 40000, "10.244.1.7", 8080, id: 1)], offset: 100)
    var ahead = mine.prepare(post, after: start.cursor, base: &base, storesState: true, staging: nil)
    ahead.expectedLastBatch = start.base.lastBatch
    #expect(ahead.ahead?.output.stats.orphans == 1, "correlated ahead, the post line has no pre line")
    // The other process stores the pre line first (from another source of the node), taking the
    // line id reserved above.
    try await other.commit(
      batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)], source: "file:/var/log/other.log"))
    // The commit sees the stored state moved on and correlates again: the lines join, ids differ.
    #expect(try await mine.commit(ahead).reCorrelated == true)
    let records = try mine.connections(matching: TraceQuery())
    #expect(records.map(\.pod) == [IPAddress("10.244.1.7")!])
    let lines = try mine.storedLines()
    #expect(lines.map(\.id) == [1, 2])
    #expect(lines.map(\.outcome) == ["matched", "matched"])
  }
}

@Suite("TraceStore: raw segment files")
struct RawSegmentTests {
  let t1: Int64 = 1_780_000_000_000_000
  let ms: Int64 = 1000

  /// A file store whose segments roll over every `segmentBytes`.
  func store(_ directory: TempDirectory, segmentBytes: Int64) throws -> TraceStore {
    let path = directory.file("store.sqlite")
    return try TraceStore(
      writer: DatabasePool(path: path), correlation: CorrelationSettings(),
      rawSegments: RawSegments(directory: path + ".raw", segmentBytes: segmentBytes))
  }

  /// A batch of `count` connections (pre + post) from client port `base`.
  func connections(_ count: Int, from base: Int, offset: UInt64) -> CollectedBatch {
    var lines: [String] = []
    for index in 0..<count {
      let port = UInt16(base + index)
      let time = t1 + Int64(base + index) * ms
      lines.append(fakeLine(time, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1)))
      lines.append(fakeLine(time + 1, .post, "10.244.1.5", port, "10.244.2.7", 8080, id: UInt32(index + 1)))
    }
    return batch(lines, offset: offset)
  }

  @Test func linesGoToSegmentFilesAndExplainReadsThemBack() async throws {
    let directory = try TempDirectory()
    let store = try store(directory, segmentBytes: 256 << 20)
    let first = connections(50, from: 20000, offset: 0)
    try await store.commit(first)
    // The block's own raw column is empty; the text is in the one segment file.
    let empty = try await store.dbWriter.read { db in
      try Int.fetchOne(db, sql: "SELECT SUM(length(raw)) FROM line_blocks")
    }
    #expect(empty == 0)
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.file("store.sqlite.raw"))
    #expect(names.count == 1 && names[0].hasPrefix("segment-"))
    let segment = try #require(FileManager.default.contents(atPath: directory.file("store.sqlite.raw/" + names[0])))
    #expect([UInt8](segment) == first.text)
    // Reopened (another process), explain and the full read see the same text.
    let reopened = try TraceStore(path: directory.file("store.sqlite"))
    let record = try #require(try reopened.connections(matching: TraceQuery(clientPort: 20025)).first)
    #expect(try reopened.explain(record).map(\.raw) == [first.rawLine(50), first.rawLine(51)])
    #expect(try reopened.storedLines().map(\.raw) == (0..<100).map { first.rawLine($0) })
  }

  @Test func segmentsRollOverAndPruneDeletesThoseNoBlockNeeds() async throws {
    let directory = try TempDirectory()
    let store = try store(directory, segmentBytes: 4000)
    var batches: [CollectedBatch] = []
    for index in 0..<6 {
      let next = connections(20, from: 20000 + index * 100, offset: UInt64(index) * 100_000)
      batches.append(next)
      try await store.commit(next)
    }
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.file("store.sqlite.raw")).sorted()
    #expect(names.count > 1, "segments roll over: \(names)")
    // Every line reads back, whichever segment holds it.
    #expect(try store.storedLines().map(\.raw) == batches.flatMap { batch in (0..<40).map { batch.rawLine($0) } })
    // Prune everything but the last batch's connections: old segments go, the current stays.
    let summary = try store.prune(olderThan: t1 + 20500 * ms)
    #expect(summary.lines == 200)
    let after = try FileManager.default.contentsOfDirectory(atPath: directory.file("store.sqlite.raw")).sorted()
    #expect(after.count < names.count)
    #expect(try store.storedLines().map(\.raw) == (0..<40).map { batches[5].rawLine($0) })
    let record = try #require(try store.connections(matching: TraceQuery(clientPort: 20510)).first)
    #expect(try store.explain(record).map(\.raw) == [batches[5].rawLine(20), batches[5].rawLine(21)])
  }

  @Test func aFailedCommitLeavesNoTextBehind() async throws {
    let directory = try TempDirectory()
    let store = try store(directory, segmentBytes: 256 << 20)
    try await store.commit(connections(10, from: 20000, offset: 0))
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.file("store.sqlite.raw"))
    let path = directory.file("store.sqlite.raw/" + (names.first ?? "none"))
    let before = try #require(FileManager.default.contents(atPath: path))
    await #expect(throws: InjectedFault.self) {
      try await store.commit(connections(10, from: 21000, offset: 1000), faultInjection: { throw InjectedFault() })
    }
    #expect(FileManager.default.contents(atPath: path) == before, "the failed batch's text was truncated away")
    try await store.commit(connections(10, from: 21000, offset: 1000))
    #expect(try store.storedLines().count == 40)
    #expect(try store.connections(matching: TraceQuery()).count == 20)
  }

  /// The segment files of the store in `directory`.
  func segmentNames(_ directory: TempDirectory) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.file("store.sqlite.raw")).sorted()
  }

  /// A log of `count` connections (pre + post lines) with a noise line and a CRLF line among
  /// them, and what the stored raw lines must read.
  func noisyLog(_ count: Int, from base: Int) -> (text: String, packetLines: [String]) {
    var text = ""
    var packets: [String] = []
    for index in 0..<count {
      let port = UInt16(base + index)
      let time = t1 + Int64(base + index) * ms
      let pre = fakeLine(time, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1))
      let post = fakeLine(time + 1, .post, "10.244.1.5", port, "10.244.2.7", 8080, id: UInt32(index + 1))
      text += "noise line \(index) the parser skips\n" + pre + "\n" + (index % 7 == 0 ? post + "\r\n" : post + "\n")
      packets += [pre, post]
    }
    return (text, packets)
  }

  @Test func collectWritesWholeChunksDirectlyAndReadsPacketLinesBack() async throws {
    let directory = try TempDirectory()
    let store = try store(directory, segmentBytes: 256 << 20)
    // ~1.3 MB in 512 KiB pulls: every batch is large enough to bypass the page cache.
    let (text, packets) = noisyLog(8000, from: 10000)
    let path = directory.file("node1.log")
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    let summary = try await store.collect(
      from: LocalFileSource(node: HostID("node1"), path: path), makeParser: { FakeParser() }, clock: .zero,
      maxBytes: 512 << 10)
    #expect(summary.batches > 1 && summary.lines == 24000 && summary.skipped == 8000)
    #expect(try store.storedLines().map(\.raw) == packets, "noise and CR are not part of any stored line")
    let record = try #require(try store.connections(matching: TraceQuery(clientPort: 17777)).first)
    #expect(try store.explain(record).map(\.raw) == [packets[15554], packets[15555]])
    // One segment, batches starting on 4 KiB boundaries, holding the file's bytes.
    let names = try segmentNames(directory)
    #expect(names.count == 1)
    let offsets = try await store.dbWriter.read { db in
      try Int64.fetchAll(db, sql: "SELECT offset FROM line_raw ORDER BY offset")
    }
    #expect(offsets.count == summary.batches && zip(offsets, offsets.dropFirst()).allSatisfy { $0 / 4096 < $1 / 4096 })
    let segment = try #require(FileManager.default.contents(atPath: directory.file("store.sqlite.raw/" + names[0])))
    let first = Int(offsets[0])
    #expect(Array(segment)[first..<(first + 100)] == Array(text.utf8)[0..<100])
    // A second collect of more lines appends to the same segment (it is not full).
    try Data((text + noisyLog(10, from: 30000).text).utf8).write(to: URL(fileURLWithPath: path))
    let more = try await store.collect(
      from: LocalFileSource(node: HostID("node1"), path: path), makeParser: { FakeParser() }, clock: .zero)
    #expect(more.lines == 30)
    #expect(try segmentNames(directory) == names)
  }

  @Test func directWritesFromAnyAddressReadBackExactly() throws {
    let directory = try TempDirectory()
    // Small segments: the writes roll over.
    let segments = RawSegments(directory: directory.file("store.sqlite.raw"), segmentBytes: 500_000)
    let writer = segments.makeWriter()
    var random = SplitMix64(seed: 11)
    let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { memory.deallocate() }
    for index in memory.indices { memory[index] = UInt8(truncatingIfNeeded: random.next()) }
    // Aligned and unaligned starts, lengths with and without a partial last block.
    var written: [(RawLocation, Range<Int>)] = []
    for (shift, length) in [(0, 300_000), (5, 300_000), (4095, 400_001), (4096, 262_144), (1234, 700_000)] {
      let range = shift..<(shift + length)
      let location = try writer.appendNow(UnsafeRawBufferPointer(rebasing: memory[range]))
      writer.committed(location, length: length)
      written.append((location, range))
    }
    for (location, range) in written {
      let back = try segments.read(segment: location.segment, offset: location.offset, length: range.count)
      #expect(back == Array(memory[range]), "shift \(range.lowerBound), length \(range.count)")
    }
    // Full segments whose batches all committed are released: a prune may take them, not the
    // one still open.
    let used = Set(written.map(\.0.segment))
    #expect(used.count > 2)
    segments.deleteUnreferenced { [] }
    let left = try segmentNames(directory)
    #expect(left == ["segment-\(written[written.count - 1].0.segment)"], "\(left) of \(written.map(\.0))")
    writer.closeNow()
  }

  @Test func segmentsOfAWriterAreItsOwnAndPruneLeavesThemAlone() throws {
    let directory = try TempDirectory()
    let segments = RawSegments(directory: directory.file("store.sqlite.raw"))
    let one = segments.makeWriter()
    let two = segments.makeWriter()
    let first = try Array("first\n".utf8).withUnsafeBytes { try one.appendNow($0) }
    let second = try Array("second\n".utf8).withUnsafeBytes { try two.appendNow($0) }
    #expect(first.segment != second.segment, "two writers never share a file")
    // Nothing refers to either, but both are held: prune keeps them.
    segments.deleteUnreferenced { [] }
    #expect(try segmentNames(directory).count == 2)
    // A writer closing with nothing committed removes its file; committed text stays.
    one.committed(first, length: 6)
    one.closeNow()
    two.closeNow()
    #expect(try segmentNames(directory) == ["segment-\(first.segment)"])
    #expect(try segments.read(segment: first.segment, offset: first.offset, length: 6) == Array("first\n".utf8))
    // Released and unreferenced (a crashed collect's leftovers): prune deletes it.
    segments.deleteUnreferenced { [] }
    #expect(try segmentNames(directory).isEmpty)
  }
}

@Suite("TraceStore: replay by kind of source")
struct ReplayByKindTests {
  let t1: Int64 = 1_780_000_000_000_000

  /// The kinds of source the store asked a replay parser for.
  final class Requests: Sendable {
    let kinds = Mutex<[String]>([])
  }

  @Test func eachReplayedBatchIsParsedByTheParserOfItsSourceKind() async throws {
    let requests = Requests()
    let store = try TraceStore.inMemory(replayParser: { kind in
      requests.kinds.withLock { $0.append(kind) }
      return FakeParser()
    })
    let node = HostID("node1")
    // Two batches of two kinds of source, neither storing the correlator state.
    var base: IngestBase? = try await store.ingestStart(node: node, source: "file:/var/log/iptables.log").base
    var first = store.prepare(
      batch([fakeLine(t1, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)]), after: nil, base: &base,
      storesState: false, staging: nil)
    first.expectedLastBatch = nil
    let committed = try await store.commit(first)
    var other = batch([fakeLine(t1 + 1, .pre, "10.244.1.6", 40001, "10.96.0.10", 80, id: 2)], source: "test:other")
    other.cursor = SourceCursor(kind: "other-kind", state: [1])
    var second = store.prepare(other, after: nil, base: &base, storesState: false, staging: nil)
    second.expectedLastBatch = committed.summary.batchID
    #expect(try await store.commit(second).reCorrelated == false)
    #expect(requests.kinds.withLock { $0 }.isEmpty, "nothing replayed yet")
    // The next collect rebuilds the state: each batch through its own kind's parser.
    let next = try await store.ingestStart(node: node, source: "test:other")
    #expect(requests.kinds.withLock { $0 } == [FileCursor.kind, "other-kind"])
    #expect(next.cursor == other.cursor)
    #expect(try store.collectStatus().map(\.kind) == [FileCursor.kind, "other-kind"])
  }
}
