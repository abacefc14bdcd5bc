import Foundation
import LogGeneration
import Logs
import SVCTraceCore
import Store

/// Latency figures of one kind of lookup.
public struct LatencyFigures: Sendable, Equatable, Codable {
  public var queries: Int
  public var medianMillis: Double
  public var p99Millis: Double
  public var maxMillis: Double
  /// Average number of records a query returned.
  public var meanRows: Double
  /// Average number of connection blocks a query decoded.
  public var meanBlocksDecoded: Double
  /// `EXPLAIN QUERY PLAN` of the query, one step per entry.
  public var plan: [String]
  /// How the query finds its candidate blocks (nil if it scans them all).
  public var index: String?
}

/// What ``TraceBenchmark/run(records:path:queries:overwrite:)`` measured.
public struct BenchmarkFigures: Sendable, Equatable, Codable {
  public var records: Int
  /// Connection blocks the records were stored in.
  public var blocks: Int
  public var generateSeconds: Double
  public var indexSeconds: Double
  public var fileBytes: Int64
  /// `trace --client IP:PORT` (all time).
  public var clientLookup: LatencyFigures
  /// `trace --service IP:PORT --since 10m`.
  public var serviceLookup: LatencyFigures
  /// The goal each median and p99 is held to.
  public var goalMillis: Double

  /// `true` when both lookups' p99 stay under the goal and both use an index.
  public var meetsGoal: Bool {
    clientLookup.p99Millis < goalMillis && serviceLookup.p99Millis < goalMillis && clientLookup.index != nil
      && serviceLookup.index != nil
  }

  /// A human-readable summary.
  public func report() -> String {
    func line(_ name: String, _ figures: LatencyFigures) -> String {
      "\(name): "
        + String(
          format: "median %.3f ms, p99 %.3f ms, max %.3f ms over %d queries (%.1f rows, %.1f blocks decoded avg)",
          figures.medianMillis, figures.p99Millis, figures.maxMillis, figures.queries, figures.meanRows,
          figures.meanBlocksDecoded)
        + ", via \(figures.index ?? "NONE (scan)")"
    }
    return [
      "store: \(records) connection records in \(blocks) blocks, \(fileBytes / 1_048_576) MiB",
      String(format: "generate: %.1f s, analyze: %.1f s", generateSeconds, indexSeconds),
      line("point lookup by client ip:port", clientLookup),
      line("service ip:port, last 10 minutes", serviceLookup),
      "goal: < \(Int(goalMillis)) ms each: \(meetsGoal ? "met" : "NOT met")",
    ].joined(separator: "\n")
  }
}

/// The trace lookup benchmark: a store of generated connections, timed lookups.
public enum TraceBenchmark {
  /// Generates a store at `path` with `records` connections spread over the 7 days before now
  /// (20 nodes, 500 Services × 3–10 pods, random clients), then times `queries` point lookups by
  /// client ip:port and `queries` lookups by service ip:port over the last 10 minutes, through
  /// ``TraceStore/connections(matching:)``.
  ///
  /// - Parameters:
  ///   - overwrite: remove an existing file at `path` first; otherwise an existing file is an
  ///     error.
  ///   - blockSize: connections per node per block (a collect's batch).
  /// - Throws: ``TraceBenchmarkError`` when `path` exists and `overwrite` is false; the store's
  ///   errors.
  public static func run(
    records: Int = 10_000_000, path: String, queries: Int = 200, overwrite: Bool = false, blockSize: Int = 4096
  ) throws -> BenchmarkFigures {
    let manager = FileManager.default
    if manager.fileExists(atPath: path) {
      guard overwrite else {
        throw TraceBenchmarkError(path: path, message: "already exists")
      }
      for suffix in ["", "-wal", "-shm"] { try? manager.removeItem(atPath: path + suffix) }
    }
    let store = try TraceStore(path: path)
    let end = wallClock()
    let generateStart = ContinuousClock.now
    var generator = RecordGenerator(records: records, queries: queries, blockSize: blockSize, end: end)
    while let blocks = generator.nextChunk() { try store.bulkLoad(blocks) }
    let (clientSamples, serviceSamples) = (generator.clientSamples, generator.serviceSamples)
    let generateSeconds = (ContinuousClock.now - generateStart).seconds
    let indexStart = ContinuousClock.now
    try store.analyze()
    let indexSeconds = (ContinuousClock.now - indexStart).seconds
    let blocks = try store.connectionBlockCount()

    let client = try measure(store, clientSamples.prefix(queries).map { TraceQuery(client: $0.0, clientPort: $0.1) })
    let since = end - 10 * 60 * 1_000_000
    let service = try measure(
      store, serviceSamples.prefix(queries).map { TraceQuery(service: $0.0, servicePort: $0.1, sinceMicros: since) })
    try store.checkpoint()
    let size = (try? manager.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    return BenchmarkFigures(
      records: records, blocks: blocks, generateSeconds: generateSeconds, indexSeconds: indexSeconds, fileBytes: size,
      clientLookup: client, serviceLookup: service, goalMillis: 20)
  }

  private static func measure(_ store: TraceStore, _ queries: [TraceQuery]) throws -> LatencyFigures {
    var durations: [Double] = []
    var rows = 0
    for query in queries {
      let start = ContinuousClock.now
      rows += try store.connections(matching: query).count
      durations.append((ContinuousClock.now - start).seconds * 1000)
    }
    durations.sort()
    func percentile(_ p: Double) -> Double {
      durations.isEmpty ? 0 : durations[min(durations.count - 1, Int((Double(durations.count) * p).rounded(.up)) - 1)]
    }
    var decoded = 0
    var plan: [String] = []
    var access: String?
    for (number, query) in queries.enumerated() {
      let lookup = try store.lookupPlan(query, explain: number == 0)
      decoded += lookup.blocksDecoded
      if number == 0 {
        access = lookup.access
        plan = lookup.steps
      }
    }
    let count = Double(max(queries.count, 1))
    return LatencyFigures(
      queries: durations.count, medianMillis: percentile(0.5), p99Millis: percentile(0.99),
      maxMillis: durations.last ?? 0, meanRows: Double(rows) / count, meanBlocksDecoded: Double(decoded) / count,
      plan: plan, index: access)
  }

  private static func wallClock() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
  }
}

