import Foundation
import Ingest
import SVCTraceCore
import StoreTestSupport
import Testing

@testable import Logs
@testable import Store

/// A node whose collects each bring some kernel LOG lines and the LOG rules' counters read after
/// them (as `LogFileSource` does in one exchange); its cursor counts the collects.
struct CountingNodeSource: CaptureSource {
  /// One collect: lines stamped at these uptimes (seconds), then counters at `uptime`.
  struct Round {
    var stamps: [Double]
    var counter: UInt64
    var uptime: Double
  }

  let node = HostID("node3")
  let sourceID = "test:loss"
  var rounds: [Round]
  /// The node's wall clock at uptime 0 (µs).
  static let bootWall: Int64 = 1_796_600_000_000_000

  static func line(_ stamp: Double, port: Int) -> String {
    let wall = bootWall + Int64(stamp * 1_000_000) + 300_000
    return TimeFormat.rfc3339(micros: wall)
      + " node3 kernel: [\(String(format: "%6.6f", stamp))] SVCT:PRE IN=n3e0 OUT= SRC=10.244.3.10 DST=10.96.0.10 LEN=60 TTL=64 ID=\(port) DF PROTO=TCP SPT=\(port) DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0\n"
  }

  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let index = Int(cursor?.state.first ?? 0)
    let round = rounds[index]
    let text = round.stamps.enumerated().map { Self.line($0.element, port: 20000 + index * 100 + $0.offset) }.joined()
    let uptime = Int64(round.uptime * 1_000_000)
    var chunk = SourceChunk(
      data: Array(text.utf8), cursor: SourceCursor(kind: "test-loss", state: [UInt8(index + 1)]), isCaughtUp: true,
      transferredBytes: text.utf8.count, file: sourceID, events: [], clock: .zero)
    chunk.counters = RuleCounterSample(
      bootID: "b", generation: "", counters: ["iptables-nft:SVCT-LOG-PRE:1": round.counter], uptimeMicros: uptime,
      wallMicros: Self.bootWall + uptime, rsyslogRunning: true)
    return chunk
  }
}

/// The loss accounting through the ingest pipeline into each store: the ledger carried from one
/// collect to the next, the settled intervals stored, a collect that did not save its ledger.
@Suite("Loss accounting through collect")
struct LossIngestTests {
  static func collect(_ store: any TraceStoring, _ source: CountingNodeSource) async throws -> CollectSummary {
    try await Ingestor(store: store).collect(
      from: source, makeParser: { PacketLineParser(referenceMicros: CountingNodeSource.bootWall) })
  }

  @Test(arguments: StoreFactory.all)
  func lostLinesAreSettledAcrossCollectsAndStored(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    // 20 packets in the second interval; 3 of their lines never reach the file.
    let stamps = (1...20).map { 100 + Double($0) * 0.05 }
    let arrived = stamps.enumerated().filter { ![4, 9, 15].contains($0.offset) }.map(\.element)
    let source = CountingNodeSource(rounds: [
      .init(stamps: [], counter: 500, uptime: 100),
      .init(stamps: Array(arrived.prefix(10)), counter: 520, uptime: 101.2),
      .init(stamps: Array(arrived.dropFirst(10)), counter: 520, uptime: 131),
      .init(stamps: [], counter: 520, uptime: 161),
    ])
    let first = try await Self.collect(store, source)
    #expect(first.countersRead && first.linesLost == 0 && first.lossIntervals.isEmpty)
    let second = try await Self.collect(store, source)
    #expect(second.lines == 10 && second.lossIntervals.isEmpty && second.unsettledPackets == 20)
    let third = try await Self.collect(store, source)
    #expect(third.linesLost == 3 && third.unsettledPackets == 0)
    #expect(third.lossIntervals.map(\.packets) == [20] && third.lossIntervals.map(\.lines) == [17])
    let fourth = try await Self.collect(store, source)
    #expect(fourth.linesLost == 0 && fourth.lossIntervals.isEmpty)
    let stored = try await store.lossIntervals(sinceMicros: nil, untilMicros: nil)
    #expect(stored == third.lossIntervals)
    #expect(stored.first?.fromMicros == CountingNodeSource.bootWall + 100_000_000)
  }

  @Test(arguments: StoreFactory.all)
  func linesStoredWithoutTheLedgerStartANewEpoch(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let source = CountingNodeSource(rounds: [
      .init(stamps: [], counter: 0, uptime: 100),
      .init(stamps: [100.5], counter: 40, uptime: 101),
      .init(stamps: [], counter: 40, uptime: 140),
    ])
    _ = try await Self.collect(store, source)
    // A batch committed behind the ledger's back (a collect killed before it saved it).
    var parser = PacketLineParser(referenceMicros: CountingNodeSource.bootWall)
    let chunk = SourceChunk(
      data: Array(CountingNodeSource.line(100.4, port: 1).utf8),
      cursor: SourceCursor(kind: "test-loss", state: [1]), isCaughtUp: true, transferredBytes: 0, file: "x",
      events: [])
    try await store.commit(
      PreparedBatch(
        CollectedBatch(chunk: chunk, node: source.node, sourceID: source.sourceID, parser: &parser, clock: .zero)))
    let second = try await Self.collect(store, source)
    #expect(second.lossEpoch == nil && second.unsettledPackets == 0, "a new epoch starts at this sample")
    let third = try await Self.collect(store, source)
    #expect(third.linesLost == 0, "39 packets of the unaccounted stretch are not called lost")
  }
}
