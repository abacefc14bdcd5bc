import Foundation
import GRDB
import Logs
import SVCTraceCore

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
  /// - Throws: ``StoreError`` when `path` exists and `overwrite` is false; `DatabaseError`.
  public static func run(
    records: Int = 10_000_000, path: String, queries: Int = 200, overwrite: Bool = false, blockSize: Int = 4096
  ) throws -> BenchmarkFigures {
    let manager = FileManager.default
    if manager.fileExists(atPath: path) {
      guard overwrite else {
        throw StoreError(operation: "create the benchmark store", message: "\(path) already exists")
      }
      for suffix in ["", "-wal", "-shm"] { try? manager.removeItem(atPath: path + suffix) }
    }
    let store = try TraceStore(path: path)
    let end = wallClock()
    let span: Int64 = 7 * 86_400 * 1_000_000
    var random = SplitMix64(seed: 0x5EED)
    var clientSamples: [(IPAddress, UInt16)] = []
    var serviceSamples: [(IPAddress, UInt16)] = []

    // Bulk generation: connections in time order, spread over the nodes; each node's become a
    // block every `blockSize` connections, as a collect's batches would.
    let generateStart = ContinuousClock.now
    try store.dbWriter.write { db in
      for node in 1...20 {
        try db.execute(sql: "INSERT OR IGNORE INTO nodes (id, name) VALUES (?, ?)", arguments: [node, "node\(node)"])
      }
    }
    var pending = [[StoredConnection]](repeating: [], count: 21)
    let chunk = 500_000
    var produced = 0
    while produced < records {
      let count = min(chunk, records - produced)
      let last = produced + count == records
      try store.dbWriter.write { db in
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
            StoredConnection(
              slot: 0, timeMicros: time, proto: 6, client: client, clientPort: clientPort, service: service,
              servicePort: servicePort, pod: pod, podPort: 8080, method: MatchMethod.exactID.rawValue, preID: nil,
              postID: nil))
          if pending[node].count >= blockSize {
            try TraceStore.insertConnectionBlocks(pending[node], nodeID: Int64(node), batchID: 0, db)
            pending[node].removeAll(keepingCapacity: true)
          }
          if i % max(1, records / queries) == 0 { clientSamples.append((client, clientPort)) }
          if serviceSamples.count < queries, i % 7 == 0 { serviceSamples.append((service, servicePort)) }
        }
        if last {
          for node in pending.indices where !pending[node].isEmpty {
            try TraceStore.insertConnectionBlocks(pending[node], nodeID: Int64(node), batchID: 0, db)
          }
        }
      }
      produced += count
    }
    let generateSeconds = seconds(ContinuousClock.now - generateStart)
    let indexStart = ContinuousClock.now
    try store.dbWriter.write { db in try db.execute(sql: "ANALYZE") }
    let indexSeconds = seconds(ContinuousClock.now - indexStart)
    let blocks = try store.dbWriter.read { db in
      try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM connection_blocks") ?? 0
    }

    let client = try measure(store, clientSamples.prefix(queries).map { TraceQuery(client: $0.0, clientPort: $0.1) })
    let since = end - 10 * 60 * 1_000_000
    let service = try measure(
      store, serviceSamples.prefix(queries).map { TraceQuery(service: $0.0, servicePort: $0.1, sinceMicros: since) })
    try store.dbWriter.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
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
      durations.append(seconds(ContinuousClock.now - start) * 1000)
    }
    durations.sort()
    func percentile(_ p: Double) -> Double {
      durations.isEmpty ? 0 : durations[min(durations.count - 1, Int((Double(durations.count) * p).rounded(.up)) - 1)]
    }
    var decoded = 0
    var plan: [String] = []
    var access: String?
    try store.dbWriter.read { db in
      for (number, query) in queries.enumerated() {
        var scan = try BlockScan(query, db)
        _ = try scan.run(db)
        decoded += scan.decoded
        if number == 0 {
          access = scan.access
          plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + scan.sql, arguments: scan.arguments).map { row in
            row["detail"]
          }
        }
      }
    }
    let count = Double(max(queries.count, 1))
    return LatencyFigures(
      queries: durations.count, medianMillis: percentile(0.5), p99Millis: percentile(0.99),
      maxMillis: durations.last ?? 0, meanRows: Double(rows) / count, meanBlocksDecoded: Double(decoded) / count,
      plan: plan, index: access)
  }

  private static func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  }

  private static func wallClock() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
  }
}

/// A small deterministic generator (SplitMix64) so benchmark stores are reproducible.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
