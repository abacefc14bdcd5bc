/// Integer calendar arithmetic for log timestamps: no Foundation, no allocation.
///
/// Uses Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms (proleptic Gregorian
/// calendar), valid for every year a log line can carry.
enum CivilTime {
  /// Microseconds in one day.
  static let microsPerDay: Int64 = 86_400_000_000

  /// Days since 1970-01-01 for a civil date (`month` 1…12, `day` 1…31).
  @inline(__always)
  static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year &- 1 : year
    let era = (y >= 0 ? y : y &- 399) / 400
    let yearOfEra = y &- era &* 400
    let monthIndex = month > 2 ? month &- 3 : month &+ 9
    let dayOfYear = (153 &* monthIndex &+ 2) / 5 &+ day &- 1
    let dayOfEra = yearOfEra &* 365 &+ yearOfEra / 4 &- yearOfEra / 100 &+ dayOfYear
    return era &* 146_097 &+ dayOfEra &- 719_468
  }

  /// The civil date of a day count since 1970-01-01.
  static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
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
  @inline(__always)
  static func isLeapYear(_ year: Int64) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
  }

  /// Number of days in `month` (1…12) of `year`; 0 for an invalid month.
  @inline(__always)
  static func daysInMonth(year: Int64, month: Int64) -> Int64 {
    switch month {
    case 1, 3, 5, 7, 8, 10, 12: return 31
    case 4, 6, 9, 11: return 30
    case 2: return isLeapYear(year) ? 29 : 28
    default: return 0
    }
  }

  /// Floor division of microseconds into whole days (correct for negative values too).
  @inline(__always)
  static func floorDays(micros: Int64) -> Int64 {
    let quotient = micros / microsPerDay
    return micros % microsPerDay < 0 ? quotient &- 1 : quotient
  }
}
