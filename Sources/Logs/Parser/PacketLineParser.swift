import SVCTraceCore

/// Parses kernel LOG lines, as rsyslog writes them, into ``PacketLine`` values.
///
/// Accepted forms (the kernel's `nf_log_syslog.c` format as rsyslog writes it):
/// - timestamp: RFC 3339 (`2026-05-16T21:31:48.123456+08:00`, `Z`, any fraction or none) or the
///   traditional `May 16 21:31:48` / `May  6 21:31:48` (year inferred, node zone applied);
/// - then a hostname and a `kernel:` tag, an optional `[12345.678901]` kernel timestamp;
/// - then the LOG prefix printed verbatim before `IN=` (a prefix without trailing space is glued to
///   `IN=`), then the kernel's fields for IPv4 or IPv6 and TCP, UDP, UDPLITE, ICMP, ICMPv6, SCTP,
///   AH, ESP or a numeric protocol.
///
/// Prefixes:
/// - svctrace: a prefix starting with `SVCT:PRE` or `SVCT:POST` (followed by a non-alphanumeric
///   byte or `IN=`) → ``PacketLine/Origin/svctrace``.
/// - legacy: any other prefix containing `domeos` (any case) → ``PacketLine/Origin/legacy``. The
///   prefix is split into words at every non-alphanumeric byte; a word `pre`, `prerouting`,
///   `pretrouting` (the script's manual spells it so: `----domeos pretrouting-----`) or `output`
///   means ``PacketLine/Stage/pre``, a word `post` or `postrouting` means
///   ``PacketLine/Stage/post`` (case-insensitive). A prefix with words of both kinds, or of
///   neither, is skipped.
/// - anything else (other firewalls' prefixes, no prefix) is skipped.
///
/// Fields inside brackets (the packet an ICMP error embeds, `INCOMPLETE [n bytes]`) never
/// overwrite the outer packet's fields; after `PROTO=` the transport's `LEN=`/`ID=` are not the
/// IP's. A line missing `SRC=`, `DST=` or `PROTO=`, or a TCP/UDP/SCTP line missing its ports
/// when it is neither a fragment nor marked `INCOMPLETE`, is skipped.
///
/// Year inference for traditional timestamps: the first such line takes the year of the
/// reference time (in the node's zone); later lines keep the previous line's year, moving to the
/// next year when the month goes backwards (Dec → Jan). A line that would then be dated later than
/// reference + 1 day is moved back a year (repeatedly, also to find a Feb 29).
public struct PacketLineParser: LineParsing, Sendable {
  /// Lines parsed and skipped so far.
  public private(set) var stats = ParseStats()
  /// "Now" in µs since the epoch, used to infer years of traditional timestamps.
  public let referenceMicros: Int64
  /// The node's UTC offset applied to traditional timestamps.
  public let utcOffsetSeconds: Int32

  private let referenceYear: Int64
  private let latestAllowedMicros: Int64
  private var lastYear: Int64 = 0
  /// Month of the previous traditional timestamp; 0 before the first one.
  private var lastMonth: Int64 = 0

  /// Creates a parser.
  /// - Parameters:
  ///   - referenceMicros: "now" (µs since epoch) used to infer the year of traditional
  ///     `Mmm dd hh:mm:ss` timestamps.
  ///   - utcOffsetSeconds: the node's UTC offset for traditional timestamps (which carry no zone).
  public init(referenceMicros: Int64, utcOffsetSeconds: Int32 = 0) {
    self.referenceMicros = referenceMicros
    self.utcOffsetSeconds = utcOffsetSeconds
    let offsetMicros = Int64(utcOffsetSeconds) &* 1_000_000
    let (local, overflow) = referenceMicros.addingReportingOverflow(offsetMicros)
    let days = CivilTime.floorDays(micros: overflow ? referenceMicros : local)
    referenceYear = CivilTime.civilFromDays(days).year
    let (latest, overflow2) = referenceMicros.addingReportingOverflow(CivilTime.microsPerDay)
    latestAllowedMicros = overflow2 ? Int64.max : latest
  }

