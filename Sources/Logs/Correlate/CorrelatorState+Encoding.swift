/// A compact, versioned binary form of ``CorrelatorState`` for the store.
extension CorrelatorState {
  /// Why stored correlator state could not be read back.
  public struct DecodingError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { "Unable to decode the stored correlator state: \(message)" }
  }

  private static let version: UInt8 = 3

  /// Serializes the state (little-endian fields, version byte first).
  public func encoded() -> [UInt8] {
    var writer = ByteWriter()
    writer.bytes.reserveCapacity(16 + pending.count * 96 + recent.count * 88)
    writer.u8(Self.version)
    writer.i64(watermarkMicros)
    writer.u32(UInt32(pending.count))
    for (key, list) in pending.sorted(by: { $0.value.first?.id ?? 0 < $1.value.first?.id ?? 0 }) {
      writer.key(key)
      writer.u32(UInt32(list.count))
      for pre in list {
        writer.i64(pre.id)
        writer.i64(pre.timeMicros)
        writer.i64(pre.lastSeenMicros)
        writer.i64(pre.clockOffsetMicros)
        writer.address(pre.destination)
        writer.u16(pre.destinationPort)
        writer.u8(pre.ipID == nil ? 0 : 1)
        writer.u32(pre.ipID ?? 0)
        writer.u16(pre.length)
        writer.u32(UInt32(pre.retransmitIDs.count))
        for id in pre.retransmitIDs { writer.u32(id) }
      }
    }
    writer.u32(UInt32(recent.count))
    for (key, match) in recent {
      writer.key(key)
      writer.i64(match.timeMicros)
      writer.address(match.service)
      writer.u16(match.servicePort)
      writer.address(match.pod)
      writer.u16(match.podPort)
      writer.u32(UInt32(clamping: match.expectedPosts))
      writer.u8(match.lastIPID == nil ? 0 : 1)
      writer.u32(match.lastIPID ?? 0)
      writer.i64(match.preID ?? 0)
      writer.i64(match.postID ?? 0)
    }
    return writer.bytes
  }

  /// Restores a state written by ``encoded()``.
  ///
  /// - Throws: ``DecodingError`` when the bytes are truncated or of an unknown version.
  public init(encoded bytes: [UInt8]) throws {
    var reader = ByteReader(bytes: bytes)
    let version = try reader.u8()
    // Version 1 had no last IP ID per recent match, version 2 no line ids.
    guard (1...Self.version).contains(version) else { throw DecodingError(message: "unknown version \(version)") }
    self.init()
    watermarkMicros = try reader.i64()
    for _ in 0..<(try reader.u32()) {
      let key = try reader.key()
      var list: [PendingPre] = []
      for _ in 0..<(try reader.u32()) {
        let id = try reader.i64()
        let time = try reader.i64()
        let lastSeen = try reader.i64()
        let offset = try reader.i64()
        let destination = try reader.address()
        let port = try reader.u16()
        let hasID = try reader.u8() == 1
        let ipID = try reader.u32()
        let length = try reader.u16()
        var retransmits: [UInt32] = []
        for _ in 0..<(try reader.u32()) { retransmits.append(try reader.u32()) }
        list.append(
          PendingPre(
            id: id, timeMicros: time, lastSeenMicros: lastSeen, clockOffsetMicros: offset, destination: destination,
            destinationPort: port,
            ipID: hasID ? ipID : nil, length: length, retransmitIDs: retransmits))
      }
      pending[key] = list
    }
    for _ in 0..<(try reader.u32()) {
      let key = try reader.key()
      var match = RecentMatch(
        timeMicros: try reader.i64(), service: try reader.address(), servicePort: try reader.u16(),
        pod: try reader.address(), podPort: try reader.u16(), expectedPosts: Int(try reader.u32()))
      if version >= 2 {
        let hasID = try reader.u8() == 1
        let id = try reader.u32()
        match.lastIPID = hasID ? id : nil
      }
      if version >= 3 {
        let pre = try reader.i64()
        let post = try reader.i64()
        match.preID = pre == 0 ? nil : pre
        match.postID = post == 0 ? nil : post
      }
      recent[key] = match
    }
    guard reader.isAtEnd else { throw DecodingError(message: "trailing bytes") }
  }
}

private struct ByteWriter {
  var bytes: [UInt8] = []

  mutating func u8(_ value: UInt8) { bytes.append(value) }
  mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
  mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
  mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
  mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
  mutating func address(_ value: IPAddress) {
    u64(value.high)
    u64(value.low)
  }
  mutating func key(_ key: CorrelationKey) {
    u8(key.proto)
    address(key.source)
    u16(key.sourcePort)
  }
}

private struct ByteReader {
  let bytes: [UInt8]
  var position = 0

  var isAtEnd: Bool { position == bytes.count }

  mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
    guard bytes.count - position >= count else {
      throw CorrelatorState.DecodingError(message: "truncated at byte \(position)")
    }
    defer { position += count }
    return bytes[position..<(position + count)]
  }

  mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
    var value: T = 0
    for (shift, byte) in try take(MemoryLayout<T>.size).enumerated() {
      value |= T(truncatingIfNeeded: byte) << (shift * 8)
    }
    return value
  }

  mutating func u8() throws -> UInt8 { try integer(UInt8.self) }
  mutating func u16() throws -> UInt16 { try integer(UInt16.self) }
  mutating func u32() throws -> UInt32 { try integer(UInt32.self) }
  mutating func i64() throws -> Int64 { Int64(bitPattern: try integer(UInt64.self)) }
  mutating func address() throws -> IPAddress {
    IPAddress(high: try integer(UInt64.self), low: try integer(UInt64.self))
  }
  mutating func key() throws -> CorrelationKey {
    CorrelationKey(proto: try u8(), source: try address(), sourcePort: try u16())
  }
}
