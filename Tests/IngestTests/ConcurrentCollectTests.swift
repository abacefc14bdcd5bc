import Foundation
import Ingest
import SVCTraceCore
import StoreTestSupport
import Synchronization
import Testing

@testable import Logs
@testable import Store

/// Collects that wait for each other before going on (`parties` of them; 0: none waits).
final class Rendezvous: Sendable {
  let parties: Int
  private let arrivals = Mutex(0)

  init(parties: Int) { self.parties = parties }

  /// Arrives, and waits (up to 20 s) until every party has.
  func arriveAndWait() async throws {
    arrivals.withLock { $0 += 1 }
    let deadline = ContinuousClock.now + .seconds(20)
    while arrivals.withLock({ $0 }) < parties, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(2))
    }
  }
}

/// A local file source whose first pull waits at `rendezvous` once it has its chunk: collects
/// that start together pull the same bytes after the same cursor.
final class RendezvousSource: CaptureSource, Sendable {
  let file: LocalFileSource
  let rendezvous: Rendezvous
  private let pulls = Mutex(0)

  init(_ file: LocalFileSource, _ rendezvous: Rendezvous) {
    self.file = file
    self.rendezvous = rendezvous
  }

  var node: HostID { file.node }
  var sourceID: String { file.sourceID }

  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let chunk = try await file.pull(after: cursor, maxBytes: maxBytes)
    let first = pulls.withLock {
      $0 += 1
      return $0 == 1
    }
    if first { try await rendezvous.arriveAndWait() }
    return chunk
  }
}

@Suite("Ingest: two collects of one node at once")
struct ConcurrentCollectTests {
  let t1: Int64 = 1_780_000_000_000_000
  let ms: Int64 = 1000
  let node = HostID("node1")