  /// Parses one line (without its newline); `nil` and `stats.skipped += 1` when it is not a
  /// packet line of svctrace or the legacy script.
  public mutating func parse(_ line: UnsafeBufferPointer<UInt8>) -> PacketLine? {
    guard let base = line.baseAddress, line.count > 0, let packet = parseLine(base, line.count) else {
      stats.skipped &+= 1
      return nil
    }
    stats.parsed &+= 1
    return packet
  }

  // MARK: - Line structure

  private mutating func parseLine(_ p: UnsafePointer<UInt8>, _ n: Int) -> PacketLine? {
    var i = 0
    let time: Int64
    if ByteScan.isDigit(p[0]) {
      guard let parsed = Self.parseRFC3339(p, n, &i) else { return nil }
      time = parsed
    } else {
      guard let parsed = parseTraditional(p, n, &i) else { return nil }
      time = parsed
    }

    // " hostname kernel: "
    guard i < n, p[i] == ByteScan.space else { return nil }
    i = ByteScan.skipSpaces(p, i, n)
    let hostStart = i
    i = ByteScan.toSpace(p, i, n)
    guard i > hostStart, i < n else { return nil }
    i = ByteScan.skipSpaces(p, i, n)
    guard n &- i >= 7, p[i] == UInt8(ascii: "k"), p[i &+ 1] == UInt8(ascii: "e"),
      p[i &+ 2] == UInt8(ascii: "r"), p[i &+ 3] == UInt8(ascii: "n"), p[i &+ 4] == UInt8(ascii: "e"),
      p[i &+ 5] == UInt8(ascii: "l")
    else { return nil }
    i = ByteScan.toSpace(p, i, n)
    guard p[i &- 1] == UInt8(ascii: ":") else { return nil }
    i = ByteScan.skipSpaces(p, i, n)

    // Optional "[12345.678901]" kernel timestamp.
    var kernelMicros: Int64? = nil
    if i < n, p[i] == UInt8(ascii: "[") {
      var j = i
      if let micros = Self.parseKernelTimestamp(p, n, &j) {
        kernelMicros = micros
        i = ByteScan.skipSpaces(p, j, n)
      }
    }

    // Prefix, printed verbatim before "IN=".
    let prefixStart = i
    guard let inPosition = Self.findIN(p, from: i, end: n),
      let classified = Self.classifyPrefix(p, prefixStart, inPosition)
    else { return nil }
    let (stage, origin) = classified

    // "IN=<name> OUT=<name>"
    i = inPosition &+ 3
    let inStart = i
    i = ByteScan.toSpace(p, i, n)
    guard i &- inStart <= 15, n &- i >= 5, p[i &+ 1] == UInt8(ascii: "O"), p[i &+ 2] == UInt8(ascii: "U"),
      p[i &+ 3] == UInt8(ascii: "T"), p[i &+ 4] == UInt8(ascii: "=")
    else { return nil }
    let inInterface = InterfaceName(bytes: UnsafeBufferPointer(start: p + inStart, count: i &- inStart))
    i &+= 5
    let outStart = i
    i = ByteScan.toSpace(p, i, n)
    guard i &- outStart <= 15 else { return nil }
    let outInterface = InterfaceName(bytes: UnsafeBufferPointer(start: p + outStart, count: i &- outStart))

    // The remaining space-separated tokens.
    var source: IPAddress? = nil
    var destination: IPAddress? = nil
    var proto = -1
    var sourcePort = -1
    var destinationPort = -1
    var ipID: UInt32? = nil
    var length: UInt16 = 0
    var mark: UInt32 = 0
    var tcpFlags: UInt8 = 0
    var fragment = false
    var incomplete = false
    var portsExpected = false
    var icmpExpected = false
    var icmpTyped = false
    var depth = 0

    while i < n {
      i = ByteScan.skipSpaces(p, i, n)
      if i >= n { break }
      let start = i
      i = ByteScan.toSpace(p, i, n)
      let end = i
      let count = end &- start
      let first = p[start]
      if first == UInt8(ascii: "[") { depth &+= 1 }
      defer { if p[end &- 1] == UInt8(ascii: "]"), depth > 0 { depth &-= 1 } }
      guard depth == 0 else { continue }

      let key = Self.key4(p, start, count)
      if proto < 0 {
        // Network-layer fields (before PROTO=).
        switch key {
        case Key.src:
          guard source == nil else { break }
          guard let address = IPAddress.parse(p, start &+ 4, end) else { return nil }
          source = address
        case Key.dst:
          guard destination == nil else { break }
          guard let address = IPAddress.parse(p, start &+ 4, end) else { return nil }
          destination = address
        case Key.len:
          guard let value = ByteScan.decimal(p, start &+ 4, end, maximum: UInt64(UInt32.max)) else { return nil }
          length = UInt16(clamping: value)
        case Key.frag:
          // IPv4 "FRAG:n" / IPv6 "FRAG:off": a non-zero offset means no transport header.
          guard count > 5, p[start &+ 4] == UInt8(ascii: ":"),
            let offset = ByteScan.decimal(p, start &+ 5, end, maximum: 0xFFFF)
          else { return nil }
          if offset > 0 { fragment = true }
        case Key.prot:
          guard count > 6, p[start &+ 4] == UInt8(ascii: "O"), p[start &+ 5] == UInt8(ascii: "="),
            let parsed = Self.protocolNumber(p, start &+ 6, end)
          else { return nil }
          proto = parsed.number
          portsExpected = parsed.kind == .ports
          icmpExpected = parsed.kind == .icmp
        default:
          if count >= 3, first == UInt8(ascii: "I"), p[start &+ 1] == UInt8(ascii: "D") {
            if p[start &+ 2] == UInt8(ascii: "=") {  // IPv4 "ID=n"
              guard ipID == nil else { break }
              guard let value = ByteScan.decimal(p, start &+ 3, end, maximum: 0xFFFF) else { return nil }
              ipID = UInt32(value)
            } else if p[start &+ 2] == UInt8(ascii: ":") {  // IPv6 fragment "ID:xxxxxxxx"
              guard ipID == nil else { break }
              guard let value = ByteScan.hex(p, start &+ 3, end, maxDigits: 8) else { return nil }
              ipID = UInt32(truncatingIfNeeded: value)
            }
          } else if key == Key.mark {
            guard Self.parseMark(p, start, end, into: &mark) else { return nil }
          }
        }
      } else {
        // Transport fields and the tail (after PROTO=).
        switch key {
        case Key.spt:
          guard sourcePort < 0 else { break }
          guard let value = ByteScan.decimal(p, start &+ 4, end, maximum: 0xFFFF) else { return nil }
          sourcePort = Int(value)
        case Key.dpt:
          guard destinationPort < 0 else { break }
          guard let value = ByteScan.decimal(p, start &+ 4, end, maximum: 0xFFFF) else { return nil }
          destinationPort = Int(value)
        case Key.type:
          if count > 5, p[start &+ 4] == UInt8(ascii: "=") { icmpTyped = true }
        case Key.mark:
          guard Self.parseMark(p, start, end, into: &mark) else { return nil }
        case Key.inco:
          if ByteScan.equalsLowercase(p, start, end, "incomplete") { incomplete = true }
        default:
          if count == 3, proto == Int(IPProtocol.tcp.number) { tcpFlags |= Self.tcpFlag(key) }
        }
      }
    }

    guard let source, let destination, proto >= 0 else { return nil }
    if !fragment, !incomplete {
      if portsExpected, sourcePort < 0 || destinationPort < 0 { return nil }
      if icmpExpected, !icmpTyped { return nil }
    }
    return PacketLine(
      timeMicros: time, kernelMicros: kernelMicros, stage: stage, origin: origin,
      inInterface: inInterface, outInterface: outInterface, source: source, destination: destination,
      proto: UInt8(truncatingIfNeeded: proto),
      sourcePort: UInt16(truncatingIfNeeded: max(sourcePort, 0)),
      destinationPort: UInt16(truncatingIfNeeded: max(destinationPort, 0)),
      ipID: ipID, length: length, mark: mark, tcpFlags: tcpFlags)
  }

