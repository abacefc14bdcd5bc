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
    store = try TraceStore.inMemory(replayParser: { _ in FakeParser() })
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

  /// logrotate `dateext` (RHEL's default): rotated files are named by date, not `.N`. One and
  /// two rotations between collects, plain, `compress` and `compress` + `delaycompress`, and the
  /// default and custom `dateformat`s.
  @Test(arguments: [
    (compress: false, delay: false, format: "-%Y%m%d"), (compress: true, delay: false, format: "-%Y%m%d%H"),
    (compress: true, delay: true, format: "-%Y-%m-%d-%s"),
  ])
  func dateextRotationKeepsEveryLineOnce(mode: (compress: Bool, delay: Bool, format: String)) async throws {
    var log = log
    var generation = 0
    func rotate() async throws {
      generation += 1
      let stamp: String
      switch mode.format {
      case "-%Y%m%d": stamp = "-202612\(String(format: "%02d", generation))"
      case "-%Y%m%d%H": stamp = "-20261207\(String(format: "%02d", generation))"
      default: stamp = "-2026-12-07-\(1_796_600_000 + generation * 3600)"
      }
      try await log.rotateDateext(
        stamp: stamp, compress: mode.compress, delaycompress: mode.delay, mtime: 1_796_600_000 + generation * 3600)
    }
    var written = try log.append(5)
    try await collect()
    written += try log.append(4)  // unread tail that moves to the dated file
    try await rotate()
    written += try log.append(3)
    let once = try await collect()
    #expect(!once.events.contains { if case .truncated = $0 { true } else { false } })
    try expectExactlyOnce(written)
    written += try log.append(6)
    try await rotate()
    written += try log.append(7)
    try await rotate()
    written += try log.append(2)
    let twice = try await collect()
    #expect(!twice.events.contains(.cursorFileLost))
    try expectExactlyOnce(written)
    #expect(try await collect().lines == 0)
  }

  /// Rotated files are ordered by age (mtime), not by name: `-…-9` sorts after `-…-10` by name
  /// but is older.
  @Test func dateextFilesAreOrderedByAgeNotName() async throws {
    var log = log
    var written = try log.append(3)
    try await collect()
    written += try log.append(2)
    try await log.rotateDateext(stamp: "-20261207-9", mtime: 1_796_600_000)
    written += try log.append(2)
    try await log.rotateDateext(stamp: "-20261207-10", mtime: 1_796_603_600)
    written += try log.append(2)
    try await collect()
    try expectExactlyOnce(written)
  }

  /// Files next to the log that only look like rotations are not read.
  @Test func unrelatedSiblingsAreNotRead() async throws {
    var log = log
    var written = try log.append(4)
    for name in [".bak", "foo", ".1.tmp", "-old", "-2026.bak"] {
      try await shell("cp \(ShellQuote.quote(log.path)) \(ShellQuote.quote(log.path + name))")
    }
    try await collect()
    written += try log.append(2)
    try await log.rotateDateext(stamp: "-20261207", mtime: 1_796_600_000)
    written += try log.append(1)
    try await collect()
    try expectExactlyOnce(written)
    let listed = try await source().listFiles().map(\.name)
    #expect(listed == [log.path, log.path + "-20261207"])
  }

  /// The real logrotate binary with and without `dateext` (create mode with compress +
  /// delaycompress, then copytruncate), its own state file, several rotations between collects.
  @Test(
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate")), arguments: [false, true])
  func realLogrotateWithAndWithoutDateext(dateext: Bool) async throws {
    var log = log
    let state = directory.file("logrotate.state")
    func rotate(copytruncate: Bool) async throws {
      let config = directory.file("logrotate.conf")
      try """
      \(log.path) {
          rotate 20
          missingok
          compress
          delaycompress
          \(dateext ? "dateext\n    dateformat -%Y%m%d-%s" : "nodateext")
          \(copytruncate ? "copytruncate" : "create 0640")
      }
      """.write(toFile: config, atomically: true, encoding: .utf8)
      try await shell("/usr/sbin/logrotate -f -s \(ShellQuote.quote(state)) \(ShellQuote.quote(config))")
      // dateformat has one-second resolution: the next rotation needs a new name.
      if dateext { try await Task.sleep(for: .milliseconds(1050)) }
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
    try await rotate(copytruncate: false)  // a collect right after a rotation: empty live file
    try await collect()
    written += try log.append(4)
    try await collect()
    try expectExactlyOnce(written)
    for round in 0..<2 {
      written += try log.append(10 + round)
      try await rotate(copytruncate: true)
    }
    written += try log.append(5)
    let last = try await collect()
    try expectExactlyOnce(written)
    #expect(!last.events.contains(.cursorFileLost))
    #expect(!last.events.contains { if case .truncated = $0 { true } else { false } })
    let rotated = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
      $0.hasPrefix("iptables.log") && $0 != "iptables.log"
    }
    #expect(rotated.contains { dateext ? $0.hasPrefix("iptables.log-") : $0.hasPrefix("iptables.log.") })
  }

  /// A collect right after a rotation (empty live file) keeps the cursor on the fully read
  /// rotated file: no cursor names a file by an empty fingerprint.
  @Test func collectRightAfterRotationKeepsTheCursorOnTheRotatedFile() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    written += try log.append(3)
    try await log.rotateCreate()
    try await collect()
    let stored = try #require(try store.cursor(node: session.host, source: source().sourceID))
    let cursor = try #require(FileCursor(stored))
    #expect(!cursor.fingerprint.isEmpty)
    #expect(
      cursor.fingerprint == Array("seq 1\n".utf8) + Array("seq 2\nseq 3\nseq 4\nseq 5\nseq 6\nseq 7\nseq 8\n".utf8))
    written += try log.append(2)
    try await collect()
    try expectExactlyOnce(written)
  }

  /// The live file's inode is reused by a later live file after the first one was rotated and
  /// compressed away: the cursor taken on the empty live file must not match it.
  @Test func reusedInodeOfAnEmptyLiveFileDoesNotSkipRotatedFiles() async throws {
    var log = log
    _ = try log.append(5)
    try await collect()
    try await log.rotateCreate()
    let chunk = try await source().pull(
      after: try store.cursor(node: session.host, source: source().sourceID), maxBytes: 1 << 20)
    let emptyLiveInode = try #require(try await source().listFiles().first?.inode)
    // Later listing: .2.gz holds the old file, .1 the once-empty live file's lines, and a new
    // live file that got the freed inode back.
    func candidate(_ name: String, _ inode: UInt64, _ content: String) throws -> LogFileSource.Candidate {
      let (naming, compressed) = try #require(LogFileSource.naming(of: log.path + name, path: log.path))
      return LogFileSource.Candidate(
        name: log.path + name, naming: naming, compressed: compressed, inode: inode,
        size: UInt64(content.utf8.count), prefix: Array(content.utf8.prefix(64)))
    }
    let files = LogFileSource.ordered(
      [
        try candidate("", emptyLiveInode, "seq 20\n"),
        try candidate(".1", 999_001, "seq 10\nseq 11\n"),
        try candidate(".2.gz", 999_002, "seq 1\nseq 2\nseq 3\nseq 4\nseq 5\n"),
      ])
    let position = LogFileSource.locate(cursor: FileCursor(chunk.cursor), in: files, start: .oldestFile)
    #expect(files[position.fileIndex].name == log.path + ".2.gz")
  }

  /// The cursor's file was rotated out of retention and a new live file got its inode back: that
  /// is a lost file (restart at the oldest), not a truncation (which would skip `.1`). A live
  /// file truncated in place, with only older rotated files, still reads as truncated.
  @Test func reusedInodeOfTheLiveFileIsNotTakenForATruncation() throws {
    let path = "/var/log/iptables.log"
    let cursor = FileCursor(
      inode: 7, fingerprint: Array("seq 1\nseq 2\n".utf8), size: 12, offset: 12, mtime: 1_796_600_000)
    func file(_ name: String, _ inode: UInt64, _ content: String, mtime: Int64) throws -> LogFileSource.Candidate {
      let (naming, compressed) = try #require(LogFileSource.naming(of: path + name, path: path))
      return LogFileSource.Candidate(
        name: path + name, naming: naming, compressed: compressed, inode: inode, size: UInt64(content.utf8.count),
        mtime: mtime, prefix: Array(content.utf8.prefix(64)))
    }
    let rotatedAway = LogFileSource.ordered([
      try file("", 7, "seq 20\n", mtime: 1_796_600_900), try file(".1", 8, "seq 10\nseq 11\n", mtime: 1_796_600_500),
    ])
    let lost = LogFileSource.locate(cursor: cursor, in: rotatedAway, start: .oldestFile)
    #expect(rotatedAway[lost.fileIndex].name == path + ".1")
    #expect(lost.events == [.cursorFileLost])
    let truncated = LogFileSource.ordered([
      try file("", 7, "seq 20\n", mtime: 1_796_600_900), try file(".1", 8, "seq 0\n", mtime: 1_796_599_000),
    ])
    let inPlace = LogFileSource.locate(cursor: cursor, in: truncated, start: .oldestFile)
    #expect(inPlace.fileIndex == 0 && inPlace.offset == 0)
    #expect(inPlace.events == [.truncated(file: path, previousOffset: 12)])
  }

  /// Two rotations before the next collect: the file the cursor rests on (`.1`) became `.2.gz`.
  @Test func cursorOnRotatedFileIsFoundAfterItWasCompressed() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    written += try log.append(3)
    try await log.rotateCreate(compressFrom: 2)
    try await collect()  // reads .1 to its end; the live file is empty
    written += try log.append(4)
    try await log.rotateCreate(compressFrom: 2)
    written += try log.append(2)
    try await log.rotateCreate(compressFrom: 2)
    written += try log.append(1)
    #expect(FileManager.default.fileExists(atPath: log.path + ".3.gz"))
    let summary = try await collect()
    #expect(!summary.events.contains(.cursorFileLost))
    try expectExactlyOnce(written)
  }

  /// The cursor's file rotated out of retention: reading restarts at the oldest file with an
  /// explicit event, reported by collect; nothing kept is read twice.
  @Test func cursorFileRotatedOutRestartsAtTheOldestFile() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    let lost = try log.append(3)  // in the file that is rotated out
    try await log.rotateCreate(compressFrom: nil)
    let kept = try log.append(4)
    try await log.rotateCreate(compressFrom: nil)
    written += kept
    written += try log.append(2)
    // Removed after the new live file exists, so that no new file can get its inode back.
    try await shell("rm \(ShellQuote.quote(log.path + ".2"))")
    let summary = try await collect()
    #expect(summary.events.contains(.cursorFileLost))
    try expectExactlyOnce(written)
    #expect(Set(try storedSequence(store)).isDisjoint(with: lost))
  }

  /// As above, with the live file still empty: the restart is reported once, the next collect
  /// neither reports it again nor reads anything twice.
  @Test func cursorFileRotatedOutWhileTheLiveFileIsEmpty() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    _ = try log.append(3)  // in the file that is rotated out
    try await log.rotateCreate(compressFrom: nil)
    written += try log.append(4)
    try await log.rotateCreate(compressFrom: nil)
    try await shell("rm \(ShellQuote.quote(log.path + ".2"))")
    let first = try await collect()
    #expect(first.events.contains(.cursorFileLost))
    let second = try await collect()
    #expect(second.events.isEmpty && second.lines == 0, "\(second.events)")
    written += try log.append(2)
    try await collect()
    try expectExactlyOnce(written)
  }

  /// A sound `.gz` read in small pulls: `head` stops gzip early (SIGPIPE), which is no error.
  @Test func compressedFileReadInSmallPullsIsNotTakenForCorrupt() async throws {
    var log = log
    var written = try log.append(20000)
    try await log.rotateCreate(compressFrom: 1)
    written += try log.append(3)
    let summary = try await collect(maxBytes: 4096)
    #expect(summary.batches > 20)
    try expectExactlyOnce(written)
  }

  /// A truncated `.gz` fails the pull naming the file; the cursor does not move past it.
  @Test func corruptGzipFailsThePullAndKeepsTheCursor() async throws {
    var log = log
    var written = try log.append(5)
    try await collect()
    let before = try store.cursor(node: session.host, source: source().sourceID)
    written += try log.append(2000)
    try await log.rotateCreate(compressFrom: 1)
    written += try log.append(2)
    let gz = log.path + ".1.gz"
    let size = try #require(try FileManager.default.attributesOfItem(atPath: gz)[.size] as? Int)
    try await shell("truncate -s \(size / 2) \(ShellQuote.quote(gz))")
    let error = try await #require(throws: CaptureError.self) { try await collect() }
    #expect(error.cause == .decompression)
    #expect(error.description.contains(gz))
    #expect(try store.cursor(node: session.host, source: source().sourceID) == before)
    #expect(try storedSequence(store) == Array(written.prefix(5)))
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

  @Test func listingParsesNumberedDatedAndCompressedNames() throws {
    let path = "/var/log/iptables.log"
    let text = """
      F 12 100 1796600900 41424344 /var/log/iptables.log
      F 13 50 1796600500 - /var/log/iptables.log.1
      F 14 30 1796600100 4142 /var/log/iptables.log.10.gz
      F 15 30 1796600300 4142 /var/log/iptables.log.2.gz
      F 16 30 1796600400 4142 /var/log/iptables.log-20261206
      F 17 30 1796600200 4142 /var/log/iptables.log-2026-12-05-1796500000.gz
      F 18 30 1796600800 4142 /var/log/iptables.log.bak
      F 19 30 1796600800 4142 /var/log/iptables.logfoo
      F 20 30 1796600800 4142 /var/log/iptables.log-old
      """
    let files = try LogFileSource.parseListing(text, path: path, host: HostID("n"))
    #expect(
      files.map(\.name) == [
        path, path + ".1", path + "-20261206", path + ".2.gz", path + "-2026-12-05-1796500000.gz", path + ".10.gz",
      ])
    #expect(files[0].prefix == [0x41, 0x42, 0x43, 0x44])
    #expect(files[1].prefix.isEmpty)
    #expect(files[3].compressed && files[4].compressed && !files[2].compressed)
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

/// One collect of a node costs one exchange in the common cases (issue: fleet scale).
@Suite("LogFileSource round trips")
struct LogFileSourceRoundTripTests {
  let directory: TempDirectory
  let store: TraceStore
  let session = CountingSession(LocalShellSession(host: HostID("node-test")))
  var log: FakeLog

  init() throws {
    directory = try TempDirectory()
    store = try TraceStore.inMemory(replayParser: { _ in FakeParser() })
    log = FakeLog(path: directory.file("iptables.log"))
  }

  /// Collects and returns how many execs it took.
  func collect(threshold: Int = 256 * 1024) async throws -> (CollectSummary, Int) {
    let before = session.execs
    let summary = try await store.collect(
      from: LogFileSource(session: session, path: log.path, compressionThreshold: threshold),
      makeParser: { FakeParser() })
    return (summary, session.execs - before)
  }

  @Test func nothingNewGrownAndRotatedCostOneExchangeEach() async throws {
    var log = log
    var written = try log.append(5)
    _ = try await collect()
    let (idle, idleExecs) = try await collect()
    #expect(idle.lines == 0 && idleExecs == 1)
    #expect(idle.clock != nil, "the exchange carries a clock sample")
    written += try log.append(7)
    let (grown, grownExecs) = try await collect()
    #expect(grown.lines == 7 && grownExecs == 1)
    written += try log.append(3)
    try await log.rotateCreate()
    written += try log.append(2)
    let (rotated, rotatedExecs) = try await collect()
    #expect(rotated.lines == 5 && rotatedExecs == 1, "rest of .1 and the new live file in one exchange")
    // Rotated while nothing was new: the cursor rests at the end of .1 (the live file is empty)…
    try await log.rotateCreate()
    let (rested, restedExecs) = try await collect()
    #expect(rested.lines == 0 && restedExecs == 1)
    // …and the next collect reads the new live file from its start in the same exchange.
    written += try log.append(4)
    let (resumed, resumedExecs) = try await collect()
    #expect(resumed.lines == 4 && resumedExecs == 1)
    // Large enough to be compressed on the node, still one exchange.
    written += try log.append(3000)
    let (large, largeExecs) = try await collect(threshold: 4096)
    #expect(large.lines == 3000 && largeExecs == 1)
    #expect(large.transferredBytes < large.bytes / 2, "compressed on the wire")
    let stored = try storedSequence(store)
    #expect(stored == written)
    // Idle with rotated files present: the cursor's file is still the live one, so only it is
    // listed (the rotated files are neither listed nor decompressed).
    let start = try await store.ingestStart(node: session.host, source: "file:" + log.path)
    let cursor = try #require(start.cursor.flatMap(FileCursor.init))
    let source = LogFileSource(session: session, path: log.path)
    let quiet = try await source.exchange(after: cursor, maxBytes: 1 << 20)
    #expect(quiet.files.map(\.name) == [log.path] && quiet.reads.isEmpty)
    #expect(try await source.listFiles().map(\.name) == [log.path, log.path + ".1", log.path + ".2.gz"])
  }
}