  /// Connections `range` of a log whose post lines come a few connections after their pre lines
  /// (pending lines cross batch boundaries), with retransmitted SYNs; every line is distinct.
  func lines(_ range: Range<Int>) -> [String] {
    var lines: [(Int64, String)] = []
    for index in range {
      let port = UInt16(20000 + index)
      let time = t1 + Int64(index) * 10 * ms
      lines.append((time, fakeLine(time, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1))))
      if index % 9 == 0 {
        lines.append((time + 1, fakeLine(time + 1, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 2))))
      }
      let pod = index % 11 == 0 ? "10.244.2.8" : "10.244.2.7"
      lines.append(
        (time + 25 * ms, fakeLine(time + 25 * ms, .post, "10.244.1.5", port, pod, 8080, id: UInt32(index + 1))))
    }
    return lines.sorted { $0.0 < $1.0 }.map(\.1)
  }

  func append(_ lines: [String], to path: String) throws {
    let handle = try #require(FileHandle(forWritingAtPath: path))
    defer { try? handle.close() }
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(lines.map { $0 + "\n" }.joined().utf8))
  }

  /// Collects `source` into `store`; `claims`: claiming the node first (as svctrace does).
  func collect(_ store: TraceStore, _ source: some CaptureSource, claims: Bool = false) async throws
    -> CollectSummary
  {
    try await Ingestor(store: store, claimsNodes: claims).collect(
      from: source, makeParser: { FakeParser() }, clock: .zero, maxBytes: 2048)
  }

  func offset(_ store: TraceStore, _ source: LocalFileSource) throws -> UInt64 {
    try store.cursor(node: node, source: source.sourceID).flatMap(FileCursor.init)?.offset ?? 0
  }

  /// The connections as a trace shows them (ids aside: they depend on how lines were batched).
  func traced(_ store: TraceStore) throws -> [String] {
    try store.connections(matching: TraceQuery()).map {
      "\($0.timeMicros) \($0.client):\($0.clientPort) \($0.service):\($0.servicePort) \($0.pod.map { "\($0)" } ?? "-"):\($0.podPort.map { "\($0)" } ?? "-") \($0.method)"
    }.sorted()
  }

  /// Without claims (a store whose lock is lost, or two collects that both got past it): the
  /// cursor's compare-and-swap alone keeps them apart.
  @Test func twoStoresCollectingOneGrowingFileStoreEachLineOnce() async throws {
    let directory = try TempDirectory()
    let path = directory.file("node1.log")
    #expect(FileManager.default.createFile(atPath: path, contents: nil))
    let file = LocalFileSource(node: node, path: path)
    // Two processes: two stores opened on one file.
    let storePath = directory.file("store.sqlite")
    let first = try TraceStore(path: storePath, replayParser: { _ in FakeParser() })
    let second = try TraceStore(path: storePath, replayParser: { _ in FakeParser() })

    var written: [String] = []
    var lastOffset: UInt64 = 0
    var yields = 0
    for round in 0..<16 {
      let more = lines(round * 40..<(round + 1) * 40)
      try append(more, to: path)
      written += more
      // Even rounds start both collects on the same cursor (the same bytes pulled twice); odd
      // rounds let them run freely.
      let rendezvous = Rendezvous(parties: round % 2 == 0 ? 2 : 0)
      async let a = collect(first, RendezvousSource(file, rendezvous))
      async let b = collect(second, RendezvousSource(file, rendezvous))
      let (one, other): (CollectSummary, CollectSummary) = try await (a, b)
      if rendezvous.parties == 2 {
        #expect(one.yieldedToOtherCollect != other.yieldedToOtherCollect, "round \(round): one of them stops")
      }
      yields += [one, other].count { $0.yieldedToOtherCollect }
      let reached = try offset(first, file)
      #expect(reached >= lastOffset, "round \(round): the cursor never moves back")
      lastOffset = reached
    }
    #expect(yields >= 8)
    // Whatever is left (a collect that yielded may have left the end of the file).
    let rest = try await collect(first, file)
    #expect(!rest.yieldedToOtherCollect)
    #expect(try offset(first, file) == UInt64(written.map { $0.utf8.count + 1 }.reduce(0, +)))

    let stored = try first.storedLines().map(\.raw)
    #expect(stored.count == Set(stored).count, "no line stored twice")
    #expect(stored.sorted() == written.sorted(), "every line stored")
    #expect(try second.storedLines().map(\.raw) == stored)
    let status = try #require(try first.collectStatus().first)
    #expect(status.lines == written.count)

    // The same connections as one collect of the whole file.
    let reference = try TraceStore(path: directory.file("reference.sqlite"), replayParser: { _ in FakeParser() })
    _ = try await collect(reference, file)
    let expected = try traced(reference)
    #expect(expected.count == 16 * 40)
    #expect(try traced(first) == expected)
  }

  @Test func aCollectSkipsANodeAnotherCollectHasClaimed() async throws {
    let directory = try TempDirectory()
    let path = directory.file("node1.log")
    let written = lines(0..<40)
    #expect(FileManager.default.createFile(atPath: path, contents: Data(written.map { $0 + "\n" }.joined().utf8)))
    let file = LocalFileSource(node: node, path: path)
    let storePath = directory.file("store.sqlite")
    let first = try TraceStore(path: storePath, replayParser: { _ in FakeParser() })
    let second = try TraceStore(path: storePath, replayParser: { _ in FakeParser() })
    // The other process is collecting node1.
    let held = try #require(try await second.claimCollect(node: node))
    let skipped = try await collect(first, file, claims: true)
    #expect(skipped.yieldedToOtherCollect && skipped.bytes == 0 && skipped.batches == 0)
    #expect(try first.storedLines().isEmpty)
    // Other nodes are not held up.
    let other = try await collect(first, LocalFileSource(node: HostID("node2"), path: path), claims: true)
    #expect(!other.yieldedToOtherCollect && other.lines == written.count)
    // Once it is done, the node is collected again; the run's own claim ends with it.
    held.release()
    let done = try await collect(first, file, claims: true)
    #expect(!done.yieldedToOtherCollect && done.lines == written.count)
    #expect(try await second.claimCollect(node: node) != nil)
  }
}
