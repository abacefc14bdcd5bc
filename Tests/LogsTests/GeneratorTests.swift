import Foundation
import Logs
import SVCTraceCore
import Testing

/// The log generator: determinism, the mix it promises, and agreement with the parser.
@Suite("Log generator")
struct GeneratorTests {
  static func lines(seed: UInt64, count: Int, node: Int = 0, options: LogGenerator.Options = .init()) -> (
    [UInt8], LogGenerator.Summary
  ) {
    var generator = LogGenerator(seed: seed, nodes: 3, options: options)
    var buffer: [UInt8] = []
    generator.writeLines(count: count, node: node, to: &buffer)
    return (buffer, generator.summary(node: node))
  }

  static func parseAll(_ bytes: [UInt8]) -> ([PacketLine], ParseStats) {
    var parser = PacketLineParser(referenceMicros: 1_800_000_000_000_000)
    var splitter = LineSplitter()
    var packets: [PacketLine] = []
    bytes.withUnsafeBufferPointer { buffer in
      splitter.feed(buffer) { if let packet = parser.parse($0) { packets.append(packet) } }
    }
    splitter.finish { if let packet = parser.parse($0) { packets.append(packet) } }
    return (packets, parser.stats)
  }

  @Test("same seed, same bytes; another seed or node, other bytes")
  func deterministic() {
    let (a, summaryA) = Self.lines(seed: 11, count: 5_000)
    let (b, summaryB) = Self.lines(seed: 11, count: 5_000)
    #expect(a == b)
    #expect(summaryA == summaryB)
    #expect(Self.lines(seed: 12, count: 5_000).0 != a)
    #expect(Self.lines(seed: 11, count: 5_000, node: 1).0 != a)
    #expect(summaryA.totalLines == 5_000)
    #expect(summaryA.bytes == a.count)
    #expect(a.filter { $0 == UInt8(ascii: "\n") }.count == 5_000)
  }

  @Test("the parser accepts exactly the packet lines and skips noise and garbled lines")
  func parserAgrees() {
    let (bytes, summary) = Self.lines(seed: 3, count: 40_000)
    let (packets, stats) = Self.parseAll(bytes)
    #expect(stats == ParseStats(parsed: summary.packetLines, skipped: summary.noiseLines + summary.garbledLines))
    #expect(packets.filter { $0.stage == .pre }.count == summary.preLines)
    #expect(packets.filter { $0.stage == .post }.count == summary.postLines)
    #expect(summary.noiseLines > 0 && summary.garbledLines > 0)
    #expect(packets.contains { $0.proto == 17 } && packets.contains { $0.proto == 6 })
    #expect(packets.contains { !$0.source.isIPv4 })
    #expect(packets.allSatisfy { $0.origin == .svctrace && $0.kernelMicros == nil })
    #expect(zip(packets, packets.dropFirst()).allSatisfy { $0.timeMicros <= $1.timeMicros })
  }

  @Test("every POST follows its PRE (same proto, SRC, SPT) with the DNATed destination")
  func pairs() {
    let (bytes, summary) = Self.lines(seed: 5, count: 20_000)
    let (packets, _) = Self.parseAll(bytes)
    struct Key: Hashable {
      var proto: UInt8
      var source: IPAddress
      var port: UInt16
    }
    var open: [Key: PacketLine] = [:]
    var joined = 0
    for packet in packets {
      let key = Key(proto: packet.proto, source: packet.source, port: packet.sourcePort)
      if packet.stage == .pre {
        open[key] = packet
      } else if let pre = open.removeValue(forKey: key) {
        #expect(pre.destination != packet.destination || pre.destinationPort != packet.destinationPort)
        #expect(pre.ipID == packet.ipID && pre.length == packet.length)
        joined += 1
      }
    }
    #expect(joined == summary.postLines)
    #expect(summary.preLines == summary.postLines)
  }

  @Test("options: kernel timestamps and a zone offset")
  func options() throws {
    var options = LogGenerator.Options()
    options.kernelTimestamps = true
    options.utcOffsetSeconds = 8 * 3600
    let (plain, _) = Self.lines(seed: 9, count: 2_000)
    let (withOptions, summary) = Self.lines(seed: 9, count: 2_000, options: options)
    let (packetsPlain, _) = Self.parseAll(plain)
    let (packets, stats) = Self.parseAll(withOptions)
    #expect(stats.parsed == summary.packetLines)
    #expect(packets.allSatisfy { $0.kernelMicros != nil })
    #expect(packets.map(\.timeMicros) == packetsPlain.map(\.timeMicros))
    #expect(String(decoding: withOptions.prefix(40), as: UTF8.self).contains("+08:00"))
  }

  @Test("node files, the streaming parse and the awk join agree with the generator")
  func filesAndAwk() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-parser-\(getpid())-files").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let figures = try IngestBenchmark.run(lines: 9_001, directory: directory, nodes: 3, seed: 21)
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
}

/// The ingest benchmark at full size; run with `SVCTRACE_BENCH=1` (release build recommended:
/// `SVCTRACE_BENCH=1 swift test -c release --filter Bench`). `SVCTRACE_BENCH_LINES` changes the size.
@Suite("Bench")
struct IngestBenchTests {
  @Test("ingest benchmark", .enabled(if: ProcessInfo.processInfo.environment["SVCTRACE_BENCH"] == "1"))
  func ingest() throws {
    let environment = ProcessInfo.processInfo.environment
    let lines = environment["SVCTRACE_BENCH_LINES"].flatMap(Int.init) ?? 2_000_000
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-parser-bench-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let figures = try IngestBenchmark.run(lines: lines, directory: directory)
    print(figures.report())
    print(String(decoding: try JSONEncoder().encode(figures), as: UTF8.self))
    #expect(figures.parsedLines == figures.expectedPacketLines)
  }
}
