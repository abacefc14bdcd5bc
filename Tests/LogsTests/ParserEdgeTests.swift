import Foundation
import Logs
import SVCTraceCore
import Testing

/// Timestamps, prefixes and line shapes at the edges of what the parser accepts.
@Suite("Parser edge cases")
struct ParserEdgeTests {
  @Test("New Year: Dec 31 then Jan 1 with a reference in January")
  func newYear() throws {
    let reference = Support.micros(2027, 1, 1, 0, 5, 0)
    var parser = PacketLineParser(referenceMicros: reference)
    let december = try #require(Support.parse("Dec 31 23:59:59" + Support.body, parser: &parser))
    let january = try #require(Support.parse("Jan  1 00:00:01" + Support.body, parser: &parser))
    #expect(december.timeMicros == Support.micros(2026, 12, 31, 23, 59, 59))
    #expect(january.timeMicros == Support.micros(2027, 1, 1, 0, 0, 1))
    #expect(january.timeMicros - december.timeMicros == 2_000_000)
  }

  @Test("file order moves Dec → Jan forward a year even when the reference is still in December")
  func newYearSequential() throws {
    let reference = Support.micros(2026, 12, 31, 23, 59, 59)
    var parser = PacketLineParser(referenceMicros: reference)
    let december = try #require(Support.parse("Dec 31 23:59:58" + Support.body, parser: &parser))
    let january = try #require(Support.parse("Jan  1 00:00:00" + Support.body, parser: &parser))
    #expect(december.timeMicros == Support.micros(2026, 12, 31, 23, 59, 58))
    #expect(january.timeMicros == Support.micros(2027, 1, 1, 0, 0, 0))
  }

  @Test("a log spanning October to February, its reference its last write: every line in its own year")
  func logSpanningMonths() throws {
    // `collect --from-file` takes the file's modification time as the reference.
    var parser = PacketLineParser(referenceMicros: Support.micros(2027, 2, 10, 8, 0, 0))
    let stamps = ["Oct 14 03:00:00", "Nov 30 23:59:59", "Dec 31 23:59:59", "Jan  1 00:00:00", "Feb 10 07:59:00"]
    let times = try stamps.map { try #require(Support.parse($0 + Support.body, parser: &parser)).timeMicros }
    #expect(
      times == [
        Support.micros(2026, 10, 14, 3, 0, 0), Support.micros(2026, 11, 30, 23, 59, 59),
        Support.micros(2026, 12, 31, 23, 59, 59), Support.micros(2027, 1, 1, 0, 0, 0),
        Support.micros(2027, 2, 10, 7, 59, 0),
      ])
  }