  // MARK: - Keys

  /// First four bytes of a token as a little-endian word (`"SRC="` → 0x3D43_5253), or the
  /// three bytes of a three-byte token; 0 for shorter tokens.
  @inline(__always)
  private static func key4(_ p: UnsafePointer<UInt8>, _ start: Int, _ count: Int) -> UInt32 {
    if count >= 4 {
      return UInt32(littleEndian: UnsafeRawPointer(p + start).loadUnaligned(as: UInt32.self))
    }
    if count == 3 {
      return UInt32(p[start]) | UInt32(p[start &+ 1]) &<< 8 | UInt32(p[start &+ 2]) &<< 16
    }
    return 0
  }

  /// Token keys as produced by ``key4(_:_:_:)`` (literal words so the switch compiles to
  /// constant compares; `PacketLineParserTests` checks every key through real lines).
  private enum Key {
    static let src: UInt32 = 0x3D43_5253  // "SRC="
    static let dst: UInt32 = 0x3D54_5344  // "DST="
    static let len: UInt32 = 0x3D4E_454C  // "LEN="
    static let spt: UInt32 = 0x3D54_5053  // "SPT="
    static let dpt: UInt32 = 0x3D54_5044  // "DPT="
    static let frag: UInt32 = 0x4741_5246  // "FRAG"
    static let prot: UInt32 = 0x544F_5250  // "PROT"
    static let type: UInt32 = 0x4550_5954  // "TYPE"
    static let mark: UInt32 = 0x4B52_414D  // "MARK"
    static let inco: UInt32 = 0x4F43_4E49  // "INCO"
    static let syn: UInt32 = 0x4E_5953  // "SYN"
    static let ack: UInt32 = 0x4B_4341  // "ACK"
    static let fin: UInt32 = 0x4E_4946  // "FIN"
    static let rst: UInt32 = 0x54_5352  // "RST"
    static let psh: UInt32 = 0x48_5350  // "PSH"
    static let urg: UInt32 = 0x47_5255  // "URG"
    static let ece: UInt32 = 0x45_4345  // "ECE"
    static let cwr: UInt32 = 0x52_5743  // "CWR"
  }

