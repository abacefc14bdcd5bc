import Foundation
import Ingest
import SVCTraceCore
import StoreTestSupport
import Testing

@testable import Logs
@testable import Store

/// A source that sees connections whole (as conntrack does), a few per pull; its cursor counts
/// the connections handed over.
struct ConnectionEventSource: CaptureSource {
  let node = HostID("node1")
  let sourceID = "test:connections"
  var events: [FinishedConnection]

  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let done = Int(cursor?.state.first ?? 0)
    let next = Array(events.dropFirst(done).prefix(2))
    let position = UInt64(done + next.count)
    return SourceChunk(
      data: [], connections: next,
      cursor: SourceCursor(kind: "test-connections", state: [UInt8(position)]),
      isCaughtUp: Int(position) >= events.count, transferredBytes: 0, file: sourceID, events: [])
  }
}

@Suite("Connections a source reports whole")
struct ReportedConnectionTests {
  let t1: Int64 = 1_780_000_000_000_000

  func event(_ index: Int) -> FinishedConnection {
    FinishedConnection(
      timeMicros: t1 + Int64(index) * 1000, proto: 6, client: IPAddress("10.244.1.5")!,
      clientPort: UInt16(40000 + index), service: IPAddress("10.96.0.10")!, servicePort: 80,
      pod: IPAddress("10.244.2.\(index + 1)")!, podPort: 8080)
  }

  @Test(arguments: StoreFactory.all)
  func theyAreStoredAsTheyCameAndTraced(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let source = ConnectionEventSource(events: (0..<5).map(event))
    let clock = ClockOffset(offsetMicros: 250, boundMicros: 10)
    let summary = try await Ingestor(store: store).collect(from: source, makeParser: { FakeParser() }, clock: clock)
    #expect(summary.connections == 5 && summary.lines == 0 && summary.batches == 3)
    let records = try await store.connections(matching: TraceQuery())
    #expect(records.map(\.clientPort) == (0..<5).map { UInt16(40000 + $0) })
    #expect(records.map(\.pod) == (0..<5).map { IPAddress("10.244.2.\($0 + 1)")! })
    #expect(records.allSatisfy { $0.method == .reportedBySource && $0.preLineID == nil && $0.postLineID == nil })
    #expect(records.map(\.timeMicros) == (0..<5).map { t1 + Int64($0) * 1000 - 250 }, "node clock corrected")
    // Traced like any other: by client, by Service; no lines to explain.
    let traced = try await store.connections(
      matching: TraceQuery(client: IPAddress("10.244.1.5"), clientPort: 40003))
    #expect(traced.map(\.pod) == [IPAddress("10.244.2.4")!])
    #expect(try await store.explain(traced[0]).isEmpty)
    #expect(try await store.connections(matching: TraceQuery(service: IPAddress("10.96.0.10"))).count == 5)
    // The cursor moved with them: the next collect finds nothing new.
    let again = try await Ingestor(store: store).collect(from: source, makeParser: { FakeParser() }, clock: clock)
    #expect(again.connections == 0 && again.batches == 0)
    #expect(try await store.collectStatus().map(\.connections) == [5])
    #expect(try await store.collectStatus().map(\.kind) == ["test-connections"], "the kind of source, with its cursor")
  }
}
