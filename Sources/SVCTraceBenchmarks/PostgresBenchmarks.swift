import Foundation
import PostgresStore
import SVCTraceCore
import Store

/// The trace benchmark on the team store: the same generated records, loaded into PostgreSQL,
/// the same lookups through ``PostgresTraceStore/connections(matching:)``.
enum PostgresTraceBenchmark {
  /// Wipes `store` (a database given for the benchmark), loads `records` generated connections
  /// and times the two kinds of lookup.
  static func run(records: Int, store: PostgresTraceStore, queries: Int, blockSize: Int = 4096) async throws
    -> BenchmarkFigures
  {
    try await store.wipeForBenchmark()
    let end = ClockOffset.wallClockMicros()
    let generateStart = ContinuousClock.now
    var generator = RecordGenerator(records: records, queries: queries, blockSize: blockSize, end: end)
    while let blocks = generator.nextChunk() {
      // In transactions of about 50 000 records (one per chunk would hold a long one open).
      var start = 0
      while start < blocks.count {
        var count = 0
        var stop = start
        while stop < blocks.count, count < 50_000 {
          count += blocks[stop].connections.count
          stop += 1
        }
        try await store.bulkLoad(Array(blocks[start..<stop]))
        start = stop
      }
    }
    let generateSeconds = (ContinuousClock.now - generateStart).seconds
    let indexStart = ContinuousClock.now
    try await store.analyze()
    let indexSeconds = (ContinuousClock.now - indexStart).seconds
    let (blocks, bytes) = try await store.benchmarkSize()
    let client = try await measure(
      store, generator.clientSamples.prefix(queries).map { TraceQuery(client: $0.0, clientPort: $0.1) },
      index: "block_keys(client) + client_bloom")
    let since = end - 10 * 60 * 1_000_000
    let service = try await measure(
      store,
      generator.serviceSamples.prefix(queries).map { TraceQuery(service: $0.0, servicePort: $0.1, sinceMicros: since) },
      index: "block_keys(service)")
    return BenchmarkFigures(
      records: records, blocks: blocks, generateSeconds: generateSeconds, indexSeconds: indexSeconds,
      fileBytes: bytes, clientLookup: client, serviceLookup: service, goalMillis: 20)
  }

  private static func measure(_ store: PostgresTraceStore, _ queries: [TraceQuery], index: String) async throws
    -> LatencyFigures
  {
    var durations: [Double] = []
    var rows = 0
    for query in queries {
      let start = ContinuousClock.now
      rows += try await store.connections(matching: query).count
      durations.append((ContinuousClock.now - start).seconds * 1000)
    }
    durations.sort()
    func percentile(_ p: Double) -> Double {
      durations.isEmpty ? 0 : durations[min(durations.count - 1, Int((Double(durations.count) * p).rounded(.up)) - 1)]
    }
    return LatencyFigures(
      queries: durations.count, medianMillis: percentile(0.5), p99Millis: percentile(0.99),
      maxMillis: durations.last ?? 0, meanRows: Double(rows) / Double(max(queries.count, 1)), meanBlocksDecoded: 0,
      plan: [], index: index)
  }
}

/// Opens the PostgreSQL store a benchmark's `--store URL` names (password as svctrace finds it).
func openBenchmarkStore(_ url: String) async throws -> PostgresTraceStore {
  let location = try PostgresStoreLocation(url: url)
  let password = PostgresPassword.resolve(for: location) {
    FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8))
  }
  return try await PostgresTraceStore.open(location, password: password)
}
