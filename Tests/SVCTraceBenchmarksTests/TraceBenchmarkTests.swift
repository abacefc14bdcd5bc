import Foundation
import Logs
import SVCTraceBenchmarks
import Store
import Testing

/// The trace lookup benchmark: the store it builds and the access paths it reports.
@Suite("Trace benchmark")
struct TraceBenchmarkTests {
  @Test func benchmarkBuildsAStoreAndUsesTheIndexes() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-trace-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/bench.sqlite"
    let figures = try TraceBenchmark.run(records: 50_000, path: path, queries: 40)
    #expect(figures.records == 50_000)
    #expect(figures.clientLookup.queries == 40 && figures.serviceLookup.queries == 40)
    #expect(figures.clientLookup.index == "block_keys(client) + client_bloom")
    #expect(figures.serviceLookup.index == "block_keys(service)")
    #expect(!figures.clientLookup.plan.isEmpty && !figures.serviceLookup.plan.isEmpty)
    #expect(figures.blocks >= 50_000 / 4096, "each node's connections in blocks")
    #expect(figures.clientLookup.meanRows >= 1, "sampled clients are found")
    #expect(figures.clientLookup.meanBlocksDecoded >= 1)
    #expect(figures.report().contains("point lookup by client ip:port"))
    #expect(figures.fileBytes > 0)
    // Every generated connection is in the store, found through the public lookup.
    let all = try TraceStore(path: path).connections(matching: TraceQuery())
    #expect(all.count == 50_000)
    #expect(throws: TraceBenchmarkError.self) { try TraceBenchmark.run(records: 10, path: path) }
  }

  @Test(.enabled(if: ProcessInfo.processInfo.environment["SVCTRACE_BENCH"] == "1"))
  func benchmarkTenMillionRecords() throws {
    let path = ProcessInfo.processInfo.environment["SVCTRACE_BENCH_PATH"] ?? "/tmp/svctrace-store-bench.sqlite"
    let figures = try TraceBenchmark.run(records: 10_000_000, path: path, overwrite: true)
    print(figures.report())
    print(figures.clientLookup.plan, figures.serviceLookup.plan)
    #expect(figures.clientLookup.index != nil && figures.serviceLookup.index != nil)
  }
}
