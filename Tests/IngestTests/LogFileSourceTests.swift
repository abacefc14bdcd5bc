import Foundation
import Ingest
import SVCTraceCore
import SVCTraceTestSupport
import StoreTestSupport
import Testing

@testable import Logs
@testable import Store

/// Rotation scenarios for `LogFileSource`, run for real against local files through
/// `LocalShellSession`. Every scenario asserts that each written line is stored exactly once.
@Suite("LogFileSource rotation")
struct LogFileSourceTests {
  let directory: TempDirectory
  let store: TraceStore
  let session = LocalShellSession(host: HostID("node-test"))
  var log: FakeLog

  init() throws {
    directory = try TempDirectory()
    store = try TraceStore.inMemory()
    log = FakeLog(path: directory.file("iptables.log"))
  }

  func source(threshold: Int = 256 * 1024) -> LogFileSource {
    LogFileSource(session: session, path: log.path, compressionThreshold: threshold)
  }

  @discardableResult
  func collect(maxBytes: Int = 16 << 20, threshold: Int = 256 * 1024) async throws -> CollectSummary {
    try await store.collect(
      from: source(threshold: threshold), makeParser: { FakeParser() }, clock: .zero, maxBytes: maxBytes)
  }

  func expectExactlyOnce(_ written: [Int]) throws {
    let stored = try storedSequence(store)
    let missing = Set(written).subtracting(stored).sorted()
    let duplicated = Dictionary(grouping: stored, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
    #expect(
      stored.count == written.count && missing.isEmpty && duplicated.isEmpty,
      "stored \(stored.count), written \(written.count), missing \(missing.prefix(10)), duplicated \(duplicated.prefix(10))"
    )
    #expect(stored.sorted() == stored, "lines stored out of order")
  }

