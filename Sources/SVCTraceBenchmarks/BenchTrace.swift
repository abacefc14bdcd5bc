import ArgumentParser
import Fleet
import Foundation
import SVCTraceCommands
import SVCTraceCore
import Store

/// `svctrace-bench trace`: lookup latencies on a store of generated connection records.
struct BenchTrace: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trace",
    abstract: "Time `trace` lookups on a store of generated connection records.",
    discussion: """
      Generates a store with --records connections spread over the last 7 days (20 nodes, 500 \
      Services of 3–10 pods, random clients), then times --queries point lookups by client \
      ip:port and --queries lookups by service ip:port over the last 10 minutes, through the same \
      query path as `svctrace trace`, and prints median, p99 and max latencies with the index \
      SQLite chose. Goal: each under 20 ms. Building 10 M records takes minutes and about 2 GiB \
      of disk; the store goes to a temporary directory and is removed afterwards unless --keep.

      Examples:
        svctrace-bench trace
        svctrace-bench trace --records 1000000 --queries 500
        svctrace-bench trace --path /srv/bench.sqlite --keep
      """)

  @Option(help: "Connection records to generate.")
  var records = 10_000_000

  @Option(help: "Lookups of each kind to time.")
  var queries = 200

  @Option(
    help: ArgumentHelp("Where to build the store (must not exist). Default: a temporary directory.", valueName: "file"))
  var path: String?

  @Option(
    help: ArgumentHelp(
      "Also time the same lookups on a team store: a postgres:// URL of a database the benchmark may wipe (every svctrace table in it is dropped first).",
      valueName: "url"))
  var store: String?

  @Flag(help: "Keep the store afterwards.")
  var keep = false

  @Flag(help: "Print the figures as JSON.")
  var json = false

  func validate() throws {
    guard records >= 1000, records <= 1_000_000_000 else {
      throw ValidationError("--records must be between 1000 and 1000000000.")
    }
    guard queries >= 1, queries <= 1_000_000 else { throw ValidationError("--queries must be between 1 and 1000000.") }
    if let path, FileManager.default.fileExists(atPath: path) {
      throw ValidationError("\(path) already exists; bench trace builds a fresh store.")
    }
  }

  func run() async throws {
    let manager = FileManager.default
    var directory: String?
    let storePath: String
    if let path {
      storePath = path
    } else {
      let made = manager.temporaryDirectory.appendingPathComponent("svctrace-bench-trace-\(getpid())").path
      try manager.createDirectory(atPath: made, withIntermediateDirectories: true)
      directory = made
      storePath = made + "/trace.sqlite"
    }
    defer {
      if keep {
        Terminal.writeError("Kept \(storePath)\n")
      } else if let directory {
        try? manager.removeItem(atPath: directory)
      } else {
        for suffix in ["", "-wal", "-shm"] { try? manager.removeItem(atPath: storePath + suffix) }
      }
    }
    Terminal.writeError("building a store of \(records) connection records at \(storePath)…\n")
    let figures = try TraceBenchmark.run(records: records, path: storePath, queries: queries)
    var postgres: BenchmarkFigures?
    if let store {
      Terminal.writeError("loading the same \(records) records into \(store)…\n")
      postgres = try await PostgresTraceBenchmark.run(
        records: records, store: try await openBenchmarkStore(store), queries: queries)
    }
    if json {
      if let postgres {
        print(try Output.json(["sqlite": figures, "postgres": postgres]))
      } else {
        print(try Output.json(figures))
      }
    } else {
      print("bench trace")
      print(figures.report())
      if let postgres {
        print("bench trace, PostgreSQL team store")
        print(postgres.report().split(separator: "\n").dropLast().joined(separator: "\n"))
        let clientMet = postgres.clientLookup.p99Millis < 20
        let serviceMet = postgres.serviceLookup.p99Millis < 50
        print(
          "goal: client ip:port p99 < 20 ms: \(clientMet ? "met" : "NOT met"); service last 10 min p99 < 50 ms: \(serviceMet ? "met" : "NOT met")"
        )
      }
    }
  }
}