  @Test("a traditional line dated after reference + 1 day belongs to the previous year")
  func futureLineIsLastYear() throws {
    let reference = Support.micros(2026, 3, 1, 12, 0, 0)
    #expect(
      Support.parse("Mar  2 11:00:00" + Support.body, reference: reference)?.timeMicros
        == Support.micros(2026, 3, 2, 11, 0, 0))
    #expect(
      Support.parse("Mar  3 12:00:00" + Support.body, reference: reference)?.timeMicros
        == Support.micros(2025, 3, 3, 12, 0, 0))
  }

  @Test("leap day: RFC 3339 and traditional (year inferred back to the last leap year)")
  func leapDay() throws {
    #expect(Support.parse("2028-02-29T12:00:00Z" + Support.body)?.timeMicros == Support.micros(2028, 2, 29, 12, 0, 0))
    #expect(Support.parse("2027-02-29T12:00:00Z" + Support.body) == nil)
    let in2028 = Support.micros(2028, 3, 10, 0, 0, 0)
    #expect(
      Support.parse("Feb 29 12:00:00" + Support.body, reference: in2028)?.timeMicros
        == Support.micros(2028, 2, 29, 12, 0, 0))
    let in2027 = Support.micros(2027, 3, 10, 0, 0, 0)
    #expect(
      Support.parse("Feb 29 12:00:00" + Support.body, reference: in2027)?.timeMicros
        == Support.micros(2024, 2, 29, 12, 0, 0))
  }

  @Test("zones +05:30, -08:00, Z, +0000 and a node offset for traditional lines")
  func zones() throws {
    let utc = Support.micros(2026, 5, 16, 12, 0, 0)
    #expect(Support.parse("2026-05-16T17:30:00.000000+05:30" + Support.body)?.timeMicros == utc)
    #expect(Support.parse("2026-05-16T04:00:00.000000-08:00" + Support.body)?.timeMicros == utc)
    #expect(Support.parse("2026-05-16T12:00:00.000000Z" + Support.body)?.timeMicros == utc)
    #expect(Support.parse("2026-05-16T12:00:00+0000" + Support.body)?.timeMicros == utc)
    #expect(Support.parse("2026-05-16T12:00:00.000000+25:00" + Support.body) == nil)
    #expect(Support.parse("May 16 20:00:00" + Support.body, utcOffset: 8 * 3600)?.timeMicros == utc)
    #expect(Support.parse("May 16 03:00:00" + Support.body, utcOffset: -9 * 3600)?.timeMicros == utc)
  }

  @Test("fractions of any length are read as microseconds")
  func fractions() throws {
    let base = Support.micros(2026, 5, 16, 12, 0, 0)
    #expect(Support.parse("2026-05-16T12:00:00.5Z" + Support.body)?.timeMicros == base + 500_000)
    #expect(Support.parse("2026-05-16T12:00:00.123Z" + Support.body)?.timeMicros == base + 123_000)
    #expect(Support.parse("2026-05-16T12:00:00.123456789Z" + Support.body)?.timeMicros == base + 123_456)
    #expect(Support.parse("2026-05-16T12:00:00.Z" + Support.body) == nil)
  }

  @Test("kernel timestamps: [12345.678901], [ 1234.5], absent, and a bracket that is not one")
  func kernelTimestamps() throws {
    let head = "2026-05-16T12:00:00Z node1 kernel: "
    let rest = String(Support.body.dropFirst(" node1 kernel: ".count))
    #expect(Support.parse(head + "[12345.678901] " + rest)?.kernelMicros == 12_345_678_901)
    #expect(Support.parse(head + "[ 1234.5] " + rest)?.kernelMicros == 1_234_500_000)
    #expect(Support.parse(head + "[    0.000001]" + rest)?.kernelMicros == 1)
    #expect(Support.parse(head + rest)?.kernelMicros == nil)
    #expect(Support.parse(head + rest) != nil)
    #expect(Support.parse(head + "[UFW BLOCK] " + rest) == nil)
  }

  @Test("prefixes: svctrace's, glued to IN=, legacy words, unknown ones")
  func prefixes() throws {
    let head = "2026-05-16T12:00:00Z node1 kernel: "
    let fields =
      "IN=eth0 OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1000 DPT=80 WINDOW=1 RES=0x00 SYN URGP=0 "
    func classify(_ prefix: String) -> String? {
      Support.parse(head + prefix + fields).map { "\($0.origin)/\($0.stage)" }
    }
    #expect(classify("SVCT:PRE ") == "svctrace/pre")
    #expect(classify("SVCT:POST ") == "svctrace/post")
    #expect(classify("SVCT:PRE") == "svctrace/pre")
    #expect(classify("SVCT:POST:svc-a ") == "svctrace/post")
    #expect(classify("SVCT:PREX ") == nil)
    #expect(classify("-----domeos-pre-----") == "legacy/pre")
    #expect(classify("----domeos prerouting ") == "legacy/pre")
    // The old script's manual, copied literally: its own spelling, glued to IN=.
    #expect(classify("----domeos pretrouting-----") == "legacy/pre")
    #expect(classify("----domeos output-----") == "legacy/pre")
    #expect(classify("----domeos postrouting-----") == "legacy/post")
    #expect(classify("----DomeOS-OUTPUT----") == "legacy/pre")
    #expect(classify("----domeos-post-----") == "legacy/post")
    #expect(classify("----domeos POSTROUTING ") == "legacy/post")
    #expect(classify("----domeos pre post ") == nil)
    #expect(classify("----domeos----") == nil)
    #expect(classify("-----pre-----") == nil)
    #expect(classify("") == nil)
  }

  @Test("empty line, whitespace and a 100 KB line are skipped without trouble")
  func oddLines() throws {
    var parser = PacketLineParser(referenceMicros: Support.corpusReference)
    #expect(Support.parse("", parser: &parser) == nil)
    #expect(Support.parse("   ", parser: &parser) == nil)
    #expect(Support.parse("\r", parser: &parser) == nil)
    let huge = "2026-05-16T12:00:00Z node1 kernel: SVCT:PRE " + String(repeating: "A", count: 100_000)
    #expect(Support.parse(huge, parser: &parser) == nil)
    let hugeTail = "2026-05-16T12:00:00Z" + Support.body + String(repeating: "X=1 ", count: 25_000)
    #expect(Support.parse(hugeTail, parser: &parser)?.destinationPort == 80)
    #expect(parser.stats == ParseStats(parsed: 1, skipped: 4))
  }

  @Test("CRLF lines from a file parse like LF lines")
  func crlf() throws {
    let text = "2026-05-16T12:00:00Z" + Support.body + "\r\n" + "2026-05-16T12:00:01Z" + Support.body + "\n"
    var splitter = LineSplitter()
    var parser = PacketLineParser(referenceMicros: Support.corpusReference)
    var parsed: [PacketLine] = []
    Array(text.utf8).withUnsafeBufferPointer { buffer in
      splitter.feed(buffer) { if let line = parser.parse($0) { parsed.append(line) } }
    }
    #expect(parsed.count == 2)
    #expect(parsed.first?.tcpFlags == 0x02)
    #expect(parsed.map(\.timeMicros) == [Support.micros(2026, 5, 16, 12, 0, 0), Support.micros(2026, 5, 16, 12, 0, 1)])
  }

  @Test("an embedded ICMP packet never overwrites the outer packet's fields")
  func embeddedPacket() throws {
    let line =
      "2026-05-16T12:00:00Z node1 kernel: SVCT:POST IN=eth0 OUT= SRC=192.168.50.1 DST=10.244.1.23 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=33012 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.244.1.23 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=48213 DF PROTO=TCP SPT=38111 DPT=53 WINDOW=1 RES=0x00 SYN URGP=0 MARK=0x4000 ] "
    let parsed = try #require(Support.parse(line))
    #expect(parsed.source == IPAddress("192.168.50.1"))
    #expect(parsed.destination == IPAddress("10.244.1.23"))
    #expect(parsed.proto == 1)
    #expect(parsed.ipID == 33012)
    #expect(parsed.length == 88)
    #expect(parsed.sourcePort == 0 && parsed.destinationPort == 0)
    #expect(parsed.tcpFlags == 0 && parsed.mark == 0)
  }

  @Test("interface names longer than IFNAMSIZ are rejected")
  func longInterface() {
    let line =
      "2026-05-16T12:00:00Z node1 kernel: SVCT:PRE IN=abcdefghijklmnop OUT= SRC=10.0.0.1 DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 "
    #expect(Support.parse(line) == nil)
    let ok = line.replacingOccurrences(of: "abcdefghijklmnop", with: "abcdefghijklmno")
    #expect(Support.parse(ok)?.inInterface == InterfaceName("abcdefghijklmno"))
  }
}
