/// Byte-level scanning primitives shared by the log parser.
///
/// Every function takes a base pointer and explicit bounds and never reads outside them; numeric
/// parsers reject overflow instead of trapping. Nothing here allocates.
enum ByteScan {
  static let space = UInt8(ascii: " ")

  /// `true` for `0`…`9`.
  @inline(__always)
  static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

  /// `true` for ASCII letters and digits.
  @inline(__always)
  static func isAlphanumeric(_ byte: UInt8) -> Bool {
    isDigit(byte) || (byte | 0x20) &- UInt8(ascii: "a") < 26
  }

  /// The value of a hexadecimal digit, or `nil`.
  @inline(__always)
  static func hexValue(_ byte: UInt8) -> UInt64? {
    if isDigit(byte) { return UInt64(byte &- UInt8(ascii: "0")) }
    let lower = byte | 0x20
    if lower &- UInt8(ascii: "a") < 6 { return UInt64(lower &- UInt8(ascii: "a") &+ 10) }
    return nil
  }

  /// Index of the first space at or after `index`, or `end`.
  ///
  /// Looks at eight bytes per step (SWAR): `x = word ^ 0x20…20` has a zero byte where the word has
  /// a space, and `(x - 0x01…01) & ~x & 0x80…80` flags exactly the lowest such byte.
  @inline(__always)
  static func toSpace(_ p: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> Int {
    var i = index
    while end &- i >= 8 {
      let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
      let x = word ^ 0x2020_2020_2020_2020
      let found = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
      if found != 0 { return i &+ found.trailingZeroBitCount &>> 3 }
      i &+= 8
    }
    while i < end, p[i] != space { i &+= 1 }
    return i
  }

  /// Index of the first non-space byte at or after `index`, or `end`.
  @inline(__always)
  static func skipSpaces(_ p: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> Int {
    var i = index
    while i < end, p[i] == space { i &+= 1 }
    return i
  }

  /// Parses `p[start..<end]` as a non-empty decimal number no greater than `maximum`.
  @inline(__always)
  static func decimal(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maximum: UInt64) -> UInt64? {
    guard start < end, end &- start <= 20 else { return nil }
    var value: UInt64 = 0
    var i = start
    while i < end {
      let digit = p[i] &- UInt8(ascii: "0")
      guard digit < 10 else { return nil }
      let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
      guard !overflow1, !overflow2, sum <= maximum else { return nil }
      value = sum
      i &+= 1
    }
    return value
  }

  /// Parses `p[start..<end]` as 1…`maxDigits` hexadecimal digits (`maxDigits` ≤ 16).
  @inline(__always)
  static func hex(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxDigits: Int) -> UInt64? {
    guard start < end, end &- start <= maxDigits else { return nil }
    var value: UInt64 = 0
    var i = start
    while i < end {
      guard let digit = hexValue(p[i]) else { return nil }
      value = value &<< 4 | digit
      i &+= 1
    }
    return value
  }

  /// Exactly two decimal digits at `index` (the caller guarantees `index + 1 < end`).
  @inline(__always)
  static func twoDigits(_ p: UnsafePointer<UInt8>, _ index: Int) -> Int64? {
    let high = p[index] &- UInt8(ascii: "0")
    let low = p[index &+ 1] &- UInt8(ascii: "0")
    guard high < 10, low < 10 else { return nil }
    return Int64(high) &* 10 &+ Int64(low)
  }

  /// `true` when `p[start..<end]` equals the lowercase ASCII `word`, ignoring the case of `p`.
  static func equalsLowercase(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ word: StaticString) -> Bool {
    guard end &- start == word.utf8CodeUnitCount else { return false }
    let w = word.utf8Start
    var i = 0
    while i < end &- start {
      guard p[start &+ i] | 0x20 == w[i] else { return false }
      i &+= 1
    }
    return true
  }
}