  /// The TCP header bit of a three-byte flag word (FIN 0x01 … CWR 0x80), 0 for other words.
  @inline(__always)
  private static func tcpFlag(_ key: UInt32) -> UInt8 {
    switch key {
    case Key.fin: return 0x01
    case Key.syn: return 0x02
    case Key.rst: return 0x04
    case Key.psh: return 0x08
    case Key.ack: return 0x10
    case Key.urg: return 0x20
    case Key.ece: return 0x40
    case Key.cwr: return 0x80
    default: return 0
    }
  }

  /// What a protocol's line must carry.
  private enum ProtocolKind { case ports, icmp, other }

  /// Maps the value of `PROTO=` to its IP protocol number.
  private static func protocolNumber(
    _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int
  ) -> (number: Int, kind: ProtocolKind)? {
    if ByteScan.isDigit(p[start]) {
      guard let value = ByteScan.decimal(p, start, end, maximum: 255) else { return nil }
      return (Int(value), .other)
    }
    switch end &- start {
    case 2 where ByteScan.equalsLowercase(p, start, end, "ah"): return (51, .other)
    case 3 where ByteScan.equalsLowercase(p, start, end, "tcp"): return (Int(IPProtocol.tcp.number), .ports)
    case 3 where ByteScan.equalsLowercase(p, start, end, "udp"): return (Int(IPProtocol.udp.number), .ports)
    case 3 where ByteScan.equalsLowercase(p, start, end, "esp"): return (50, .other)
    case 4 where ByteScan.equalsLowercase(p, start, end, "icmp"): return (Int(IPProtocol.icmp.number), .icmp)
    case 4 where ByteScan.equalsLowercase(p, start, end, "sctp"): return (Int(IPProtocol.sctp.number), .ports)
    case 6 where ByteScan.equalsLowercase(p, start, end, "icmpv6"): return (Int(IPProtocol.icmpv6.number), .icmp)
    case 7 where ByteScan.equalsLowercase(p, start, end, "udplite"): return (136, .ports)
    default: return nil
    }
  }

