import Foundation
import Logs
import SVCTraceBenchmarks
import Testing

/// The ingest benchmark's parse and awk legs, on generated node files.
@Suite("Ingest benchmark")
struct IngestBenchmarkTests {
  @Test("node files, the streaming parse and the awk join agree with the generator")
  func filesAndAwk() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-parser-\(getpid())-files").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let figures = try await IngestBenchmark.run(lines: 9_001, directory: directory, nodes: 3, seed: 21)
    #expect(figures.lines == 9_001)
    #expect(figures.parsedLines == figures.expectedPacketLines)
    #expect(figures.parsedLines + figures.skippedLines == figures.lines)
    #expect(figures.awkError == nil)
    #expect(figures.awkJoinedRecords == figures.expectedPacketLines / 2)
    #expect(figures.peakRSSKiB > 0 && figures.rssAtHalfKiB > 0)
    #expect(figures.speedupOverAwk != nil)
    var viaForEach = 0
    var stats = ParseStats()
    for node in 1...3 {
      let nodeStats = try IngestBenchmark.forEachPacket(path: directory + "/node\(node).log", referenceMicros: 0) { _ in
        viaForEach += 1
      }
      stats.parsed += nodeStats.parsed
      stats.skipped += nodeStats.skipped
    }
    #expect(viaForEach == figures.parsedLines)
    #expect(stats == ParseStats(parsed: figures.parsedLines, skipped: figures.skippedLines))
    let report = figures.report()
    #expect(report.contains("awk join") && report.contains("lines/s"))
    let decoded = try JSONDecoder().decode(IngestFigures.self, from: JSONEncoder().encode(figures))
    #expect(decoded == figures)
  }

  @Test("a failing awk is reported in the figures, the parse figures stand")
  func awkFailure() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-parser-\(getpid())-noawk").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let figures = try await IngestBenchmark.run(lines: 3_000, directory: directory, nodes: 2, awk: "false")
    #expect(figures.parsedLines == figures.expectedPacketLines)
    #expect(figures.awkSeconds == nil && figures.speedupOverAwk == nil)
    #expect(figures.awkError?.contains("run false on") == true)
    #expect(figures.report().contains("not run: "))
  }
}

/// The ingest benchmark at full size; run with `SVCTRACE_BENCH=1` (release build recommended:
/// `SVCTRACE_BENCH=1 swift test -c release --filter Bench`). `SVCTRACE_BENCH_LINES` changes the size.
@Suite("Bench")
struct IngestBenchTests {
  @Test("ingest benchmark", .enabled(if: ProcessInfo.processInfo.environment["SVCTRACE_BENCH"] == "1"))
  func ingest() async throws {
    let environment = ProcessInfo.processInfo.environment
    let lines = environment["SVCTRACE_BENCH_LINES"].flatMap(Int.init) ?? 2_000_000
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-parser-bench-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let figures = try await IngestBenchmark.run(lines: lines, directory: directory)
    print(figures.report())
    print(String(decoding: try JSONEncoder().encode(figures), as: UTF8.self))
    #expect(figures.parsedLines == figures.expectedPacketLines)
  }
}