  @Test func incrementalPullsOnlyNewLines() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    let again = try await collect()
    #expect(again.lines == 0)
    written += try log.append(3)
    let third = try await collect()
    #expect(third.lines == 3)
    try expectExactlyOnce(written)
  }

  @Test func createModeRotation() async throws {
    var log = log
    var written = try log.append(4)
    try await collect()
    written += try log.append(3)  // unread tail that moves to .1
    try await log.rotateCreate()
    written += try log.append(2)
    let summary = try await collect()
    #expect(summary.events.contains(.followedRotation(file: log.path + ".1")))
    try expectExactlyOnce(written)
  }

  @Test func copyTruncateRotation() async throws {
    var log = log
    var written = try log.append(4)
    try await collect()
    written += try log.append(3)
    try await log.rotateCopyTruncate()
    written += try log.append(6)  // the live file grows past the old offset again
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func delayCompressedSecondGenerationIsFollowed() async throws {
    var log = log
    var written = try log.append(3)
    try await collect()
    written += try log.append(2)
    try await log.rotateCreate()  // our file is .1
    written += try log.append(2)
    try await log.rotateCreate()  // our file is now .2.gz (new inode, same content)
    written += try log.append(2)
    #expect(FileManager.default.fileExists(atPath: log.path + ".2.gz"))
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func severalRotationsBetweenCollectsMixedModes() async throws {
    var log = log
    var written = try log.append(10)
    try await collect()
    for round in 0..<5 {
      written += try log.append(7 + round)
      if round % 2 == 0 { try await log.rotateCreate() } else { try await log.rotateCopyTruncate() }
    }
    written += try log.append(3)
    try await collect()
    try expectExactlyOnce(written)
    // And a quiet rerun adds nothing.
    #expect(try await collect().lines == 0)
    try expectExactlyOnce(written)
  }

  @Test func compressEverythingRotation() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    written += try log.append(5)
    try await log.rotateCreate(compressFrom: 1)  // no delaycompress: straight to .1.gz
    written += try log.append(1)
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func truncationIsDetectedAndNewLinesRead() async throws {
    var log = log
    let first = try log.append(6)
    try await collect()
    try await log.truncate()
    let after = try log.append(2)
    let summary = try await collect()
    #expect(summary.events.contains { if case .truncated = $0 { true } else { false } })
    try expectExactlyOnce(first + after)
  }

  @Test func partialLastLineWaitsUntilComplete() async throws {
    var log = log
    var written = try log.append(2)
    try log.appendRaw("seq 3")
    try await collect()
    #expect(try storedSequence(store) == written)
    try log.appendRaw("\n")
    written.append(3)
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func partialLineCompletedAfterRotationIsNotLost() async throws {
    var log = log
    var written = try log.append(2)
    try log.appendRaw("seq 3")
    try await collect()
    try log.appendRaw("\n")
    written.append(3)
    try await log.rotateCreate()
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func smallPullsAndWireCompressionKeepEveryLine() async throws {
    var log = log
    var written = try log.append(3000)
    // 4 KiB pulls, compression above 1 KiB: many batches, each compressed on the "node".
    let summary = try await collect(maxBytes: 4096, threshold: 1024)
    #expect(summary.batches > 5)
    #expect(summary.transferredBytes < summary.bytes)
    written += try log.append(100)
    try await log.rotateCreate(compressFrom: 1)
    written += try log.append(50)
    try await collect(maxBytes: 4096, threshold: 1024)
    try expectExactlyOnce(written)
  }

  @Test func killedCollectThenRerunLosesAndDuplicatesNothing() async throws {
    var log = log
    let written = try log.append(2000)
    let source = source()
    // Pull once, then "die" before committing: nothing must be stored, cursor unchanged.
    let chunk = try await source.pull(after: nil, maxBytes: 4096)
    var parser = FakeParser()
    let batch = CollectedBatch(
      chunk: chunk, node: session.host, sourceID: source.sourceID, parser: &parser, clock: .zero)
    await #expect(throws: InjectedFault.self) {
      try await store.commit(batch, faultInjection: { throw InjectedFault() })
    }
    #expect(try storedSequence(store).isEmpty)
    #expect(try store.cursor(node: session.host, source: source.sourceID) == nil)
    // Commit a few batches, then fail in the middle of the next one.
    var cursor: SourceCursor?
    for _ in 0..<3 {
      let chunk = try await source.pull(after: cursor, maxBytes: 4096)
      try await store.commit(
        CollectedBatch(chunk: chunk, node: session.host, sourceID: source.sourceID, parser: &parser, clock: .zero))
      cursor = chunk.cursor
    }
    let committed = try storedSequence(store)
    let failing = try await source.pull(after: cursor, maxBytes: 4096)
    await #expect(throws: InjectedFault.self) {
      try await store.commit(
        CollectedBatch(chunk: failing, node: session.host, sourceID: source.sourceID, parser: &parser, clock: .zero),
        faultInjection: { throw InjectedFault() })
    }
    #expect(try storedSequence(store) == committed)
    #expect(try store.cursor(node: session.host, source: source.sourceID) == cursor)
    // The rerun resumes at the committed cursor.
    try await collect(maxBytes: 4096)
    try expectExactlyOnce(written)
  }

  @Test func firstCollectStartsAtOldestRotatedFile() async throws {
    var log = log
    var written = try log.append(3)
    try await log.rotateCreate()
    written += try log.append(3)
    try await log.rotateCreate()
    written += try log.append(3)
    try await collect()
    try expectExactlyOnce(written)
  }

  /// The real logrotate binary, create mode with compress + delaycompress, then copytruncate.
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate")))
  func realLogrotateBothModes() async throws {
    var log = log
    let state = directory.file("logrotate.state")
    func rotate(copytruncate: Bool) async throws {
      let config = directory.file("logrotate.conf")
      try """
      \(log.path) {
          rotate 9
          missingok
          compress
          delaycompress
          \(copytruncate ? "copytruncate" : "create 0640 root root")
      }
      """.write(toFile: config, atomically: true, encoding: .utf8)
      try await shell("/usr/sbin/logrotate -f -s \(ShellQuote.quote(state)) \(ShellQuote.quote(config))")
    }
    var written = try log.append(20)
    try await collect()
    for round in 0..<3 {
      written += try log.append(10 + round)
      try await rotate(copytruncate: false)
    }
    written += try log.append(5)
    try await collect()
    try expectExactlyOnce(written)
    for round in 0..<3 {
      written += try log.append(10 + round)
      try await rotate(copytruncate: true)
    }
    written += try log.append(5)
    try await collect()
    try expectExactlyOnce(written)
    #expect(FileManager.default.fileExists(atPath: log.path + ".3.gz"))
  }

  @Test func rotationBetweenListingAndReadingIsDetectedAndRetried() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    written += try log.append(4)
    // The node rotates right after svctrace listed the files, before it reads, and the new
    // live file grows past the old offset: reading it at that offset would lose its first lines.
    var raced: [Int] = []
    let racing = RacingSession(inner: session) {
      try await log.rotateCreate()
      raced = try log.append(30)
    }
    let source = LogFileSource(session: racing, path: log.path)
    _ = try await store.collect(from: source, makeParser: { FakeParser() }, clock: .zero)
    #expect(racing.fired)
    written += raced
    written += try log.append(2)
    try await collect()
    try expectExactlyOnce(written)
  }

  @Test func listingParsesNumberedAndCompressedNames() throws {
    let path = "/var/log/iptables.log"
    let text = """
      F 12 100 41424344 /var/log/iptables.log
      F 13 50 - /var/log/iptables.log.1
      F 14 30 4142 /var/log/iptables.log.10.gz
      F 15 30 4142 /var/log/iptables.log.2.gz
      """
    let files = try LogFileSource.parseListing(text, path: path, host: HostID("n"))
    #expect(files.map(\.index) == [0, 1, 2, 10])
    #expect(files[0].prefix == [0x41, 0x42, 0x43, 0x44])
    #expect(files[1].prefix.isEmpty)
    #expect(files[2].compressed)
    #expect(throws: CaptureError.self) {
      try LogFileSource.parseListing("garbage line", path: path, host: HostID("n"))
    }
  }
}

/// Runs `action` once, just before the first read command, to simulate a rotation racing a pull.
final class RacingSession: RemoteSession, @unchecked Sendable {
  let inner: LocalShellSession
  private let action: () async throws -> Void
  private let lock = NSLock()
  private var done = false

  init(inner: LocalShellSession, action: @escaping () async throws -> Void) {
    self.inner = inner
    self.action = action
  }

  var host: HostID { inner.host }
  var fired: Bool { lock.withLock { done } }

  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    if command.contains("exec 3<") {
      let first = lock.withLock { () -> Bool in
        defer { done = true }
        return !done
      }
      if first { try await action() }
    }
    return try await inner.run(command, stdin: stdin, timeout: timeout)
  }

  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] { [] }
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {}
  func stat(_ path: String) async throws -> RemoteFileStat? { nil }
  func close() async {}
}
