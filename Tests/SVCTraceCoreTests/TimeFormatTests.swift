import Foundation
import SVCTraceCore
import Testing

@Suite("RFC 3339 and civil time")
struct TimeFormatTests {
  /// 2026-05-16T21:31:48Z.
  static let base: Int64 = 1_778_967_108_000_000

  @Test("formats microseconds in UTC, six fraction digits")
  func format() {
    #expect(TimeFormat.rfc3339(micros: 1_780_000_000_123_456) == "2026-05-28T20:26:40.123456Z")
    #expect(TimeFormat.rfc3339(micros: -1_500_000) == "1969-12-31T23:59:58.500000Z")
    #expect(TimeFormat.rfc3339(micros: -1) == "1969-12-31T23:59:59.999999Z")
    #expect(TimeFormat.rfc3339(micros: 0) == "1970-01-01T00:00:00.000000Z")
    #expect(TimeFormat.rfc3339(micros: 951_782_400_000_000) == "2000-02-29T00:00:00.000000Z")
    #expect(TimeFormat.rfc3339(micros: Self.base) == "2026-05-16T21:31:48.000000Z")
  }

  @Test("parses with and without fraction and offset")
  func parse() throws {
    let reference = try #require(ISO8601DateFormatter().date(from: "2026-05-16T21:31:48Z")).timeIntervalSince1970
    #expect(Int64(reference) * 1_000_000 == Self.base)
    let cases: [(String, Int64)] = [
      ("2026-05-16T21:31:48Z", 0), ("2026-05-16t21:31:48z", 0), ("2026-05-16 21:31:48", 0),
      ("2026-05-16T23:31:48+02:00", 0), ("2026-05-16T20:01:48-01:30", 0), ("2026-05-16T21:31:48.5Z", 500_000),
      ("2026-05-16T21:31:48.123456789Z", 123_456), ("2026-05-16T21:31:48.000001+00:00", 1),
      ("2026-05-16T21:31Z", -48_000_000), ("2026-05-16", -(21 * 3600 + 31 * 60 + 48) * 1_000_000),
      ("2026-05-16T21:31:60Z", 12_000_000),
    ]
    for (text, offset) in cases {
      #expect(TimeFormat.rfc3339(text) == Self.base + offset, "\(text)")
    }
    #expect(TimeFormat.rfc3339("1969-12-31T23:59:59.999999Z") == -1)
  }

  @Test(
    "rejects what is not RFC 3339",
    arguments: [
      "2026-13-01T00:00:00Z", "2026-00-01", "2026-05-32", "2026-05-16T25:00:00Z", "2026-05-16T21:60:00Z",
      "2026-05-16T21:31:61Z", "2026-05-16T21:31:48.Z", "2026-05-16T21:31:48+0200", "2026-05-16T21:31:48+24:00",
      "2026-05-16T21:31:48Zjunk", "2026/05/16", "16.05.2026", "2026-05-16T", "26-05-16", "", "2026-5-16",
    ])
  func invalid(text: String) {
    #expect(TimeFormat.rfc3339(text) == nil)
  }

  @Test("format and parse round trip (seeded, 1900…2200)")
  func roundTrip() {
    var state: UInt64 = 0x7173_3339
    for _ in 0..<5_000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let micros = Int64(bitPattern: state >> 8) % 7_258_118_400_000_000 - 2_208_988_800_000_000
      let text = TimeFormat.rfc3339(micros: micros)
      #expect(TimeFormat.rfc3339(text) == micros, "\(text)")
    }
  }

  @Test("civil dates and day counts agree with each other and Foundation's calendar")
  func civil() throws {
    #expect(CivilTime.daysFromCivil(year: 1970, month: 1, day: 1) == 0)
    #expect(CivilTime.daysFromCivil(year: 2000, month: 3, day: 1) == 11_017)
    #expect(CivilTime.daysFromCivil(year: 1969, month: 12, day: 31) == -1)
    #expect(CivilTime.civilFromDays(-1) == (1969, 12, 31))
    #expect(CivilTime.civilFromDays(11_016) == (2000, 2, 29))
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
    for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
      let (year, month, day) = CivilTime.civilFromDays(days)
      #expect(CivilTime.daysFromCivil(year: year, month: month, day: day) == days)
      #expect((1...CivilTime.daysInMonth(year: year, month: month)).contains(day))
      if year > 1600 {
        let parts = calendar.dateComponents(
          [.year, .month, .day], from: Date(timeIntervalSince1970: Double(days) * 86_400))
        #expect(parts.year == Int(year) && parts.month == Int(month) && parts.day == Int(day), "\(days)")
      }
    }
    #expect(CivilTime.daysInMonth(year: 2024, month: 2) == 29)
    #expect(CivilTime.daysInMonth(year: 1900, month: 2) == 28)
    #expect(CivilTime.daysInMonth(year: 2000, month: 2) == 29)
    #expect(CivilTime.daysInMonth(year: 2026, month: 13) == 0)
    #expect(CivilTime.floorDays(micros: -1) == -1)
    #expect(CivilTime.floorDays(micros: CivilTime.microsPerDay) == 1)
    #expect(CivilTime.floorDays(micros: -CivilTime.microsPerDay) == -1)
  }
}
