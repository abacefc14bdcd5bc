/// Integer calendar arithmetic: no Foundation, no allocation.
///
/// Uses Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms (proleptic Gregorian
/// calendar), valid for every year a log line or a command line can carry.
public enum CivilTime {
  /// Microseconds in one day.
  @inlinable public static var microsPerDay: Int64 { 86_400_000_000 }

  /// Days since 1970-01-01 for a civil date (`month` 1…12, `day` 1…31).
  @inlinable
  public static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year &- 1 : year
    let era = (y >= 0 ? y : y &- 399) / 400
    let yearOfEra = y &- era &* 400
    let monthIndex = month > 2 ? month &- 3 : month &+ 9
    let dayOfYear = (153 &* monthIndex &+ 2) / 5 &+ day &- 1
    let dayOfEra = yearOfEra &* 365 &+ yearOfEra / 4 &- yearOfEra / 100 &+ dayOfYear
    return era &* 146_097 &+ dayOfEra &- 719_468
  }

  /// The civil date of a day count since 1970-01-01.
  @inlinable
  public static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days &+ 719_468
    let era = (z >= 0 ? z : z &- 146_096) / 146_097
    let dayOfEra = z &- era &* 146_097
    let yearOfEra = (dayOfEra &- dayOfEra / 1460 &+ dayOfEra / 36_524 &- dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra &- (365 &* yearOfEra &+ yearOfEra / 4 &- yearOfEra / 100)
    let monthIndex = (5 &* dayOfYear &+ 2) / 153
    let day = dayOfYear &- (153 &* monthIndex &+ 2) / 5 &+ 1
    let month = monthIndex < 10 ? monthIndex &+ 3 : monthIndex &- 9
    return (yearOfEra &+ era &* 400 &+ (month <= 2 ? 1 : 0), month, day)
  }

  /// `true` for Gregorian leap years.
  @inlinable
  public static func isLeapYear(_ year: Int64) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
  }

  /// Number of days in `month` (1…12) of `year`; 0 for an invalid month.
  @inlinable
  public static func daysInMonth(year: Int64, month: Int64) -> Int64 {
    switch month {
    case 1, 3, 5, 7, 8, 10, 12: return 31
    case 4, 6, 9, 11: return 30
    case 2: return isLeapYear(year) ? 29 : 28
    default: return 0
    }
  }

  /// Floor division of microseconds into whole days (correct for negative values too).
  @inlinable
  public static func floorDays(micros: Int64) -> Int64 {
    let quotient = micros / 86_400_000_000
    return micros % 86_400_000_000 < 0 ? quotient &- 1 : quotient
  }
}

/// RFC 3339 text ↔ microseconds since the epoch, with microsecond precision (Foundation's ISO 8601
/// formatter keeps milliseconds only).
public enum TimeFormat {
  /// `2026-05-16T21:31:48.123456Z` for µs since the epoch (UTC, proleptic Gregorian, always six fraction digits).
  public static func rfc3339(micros: Int64) -> String {
    let days = CivilTime.floorDays(micros: micros)
    let microsOfDay = micros - days * CivilTime.microsPerDay
    let secondOfDay = microsOfDay / 1_000_000
    let fraction = microsOfDay % 1_000_000
    let (year, month, day) = CivilTime.civilFromDays(days)
    func pad(_ value: Int64, _ width: Int) -> String {
      let text = String(value)
      return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
      + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(fraction, 6))Z"
  }

  /// Parses RFC 3339 (`2026-05-16T21:31:48.123456Z`, `…+02:00`) to µs since the epoch.
  ///
  /// Also accepted: `t` or a space instead of `T`, `z` for `Z`, no zone (UTC), no seconds
  /// (`2026-05-16T21:31Z`), a date alone (midnight UTC), a leap second `:60`. Fraction digits past
  /// the sixth are dropped. `nil` for anything else (a month outside 1…12, a day outside 1…31, an hour
  /// past 23…); the day is not checked against the month (`02-31` is March 3rd or 2nd).
  public static func rfc3339(_ text: some StringProtocol) -> Int64? {
    let bytes = Array(text.utf8)
    var index = 0
    func digits(_ count: Int) -> Int64? {
      guard index + count <= bytes.count else { return nil }
      var value: Int64 = 0
      for byte in bytes[index..<(index + count)] {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        value = value * 10 + Int64(byte - 0x30)
      }
      index += count
      return value
    }
    func expect(_ characters: String) -> Bool {
      guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
      index += 1
      return true
    }
    guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
      (1...12).contains(month), (1...31).contains(day)
    else { return nil }
    var seconds = CivilTime.daysFromCivil(year: year, month: month, day: day) * 86_400
    var micros: Int64 = 0
    if index < bytes.count {
      guard expect("Tt "), let hour = digits(2), expect(":"), let minute = digits(2), hour < 24, minute < 60 else {
        return nil
      }
      var second: Int64 = 0
      if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
        index += 1
        guard let value = digits(2), value <= 60 else { return nil }
        second = value
      }
      seconds += hour * 3600 + minute * 60 + second
      if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        var places = 0
        while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
          if places < 6 { micros = micros * 10 + Int64(bytes[index] - 0x30) }
          places += 1
          index += 1
        }
        guard places > 0 else { return nil }
        if places < 6 { for _ in places..<6 { micros *= 10 } }
      }
      if index < bytes.count {
        if expect("Zz") {
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
          let sign: Int64 = bytes[index] == UInt8(ascii: "+") ? 1 : -1
          index += 1
          guard let zoneHours = digits(2), expect(":"), let zoneMinutes = digits(2), zoneHours < 24, zoneMinutes < 60
          else { return nil }
          seconds -= sign * (zoneHours * 3600 + zoneMinutes * 60)
        } else {
          return nil
        }
      }
    }
    guard index == bytes.count else { return nil }
    return seconds * 1_000_000 + micros
  }
}
