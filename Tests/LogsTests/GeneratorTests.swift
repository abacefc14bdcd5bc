import Foundation
import LogGeneration
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

  @Test("timestamps across a day boundary in a negative zone match the calendar")
  func calendarDates() {
    var options = LogGenerator.Options()
    options.utcOffsetSeconds = -5 * 3600
    // Half a second before midnight, local time (UTC−5), at the end of a leap February.
    let midnightUTC: Int64 = 1_709_164_800_000_000 + 5 * 3_600_000_000  // 2024-02-29T00:00:00-05:00
    var generator = LogGenerator(seed: 4, nodes: 1, startMicros: midnightUTC - 500_000, options: options)
    var buffer: [UInt8] = []
    generator.writeLines(count: 3_000, to: &buffer)
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(secondsFromGMT: -5 * 3600)
    formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
    var parser = PacketLineParser(referenceMicros: midnightUTC)
    var splitter = LineSplitter()
    var checked = 0
    var days: Set<String> = []
    buffer.withUnsafeBufferPointer { bytes in
      splitter.feed(bytes) { line in
        guard let packet = parser.parse(line) else { return }
        let text = String(decoding: line, as: UTF8.self)
        let expected = formatter.string(from: Date(timeIntervalSince1970: Double(packet.timeMicros / 1_000_000)))
        #expect(text.hasPrefix(expected), "\(text.prefix(32)) vs \(expected)")
        #expect(text.dropFirst(26).hasPrefix("-05:00 "))
        days.insert(String(text.prefix(10)))
        checked += 1
      }
    }
    #expect(checked > 2_000)
    #expect(days == ["2024-02-28", "2024-02-29"])
  }
}
