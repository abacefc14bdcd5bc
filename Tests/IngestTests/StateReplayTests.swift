import Foundation
import GRDB
import Ingest
import SVCTraceCore
import StoreTestSupport
import Synchronization
import Testing

@testable import Logs
@testable import Store

/// A local file source whose pulls fail from the `failAt`th on (a collect killed mid-way).
final class InterruptedSource: CaptureSource, Sendable {
  let file: LocalFileSource
  let failAt: Int
  private let pulls = Mutex(0)

  init(_ file: LocalFileSource, failAt: Int) {
    self.file = file
    self.failAt = failAt
  }

  var node: HostID { file.node }
  var sourceID: String { file.sourceID }

  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let count = pulls.withLock {
      $0 += 1
      return $0
    }
    guard count < failAt else { throw CaptureError(host: node, operation: "pull", message: "killed") }
    return try await file.pull(after: cursor, maxBytes: maxBytes)
  }
}

@Suite("Ingest: a collect interrupted between two stored correlator states")
struct StateReplayTests {
  let t1: Int64 = 1_780_000_000_000_000
  let ms: Int64 = 1000

  /// A log of `count` connections whose post lines come a few connections after their pre
  /// lines (so pending lines cross batch boundaries), with retransmitted SYNs and a re-DNAT.
  func log(_ count: Int) -> String {
    var lines: [(Int64, String)] = []
    for index in 0..<count {
      let port = UInt16(20000 + index)
      let time = t1 + Int64(index) * 10 * ms
      lines.append((time, fakeLine(time, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 1))))
      if index % 9 == 0 {
        lines.append((time + 1, fakeLine(time + 1, .pre, "10.244.1.5", port, "10.96.0.10", 80, id: UInt32(index + 2))))
      }
      let pod = index % 11 == 0 ? "10.244.2.8" : "10.244.2.7"
      lines.append(
        (time + 25 * ms, fakeLine(time + 25 * ms, .post, "10.244.1.5", port, pod, 8080, id: UInt32(index + 1))))
      if index % 9 == 0 {
        lines.append(
          (
            time + 26 * ms,
            fakeLine(time + 26 * ms, .post, "10.244.1.5", port, "10.244.2.9", 8080, id: UInt32(index + 2))
          ))
      }
    }
    return lines.sorted { $0.0 < $1.0 }.map { $0.1 + "\n" }.joined()
  }

  func collect(_ store: TraceStore, _ source: some CaptureSource) async throws -> CollectSummary {
    try await store.collect(from: source, makeParser: { FakeParser() }, clock: .zero, maxBytes: 4096)
  }

  /// What two stores must agree on: every record and every line's outcome.
  func contents(_ store: TraceStore) throws -> [String] {
    try store.connections(matching: TraceQuery()).map {
      "\($0.timeMicros) \($0.clientPort) \($0.pod.map { "\($0)" } ?? "-") \($0.method) \($0.preLineID ?? 0) \($0.postLineID ?? 0)"
    } + store.storedLines().map { "\($0.id) \($0.outcome)" }
  }

  @Test func aCollectKilledBetweenTwoStoredStatesContinuesAsIfNeverInterrupted() async throws {
    let directory = try TempDirectory()
    let path = directory.file("node1.log")
    try Data(log(400).utf8).write(to: URL(fileURLWithPath: path))
    let file = LocalFileSource(node: HostID("node1"), path: path)

    let reference = try TraceStore(path: directory.file("reference.sqlite"), replayParser: { _ in FakeParser() })
    let whole = try await collect(reference, file)
    #expect(whole.batches > Ingestor.stateInterval + 3)

    // Killed after 11 batches: the state stored with the 8th, batches 9–11 committed after it.
    let killed = try TraceStore(path: directory.file("killed.sqlite"), replayParser: { _ in FakeParser() })
    await #expect(throws: CaptureError.self) {
      try await collect(killed, InterruptedSource(file, failAt: 12))
    }
    let row = try killed.dbWriter.read { db in
      try Row.fetchOne(db, sql: "SELECT state_batch, last_batch FROM correlation_state")
    }
    let (stateBatch, lastBatch) = (row?[0] as Int64?, row?[1] as Int64?)
    #expect(stateBatch == 8 && lastBatch == 11, "state after batch 8, batches 9–11 to replay")

    // A new process continues: the state is rebuilt by replaying batches 9–11.
    let resumed = try TraceStore(path: directory.file("killed.sqlite"), replayParser: { _ in FakeParser() })
    let rest = try await collect(resumed, file)
    #expect(rest.batches == whole.batches - 11)
    #expect(try contents(resumed) == contents(reference))
    #expect(try contents(resumed).count > 1200)
  }

  @Test func pruneKeepsTheBatchesAReplayNeeds() async throws {
    let directory = try TempDirectory()
    let path = directory.file("node1.log")
    try Data(log(400).utf8).write(to: URL(fileURLWithPath: path))
    let file = LocalFileSource(node: HostID("node1"), path: path)
    let store = try TraceStore(path: directory.file("store.sqlite"), replayParser: { _ in FakeParser() })
    await #expect(throws: CaptureError.self) {
      try await collect(store, InterruptedSource(file, failAt: 12))
    }
    // Everything is older than the cutoff, but batches 9–11 stay until a collect replays them.
    try store.prune(olderThan: t1 + 3_600_000 * ms)
    let kept = try await store.dbWriter.read { db in
      try Int64.fetchAll(db, sql: "SELECT batch_id FROM line_blocks ORDER BY batch_id")
    }
    #expect(kept == [9, 10, 11])
    let rest = try await collect(store, file)
    #expect(rest.lines > 0)
    let row = try store.dbWriter.read { db in
      try Row.fetchOne(db, sql: "SELECT state_batch, last_batch FROM correlation_state")
    }
    #expect(row?[0] as Int64? == row?[1] as Int64?, "the state is current again")
  }

}
