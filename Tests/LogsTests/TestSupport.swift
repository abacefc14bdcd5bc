import Foundation
import Logs
import Testing

/// Helpers shared by the Logs tests.
enum Support {
  /// 2026-05-20T00:00:00Z in µs: the reference "now" for corpus lines.
  static let corpusReference: Int64 = 1_779_235_200_000_000

  /// The bytes of a fixture file.
  static func fixture(_ name: String) throws -> [UInt8] {
    let directory = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return Array(try Data(contentsOf: directory.appendingPathComponent(name)))
  }

  /// Splits bytes the naive way: at every `\n`, dropping one trailing `\r`; a non-empty tail
  /// without newline is a last line.
  static func naiveLines(_ bytes: [UInt8]) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for byte in bytes {
      if byte == UInt8(ascii: "\n") {
        if current.last == UInt8(ascii: "\r") { current.removeLast() }
        lines.append(current)
        current = []
      } else {
        current.append(byte)
      }
    }
    if !current.isEmpty {
      if current.last == UInt8(ascii: "\r") { current.removeLast() }
      lines.append(current)
    }
    return lines
  }

  /// Parses one line given as text.
  static func parse(_ text: String, parser: inout PacketLineParser) -> PacketLine? {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBufferPointer { parser.parse($0) }
  }

  /// Parses one line with a fresh parser.
  static func parse(_ text: String, reference: Int64 = corpusReference, utcOffset: Int32 = 0) -> PacketLine? {
    var parser = PacketLineParser(referenceMicros: reference, utcOffsetSeconds: utcOffset)
    return parse(text, parser: &parser)
  }

  /// µs since the epoch of a civil UTC time (computed with Foundation, independently of the parser).
  static func micros(_ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int, _ second: Int, offset: Int = 0)
    -> Int64
  {
    var components = DateComponents()
    components.year = year
    components.month = month
    components.day = day
    components.hour = hour
    components.minute = minute
    components.second = second
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(secondsFromGMT: offset)!
    return Int64(calendar.date(from: components)!.timeIntervalSince1970) * 1_000_000
  }

  /// A typical svctrace PRE line body (after the timestamp).
  static let body =
    " node1 kernel: SVCT:PRE IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.7 DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=9123 DF PROTO=TCP SPT=60112 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 "
}