  /// Parses `MARK=0x…` (hex, at most 8 digits); `false` on a malformed value.
  @inline(__always)
  private static func parseMark(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into mark: inout UInt32) -> Bool {
    guard end &- start > 7, p[start &+ 4] == UInt8(ascii: "="), p[start &+ 5] == UInt8(ascii: "0"),
      p[start &+ 6] | 0x20 == UInt8(ascii: "x"),
      let value = ByteScan.hex(p, start &+ 7, end, maxDigits: 8)
    else { return false }
    mark = UInt32(truncatingIfNeeded: value)
    return true
  }

  // MARK: - Prefix

  /// Position of the first `IN=` at or after `start`, looking at most 256 bytes ahead.
  @inline(__always)
  private static func findIN(_ p: UnsafePointer<UInt8>, from start: Int, end: Int) -> Int? {
    let limit = min(end &- 2, start &+ 256)
    var i = start
    while i < limit {
      if p[i] == UInt8(ascii: "I"), p[i &+ 1] == UInt8(ascii: "N"), p[i &+ 2] == UInt8(ascii: "=") { return i }
      i &+= 1
    }
    return nil
  }

  /// Decides stage and origin from the prefix bytes `p[start..<end]` (see the type's rules).
  private static func classifyPrefix(
    _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int
  ) -> (PacketLine.Stage, PacketLine.Origin)? {
    let count = end &- start
    if count >= 8, p[start] == UInt8(ascii: "S"), p[start &+ 1] == UInt8(ascii: "V"),
      p[start &+ 2] == UInt8(ascii: "C"), p[start &+ 3] == UInt8(ascii: "T"),
      p[start &+ 4] == UInt8(ascii: ":"), p[start &+ 5] == UInt8(ascii: "P")
    {
      if p[start &+ 6] == UInt8(ascii: "R"), p[start &+ 7] == UInt8(ascii: "E"),
        count == 8 || !ByteScan.isAlphanumeric(p[start &+ 8])
      {
        return (.pre, .svctrace)
      }
      if count >= 9, p[start &+ 6] == UInt8(ascii: "O"), p[start &+ 7] == UInt8(ascii: "S"),
        p[start &+ 8] == UInt8(ascii: "T"), count == 9 || !ByteScan.isAlphanumeric(p[start &+ 9])
      {
        return (.post, .svctrace)
      }
      return nil
    }
    return classifyLegacyPrefix(p, start, end).map { ($0, .legacy) }
  }