/// The benchmark store cannot be created.
public struct TraceBenchmarkError: Error, CustomStringConvertible, Sendable {
  /// Where the store was to be built.
  public var path: String
  /// Why it cannot be.
  public var message: String
  /// "Unable to create the benchmark store <path>: <message>".
  public var description: String { "Unable to create the benchmark store \(path): \(message)" }
}

/// The generated connection records of `svctrace-bench trace` (the same for every store): in
/// time order over the last 7 days, spread over 20 nodes, each node's cut into blocks of
/// `blockSize` connections as a collect's batches would be; and the lookups to time.
struct RecordGenerator {
  let records: Int
  let queries: Int
  let blockSize: Int
  let end: Int64
  let span: Int64 = 7 * 86_400 * 1_000_000
  private var random = SplitMix64(seed: 0x5EED)
  private var pending = [[TraceStore.GeneratedConnection]](repeating: [], count: 21)
  private var produced = 0
  private(set) var clientSamples: [(IPAddress, UInt16)] = []
  private(set) var serviceSamples: [(IPAddress, UInt16)] = []

  init(records: Int, queries: Int, blockSize: Int, end: Int64) {
    self.records = records
    self.queries = queries
    self.blockSize = blockSize
    self.end = end
  }

  /// The blocks of the next (up to) 500 000 records; `nil` when all are out.
  mutating func nextChunk() -> [(node: String, connections: [TraceStore.GeneratedConnection])]? {
    guard produced < records else { return nil }
    let chunk = 500_000
    let count = min(chunk, records - produced)
    let last = produced + count == records
    var blocks: [(node: String, connections: [TraceStore.GeneratedConnection])] = []
    for i in produced..<(produced + count) {
      let time = end - span + Int64(i) * span / Int64(max(records, 1))
      let client = IPAddress(ipv4: 0x0AF4_0000 | UInt32(truncatingIfNeeded: random.next() & 0xFFFF))
      let clientPort = UInt16(32768 + random.next() % 28000)
      let serviceNumber = UInt32(random.next() % 500)
      let service = IPAddress(ipv4: 0x0A60_0000 | serviceNumber)
      let servicePort: UInt16 = serviceNumber % 3 == 0 ? 443 : 80
      let endpoints = 3 + serviceNumber % 8
      let pod = IPAddress(ipv4: 0x0A80_0000 | serviceNumber << 4 | UInt32(random.next() % UInt64(endpoints)))
      let node = Int(1 + random.next() % 20)
      pending[node].append(
        TraceStore.GeneratedConnection(
          timeMicros: time, proto: 6, client: client, clientPort: clientPort, service: service,
          servicePort: servicePort, pod: pod, podPort: 8080))
      if pending[node].count >= blockSize {
        blocks.append(("node\(node)", pending[node]))
        pending[node].removeAll(keepingCapacity: true)
      }
      if i % max(1, records / queries) == 0 { clientSamples.append((client, clientPort)) }
      if serviceSamples.count < queries, i % 7 == 0 { serviceSamples.append((service, servicePort)) }
    }
    if last {
      for node in pending.indices where !pending[node].isEmpty { blocks.append(("node\(node)", pending[node])) }
    }
    produced += count
    return blocks
  }
}
