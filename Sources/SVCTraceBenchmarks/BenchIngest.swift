import ArgumentParser
import Fleet
import Foundation
import Ingest
import LogGeneration
import Logs
import PostgresStore
import SVCTraceCommands
import SVCTraceCore
import Store

/// `svctrace-bench ingest`: parse, and parse + store, against an awk join of the same files.
struct BenchIngest: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ingest",
    abstract: "Time parsing and parse + store of generated node logs next to a reference awk join.",
    discussion: """
      Generates --lines lines over --nodes node files (a realistic mix: TCP, UDP, IPv6, noise, \
      garbled lines) in a temporary directory, then, in the same run: (1) the streaming parser \
      alone, (2) the reference awk join of pre- and post-DNAT lines, (3) the end-to-end ingest: \
      `collect --from-file` of every node file into a fresh store (parse, correlate, SQLite \
      commits). Each leg runs --runs times and the fastest runs are compared (medians are \
      printed too). Prints lines/s, MB/s, CPU, peak memory and the ratios. Goals: parse ≥ 1 M \
      lines/s on one core; end-to-end ≥ 10× the awk join; memory flat in the input size.

      Examples:
        svctrace-bench ingest
        svctrace-bench ingest --lines 10000000 --nodes 20 --keep
      """)

  @Option(help: "Lines to generate, over all nodes.")
  var lines = 2_000_000

  @Option(help: "Node files to spread the lines over.")
  var nodes = 3

  @Option(help: "The awk to run the reference join with (e.g. mawk, gawk).")
  var awk = "awk"

  @Option(help: "Seed of the generator.")
  var seed: UInt64 = 42

  @Option(
    help: "Runs of each leg; the fastest run of each is compared (the machine's speed varies from second to second).")
  var runs = 3

  @Option(
    help: ArgumentHelp(
      "Also ingest into a team store: a postgres:// URL of a database the benchmark may wipe (every svctrace table in it is dropped before each run). Measures one collector and two collectors on disjoint halves of the nodes.",
      valueName: "url"))
  var store: String?

  @Flag(help: "Keep the generated files and the store (their directory is printed).")
  var keep = false

  func validate() throws {
    guard lines >= 1, lines <= 1_000_000_000 else { throw ValidationError("--lines must be between 1 and 1000000000.") }
    guard runs >= 1, runs <= 20 else { throw ValidationError("--runs must be between 1 and 20.") }
    guard nodes >= 1, nodes <= 1000 else { throw ValidationError("--nodes must be between 1 and 1000.") }
  }

  func run() async throws {
    MallocTuning.forBulkIngest()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svctrace-bench-ingest-\(getpid())")
      .path
    defer {
      if keep {
        Terminal.writeError("Kept \(directory)\n")
      } else {
        try? FileManager.default.removeItem(atPath: directory)
      }
    }
    Terminal.writeError("generating \(lines) lines over \(nodes) nodes, parsing, running \(awk)…\n")
    let figures = try await IngestBenchmark.run(
      lines: lines, directory: directory, nodes: nodes, seed: seed, awk: awk, runs: runs)
    print("bench ingest")
    print(figures.report())

    // Each run into a fresh store (the previous one is removed first).
    var storeRuns: [StoreFigures] = []
    for run in 1...runs {
      Terminal.writeError("ingesting into a fresh store (run \(run) of \(runs))…\n")
      let storePath = directory + "/bench.sqlite"
      for suffix in ["", "-wal", "-shm", ".raw"] { try? FileManager.default.removeItem(atPath: storePath + suffix) }
      // The removal's own disk work (journal, discards) done before the clock starts.
      sync()
      storeRuns.append(try await ingest(storePath: storePath, directory: directory))
    }
    guard let storeFigures = storeRuns.min(by: { $0.seconds < $1.seconds }) else { return }
    let seconds = storeFigures.seconds
    func fixed(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
    func rate(_ value: Double) -> String { value >= 1e6 ? fixed(value / 1e6) + " M" : fixed(value / 1e3, 1) + " k" }
    let rows: [(String, String)] = [
      (
        "parse + store",
        "\(fixed(seconds, 3)) s wall, \(fixed(storeFigures.cpuSeconds, 2)) s CPU (\(fixed(storeFigures.cpuSeconds / max(seconds, 1e-9), 1)) of "
          + "\(ProcessInfo.processInfo.activeProcessorCount) cores), \(figures.nodes) nodes ingested concurrently into SQLite"
          + IngestFigures.runs(storeRuns.map(\.seconds))
      ),
      (
        "throughput",
        "\(rate(Double(storeFigures.lines) / max(seconds, 1e-9))) lines/s, "
          + "\(fixed(Double(figures.bytes) / 1_000_000 / max(seconds, 1e-9), 1)) MB/s (wall)"
      ),
      (
        "stored",
        "\(storeFigures.lines) lines (\(storeFigures.skipped) skipped), \(storeFigures.connections) connections correlated, store \(storeFigures.storeBytes / 1_048_576) MiB"
      ),
      (
        "memory",
        "RSS \(storeFigures.rssAfterKiB / 1024) MiB after the ingest; process peak \(ResourceUsage.peakRSSKiB() / 1024) MiB"
      ),
      (
        "end-to-end ratio",
        figures.awkSeconds.map { awkSeconds in
          let medians =
            runs > 1
            ? " (medians: \(fixed(IngestFigures.median(figures.awkRunSeconds) / max(IngestFigures.median(storeRuns.map(\.seconds)), 1e-9), 1))×)"
            : ""
          return
            "parse + store is \(fixed(awkSeconds / max(seconds, 1e-9), 1))× faster than the awk join\(medians) (goal ≥ 10×)"
        }
          ?? "no awk figure: \(figures.awkError ?? "awk did not run")"
      ),
    ]
    let width = rows.map(\.0.count).max() ?? 0
    print(rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n"))
    if let store {
      try await postgres(store, directory: directory, sqlite: storeFigures, rate: rate, fixed: fixed)
    }
  }

  /// The team-store legs: every node into PostgreSQL by one collector (against the SQLite
  /// figure), then half the nodes by one collector and both halves by two collectors at once
  /// (two store connections, as two machines would have).
  private func postgres(
    _ url: String, directory: String, sqlite: StoreFigures, rate: (Double) -> String,
    fixed: (Double, Int) -> String
  ) async throws {
    let all = Array(0..<nodes)
    let halves = [all.filter { $0 % 2 == 0 }, all.filter { $0 % 2 == 1 }]
    var whole: [StoreFigures] = []
    var one: [StoreFigures] = []
    var two: [StoreFigures] = []
    for run in 1...runs {
      Terminal.writeError("ingesting into PostgreSQL (run \(run) of \(runs))…\n")
      let store = try await openBenchmarkStore(url)
      try await store.wipeForBenchmark()
      whole.append(try await ingest(into: [(store, all)], directory: directory))
      if nodes >= 2 {
        try await store.wipeForBenchmark()
        one.append(try await ingest(into: [(store, halves[0])], directory: directory))
        try await store.wipeForBenchmark()
        let second = try await openBenchmarkStore(url)
        two.append(try await ingest(into: [(store, halves[0]), (second, halves[1])], directory: directory))
      }
    }
    guard let best = whole.min(by: { $0.seconds < $1.seconds }) else { return }
    func lines(_ figures: StoreFigures) -> Double { Double(figures.lines) / max(figures.seconds, 1e-9) }
    print("bench ingest, PostgreSQL team store (\(PostgresStoreLocation.masked(url)))")
    print(
      "parse + store    \(fixed(best.seconds, 3)) s wall, \(rate(lines(best))) lines/s, \(best.connections) connections"
        + IngestFigures.runs(whole.map(\.seconds)))
    print(
      "vs SQLite        \(fixed(lines(best) / max(lines(sqlite), 1e-9), 2))× the SQLite store's lines/s (goal ≥ 0.5×)")
    if let single = one.min(by: { $0.seconds < $1.seconds }), let double = two.min(by: { $0.seconds < $1.seconds }) {
      print(
        "one collector    \(rate(lines(single))) lines/s (\(halves[0].count) nodes); two collectors at once \(rate(lines(double))) lines/s (\(nodes) nodes)"
      )
      print("scaling          \(fixed(lines(double) / max(lines(single), 1e-9), 2))× one collector (goal ≥ 1.6×)")
    }
  }

  private struct StoreFigures {
    var seconds: Double
    /// User + system CPU of the process during the ingest.
    var cpuSeconds: Double
    var lines: Int
    var skipped: Int
    var connections: Int
    var storeBytes: Int
    var rssAfterKiB: Int
  }

  /// Ingests every `nodeN.log` of `directory` into a fresh store at `storePath`, nodes
  /// concurrently (as `collect` does across the fleet).
  private func ingest(storePath: String, directory: String) async throws -> StoreFigures {
    let store = try TraceStore(path: storePath)
    var figures = try await ingest(into: [(store, Array(0..<nodes))], directory: directory)
    // The database, its WAL and the raw segment files beside it.
    let segments = ((try? FileManager.default.contentsOfDirectory(atPath: storePath + ".raw")) ?? []).map {
      ".raw/" + $0
    }
    var size = 0
    for suffix in ["", "-wal"] + segments {
      let attributes = try? FileManager.default.attributesOfItem(atPath: storePath + suffix)
      size += (attributes?[.size] as? NSNumber)?.intValue ?? 0
    }
    figures.storeBytes = size
    return figures
  }

  /// Ingests the node files `nodes` of each collector into its store, every node of every
  /// collector concurrently. The store size is left 0.
  private func ingest(into collectors: [(store: any TraceStoring, nodes: [Int])], directory: String) async throws
    -> StoreFigures
  {
    let clock = ContinuousClock()
    let cpuStart = ResourceUsage.processCPUSeconds()
    let start = clock.now
    let reference = ClockOffset.wallClockMicros()
    let summaries = try await withThrowingTaskGroup(of: CollectSummary.self) { group in
      for (store, nodes) in collectors {
        for index in nodes {
          let source = LocalFileSource(
            node: HostID(LogGenerator.nodeName(index)), path: directory + "/" + LogGenerator.nodeName(index) + ".log")
          group.addTask {
            try await Ingestor(store: store).collect(
              from: source, makeParser: { PacketLineParser(referenceMicros: reference) }, clock: .zero)
          }
        }
      }
      var all: [CollectSummary] = []
      for try await summary in group { all.append(summary) }
      return all
    }
    let seconds = (clock.now - start).seconds
    let cpuSeconds = ResourceUsage.processCPUSeconds() - cpuStart
    return StoreFigures(
      seconds: seconds, cpuSeconds: cpuSeconds, lines: summaries.reduce(0) { $0 + $1.lines },
      skipped: summaries.reduce(0) { $0 + $1.skipped },
      connections: summaries.reduce(0) { $0 + $1.connections }, storeBytes: 0,
      rssAfterKiB: ResourceUsage.currentRSSKiB())
  }
}