  /// Stage of an old-script prefix: must contain `domeos`; words decide pre or post.
  private static func classifyLegacyPrefix(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> PacketLine.Stage? {
    var containsDomeos = false
    var i = start
    while i &+ 6 <= end {
      if ByteScan.equalsLowercase(p, i, i &+ 6, "domeos") {
        containsDomeos = true
        break
      }
      i &+= 1
    }
    guard containsDomeos else { return nil }
    var sawPre = false
    var sawPost = false
    i = start
    while i < end {
      while i < end, !ByteScan.isAlphanumeric(p[i]) { i &+= 1 }
      let wordStart = i
      while i < end, ByteScan.isAlphanumeric(p[i]) { i &+= 1 }
      if i > wordStart {
        if ByteScan.equalsLowercase(p, wordStart, i, "pre") || ByteScan.equalsLowercase(p, wordStart, i, "prerouting")
          || ByteScan.equalsLowercase(p, wordStart, i, "pretrouting")
          || ByteScan.equalsLowercase(p, wordStart, i, "output")
        {
          sawPre = true
        } else if ByteScan.equalsLowercase(p, wordStart, i, "post")
          || ByteScan.equalsLowercase(p, wordStart, i, "postrouting")
        {
          sawPost = true
        }
      }
    }
    switch (sawPre, sawPost) {
    case (true, false): return .pre
    case (false, true): return .post
    default: return nil
    }
  }

  // MARK: - Timestamps

  /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → µs since the epoch; advances `i` past it.
  private static func parseRFC3339(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int64? {
    guard n >= 20, p[4] == UInt8(ascii: "-"), p[7] == UInt8(ascii: "-"), p[10] | 0x20 == UInt8(ascii: "t"),
      p[13] == UInt8(ascii: ":"), p[16] == UInt8(ascii: ":"),
      let century = ByteScan.twoDigits(p, 0), let yy = ByteScan.twoDigits(p, 2),
      let month = ByteScan.twoDigits(p, 5), let day = ByteScan.twoDigits(p, 8),
      let hour = ByteScan.twoDigits(p, 11), let minute = ByteScan.twoDigits(p, 14),
      let second = ByteScan.twoDigits(p, 17)
    else { return nil }
    let year = century &* 100 &+ yy
    guard month >= 1, month <= 12, day >= 1, day <= CivilTime.daysInMonth(year: year, month: month),
      hour <= 23, minute <= 59, second <= 60
    else { return nil }
    i = 19
    let fraction = parseFraction(p, n, &i)
    guard fraction >= 0, i < n else { return nil }
    var offsetSeconds: Int64 = 0
    let zone = p[i]
    if zone | 0x20 == UInt8(ascii: "z") {
      i &+= 1
    } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-") {
      guard n &- i >= 5, let offsetHours = ByteScan.twoDigits(p, i &+ 1) else { return nil }
      var minuteIndex = i &+ 3
      if p[minuteIndex] == UInt8(ascii: ":") { minuteIndex &+= 1 }
      guard n &- minuteIndex >= 2, let offsetMinutes = ByteScan.twoDigits(p, minuteIndex),
        offsetHours <= 23, offsetMinutes <= 59
      else { return nil }
      offsetSeconds = offsetHours &* 3600 &+ offsetMinutes &* 60
      if zone == UInt8(ascii: "-") { offsetSeconds = -offsetSeconds }
      i = minuteIndex &+ 2
    } else {
      return nil
    }
    let days = CivilTime.daysFromCivil(year: year, month: month, day: day)
    let seconds = days &* 86_400 &+ hour &* 3600 &+ minute &* 60 &+ second &- offsetSeconds
    return seconds &* 1_000_000 &+ fraction
  }

  /// An optional `.digits` at `i` as microseconds (extra digits beyond six are dropped); 0 when
  /// absent, -1 when a `.` has no digits.
  @inline(__always)
  private static func parseFraction(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int64 {
    guard i < n, p[i] == UInt8(ascii: ".") else { return 0 }
    i &+= 1
    var value: Int64 = 0
    var digits = 0
    while i < n, ByteScan.isDigit(p[i]) {
      if digits < 6 {
        value = value &* 10 &+ Int64(p[i] &- UInt8(ascii: "0"))
      }
      digits &+= 1
      i &+= 1
    }
    guard digits > 0 else { return -1 }
    var scale = digits
    while scale < 6 {
      value &*= 10
      scale &+= 1
    }
    return value
  }

  /// `Mmm dd hh:mm:ss` (day space-padded or not) → µs since the epoch with the inferred year.
  private mutating func parseTraditional(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int64? {
    guard n >= 15, let month = Self.monthNumber(p[0], p[1], p[2]), p[3] == ByteScan.space else { return nil }
    var index = 4
    var day: Int64
    if p[4] == ByteScan.space {
      index = 5
    }
    guard ByteScan.isDigit(p[index]) else { return nil }
    day = Int64(p[index] &- UInt8(ascii: "0"))
    index &+= 1
    if ByteScan.isDigit(p[index]), p[4] != ByteScan.space {
      day = day &* 10 &+ Int64(p[index] &- UInt8(ascii: "0"))
      index &+= 1
    }
    guard n &- index >= 9, p[index] == ByteScan.space, p[index &+ 3] == UInt8(ascii: ":"),
      p[index &+ 6] == UInt8(ascii: ":"), let hour = ByteScan.twoDigits(p, index &+ 1),
      let minute = ByteScan.twoDigits(p, index &+ 4), let second = ByteScan.twoDigits(p, index &+ 7),
      day >= 1, day <= 31, hour <= 23, minute <= 59, second <= 60
    else { return nil }
    i = index &+ 9
    let fraction = Self.parseFraction(p, n, &i)
    guard fraction >= 0 else { return nil }
    let secondsOfDay = hour &* 3600 &+ minute &* 60 &+ second &- Int64(utcOffsetSeconds)

    var year = lastMonth == 0 ? referenceYear : (month < lastMonth ? lastYear &+ 1 : lastYear)
    var attempts = 0
    while true {
      if day <= CivilTime.daysInMonth(year: year, month: month) {
        let days = CivilTime.daysFromCivil(year: year, month: month, day: day)
        let micros = (days &* 86_400 &+ secondsOfDay) &* 1_000_000 &+ fraction
        if micros <= latestAllowedMicros {
          lastYear = year
          lastMonth = month
          return micros
        }
      }
      attempts &+= 1
      guard attempts < 10 else { return nil }
      year &-= 1
    }
  }

  /// Month number of a three-letter English abbreviation (`Jan` … `Dec`).
  @inline(__always)
  private static func monthNumber(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> Int64? {
    switch (a, b | 0x20, c | 0x20) {
    case (UInt8(ascii: "J"), UInt8(ascii: "a"), UInt8(ascii: "n")): return 1
    case (UInt8(ascii: "F"), UInt8(ascii: "e"), UInt8(ascii: "b")): return 2
    case (UInt8(ascii: "M"), UInt8(ascii: "a"), UInt8(ascii: "r")): return 3
    case (UInt8(ascii: "A"), UInt8(ascii: "p"), UInt8(ascii: "r")): return 4
    case (UInt8(ascii: "M"), UInt8(ascii: "a"), UInt8(ascii: "y")): return 5
    case (UInt8(ascii: "J"), UInt8(ascii: "u"), UInt8(ascii: "n")): return 6
    case (UInt8(ascii: "J"), UInt8(ascii: "u"), UInt8(ascii: "l")): return 7
    case (UInt8(ascii: "A"), UInt8(ascii: "u"), UInt8(ascii: "g")): return 8
    case (UInt8(ascii: "S"), UInt8(ascii: "e"), UInt8(ascii: "p")): return 9
    case (UInt8(ascii: "O"), UInt8(ascii: "c"), UInt8(ascii: "t")): return 10
    case (UInt8(ascii: "N"), UInt8(ascii: "o"), UInt8(ascii: "v")): return 11
    case (UInt8(ascii: "D"), UInt8(ascii: "e"), UInt8(ascii: "c")): return 12
    default: return nil
    }
  }

  /// `[ 12345.678901]` (spaces after `[` allowed, fraction optional) → µs since boot; advances
  /// `i` past `]`.
  private static func parseKernelTimestamp(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int64? {
    var j = ByteScan.skipSpaces(p, i &+ 1, n)
    let digitsStart = j
    while j < n, ByteScan.isDigit(p[j]) { j &+= 1 }
    guard j > digitsStart, let seconds = ByteScan.decimal(p, digitsStart, j, maximum: 9_000_000_000_000)
    else { return nil }
    let fraction = parseFraction(p, n, &j)
    guard fraction >= 0, j < n, p[j] == UInt8(ascii: "]") else { return nil }
    i = j &+ 1
    return Int64(seconds) &* 1_000_000 &+ fraction
  }
}
