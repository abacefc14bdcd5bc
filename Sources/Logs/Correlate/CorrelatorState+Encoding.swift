import SVCTraceCore

/// A compact, versioned binary form of ``CorrelatorState`` for the store.
///
/// Version 4 (written now): LEB128 varints, times as zigzag deltas against the watermark, line
/// ids as zigzag deltas against the id written before, IPv4 addresses in 4 bytes, and the
/// entries in the table's probe order with its capacity, so that decoding rebuilds the same
/// layout. Versions 1–3 (fixed-width fields) are still read.
extension CorrelatorState {
  /// Why stored correlator state could not be read back.
  public struct DecodingError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { "Unable to decode the stored correlator state: \(message)" }
  }

  private static let version: UInt8 = 4

  /// Entry flags (version 4).
  private enum EntryFlag {
    static let sourceIsIPv4: UInt8 = 1
    static let hasPending: UInt8 = 2
    static let hasRecent: UInt8 = 4
  }

  /// Pending line flags (version 4).
  private enum PendingFlag {
    static let destinationIsIPv4: UInt8 = 1
    static let hasIPID: UInt8 = 2
    static let hasRetransmits: UInt8 = 4
  }

  /// Recent match flags (version 4).
  private enum RecentFlag {
    static let serviceIsIPv4: UInt8 = 1
    static let podIsIPv4: UInt8 = 2
    static let hasLastIPID: UInt8 = 4
    static let hasPreID: UInt8 = 8
    static let hasPostID: UInt8 = 16
  }

  /// Serializes the state (version byte first). Deterministic: a state built by the same
  /// sequence of operations encodes to the same bytes.
  public func encoded() -> [UInt8] {
    // A table left sparse outside ``Correlator/correlate(_:)`` is written as the shrunk table
    // the decoder accepts.
    if slots.count > Self.minimumCapacity, count * 16 < slots.count {
      var shrunk = self
      shrunk.shrinkIfSparse()
      return shrunk.encodedLayout()
    }
    return encodedLayout()
  }

  /// Serializes the state with the table's current layout.
  private func encodedLayout() -> [UInt8] {
    // Upper bounds: header 1 + 10 + 1 + 10; per entry 1 + 1 + 16 + 2 + 5 and a recent match
    // 1 + 10 + 18 + 18 + 10 + 5 + 10 + 10; per pending line 1 + 10 × 4 + 16 + 2 + 5 + 3 + 5;
    // per retransmitted ID 5.
    let bound = 32 + count * 107 + pendingCount * 72 + retransmitIDCount * 5
    let bytes = ByteSink.bytes(capacity: bound) { writer in
      writer.u8(Self.version)
      writer.signed(watermarkMicros)
      writer.u8(slots.isEmpty ? 0 : UInt8(slots.count.trailingZeroBitCount))
      writer.varint(UInt64(count))
      let watermark = watermarkMicros
      var lastID: Int64 = 0
      for slot in usedSlotsInProbeOrder {
        let entry = slots[slot]
        let sourceIsIPv4 = entry.sourceHigh == 0 && entry.sourceLow >> 32 == 0xFFFF
        var flags: UInt8 = sourceIsIPv4 ? EntryFlag.sourceIsIPv4 : 0
        if entry.pendingHead >= 0 { flags |= EntryFlag.hasPending }
        if entry.hasRecent { flags |= EntryFlag.hasRecent }
        writer.u8(flags)
        writer.u8(entry.proto)
        writer.address(IPAddress(high: entry.sourceHigh, low: entry.sourceLow), isIPv4: sourceIsIPv4)
        writer.u16(entry.sourcePort)
        if entry.pendingHead >= 0 {
          var lines = 0
          var index = entry.pendingHead
          while index >= 0 {
            lines += 1
            index = pool[Int(index)].next
          }
          writer.varint(UInt64(lines))
          index = entry.pendingHead
          while index >= 0 {
            let pre = pool[Int(index)]
            let retransmits = retransmitIDs(of: pre)
            var preFlags: UInt8 = pre.destination.isIPv4 ? PendingFlag.destinationIsIPv4 : 0
            if pre.ipID != nil { preFlags |= PendingFlag.hasIPID }
            if !retransmits.isEmpty { preFlags |= PendingFlag.hasRetransmits }
            writer.u8(preFlags)
            writer.signed(pre.id &- lastID)
            lastID = pre.id
            writer.signed(watermark &- pre.timeMicros)
            writer.signed(pre.lastSeenMicros &- pre.timeMicros)
            writer.signed(pre.clockOffsetMicros)
            writer.address(pre.destination, isIPv4: pre.destination.isIPv4)
            writer.u16(pre.destinationPort)
            if let id = pre.ipID { writer.varint(UInt64(id)) }
            writer.varint(UInt64(pre.length))
            if !retransmits.isEmpty {
              writer.varint(UInt64(retransmits.count))
              for id in retransmits { writer.varint(UInt64(id)) }
            }
            index = pre.next
          }
        }
        if entry.hasRecent {
          let match = recentMatch(at: Int(entry.recent))
          var matchFlags: UInt8 = 0
          if match.service.isIPv4 { matchFlags |= RecentFlag.serviceIsIPv4 }
          if match.pod.isIPv4 { matchFlags |= RecentFlag.podIsIPv4 }
          if match.lastIPID != nil { matchFlags |= RecentFlag.hasLastIPID }
          if match.preID != nil { matchFlags |= RecentFlag.hasPreID }
          if match.postID != nil { matchFlags |= RecentFlag.hasPostID }
          writer.u8(matchFlags)
          writer.signed(watermark &- match.timeMicros)
          writer.address(match.service, isIPv4: match.service.isIPv4)
          writer.u16(match.servicePort)
          writer.address(match.pod, isIPv4: match.pod.isIPv4)
          writer.u16(match.podPort)
          writer.signed(Int64(match.expectedPosts))
          if let id = match.lastIPID { writer.varint(UInt64(id)) }
          if let id = match.preID {
            writer.signed(id &- lastID)
            lastID = id
          }
          if let id = match.postID {
            writer.signed(id &- lastID)
            lastID = id
          }
        }
      }
    }
    // Not kept with the worst case's capacity (the store holds on to the bytes).
    return bytes.count * 2 < bound ? bytes.withUnsafeBufferPointer { [UInt8]($0) } : bytes
  }

  /// Restores a state written by ``encoded()`` (any version from 1 on).
  ///
  /// - Throws: ``DecodingError`` when the bytes are truncated, inconsistent or of an unknown
  ///   version.
  public init(encoded bytes: [UInt8]) throws {
    var reader = ByteReader(bytes: bytes)
    let version = try reader.u8()
    // Version 1 had no last IP ID per recent match, version 2 no line ids, version 4 is compact.
    guard (1...Self.version).contains(version) else { throw DecodingError(message: "unknown version \(version)") }
    self.init()
    if version == 4 {
      try decodeCompact(&reader)
    } else {
      try decodeFixedWidth(&reader, version: version)
    }
    guard reader.isAtEnd else { throw DecodingError(message: "trailing bytes") }
  }

  /// Reads the body of a version 4 state.
  private mutating func decodeCompact(_ reader: inout ByteReader) throws {
    watermarkMicros = try reader.signed()
    let capacityBits = try reader.u8()
    let entries = try reader.varint()
    // Every entry takes at least 8 bytes; a table of more than 16 slots per entry is shrunk.
    guard entries <= UInt64(reader.remaining / 8), capacityBits <= 40 else {
      throw DecodingError(message: "\(entries) entries in \(reader.remaining) bytes")
    }
    let count = Int(entries)
    if capacityBits > 0 {
      let capacity = 1 << Int(capacityBits)
      guard capacity >= Self.minimumCapacity, count * 10 <= capacity * 7,
        capacity == Self.minimumCapacity || count * 16 >= capacity
      else { throw DecodingError(message: "\(count) entries in a table of \(capacity) slots") }
      resize(to: capacity)
    } else if count > 0 {
      throw DecodingError(message: "\(count) entries without a table")
    }
    let watermark = watermarkMicros
    var lastID: Int64 = 0
    for _ in 0..<count {
      let flags = try reader.u8()
      let proto = try reader.u8()
      let source = try reader.address(isIPv4: flags & EntryFlag.sourceIsIPv4 != 0)
      let key = CorrelationKey(proto: proto, source: source, sourcePort: try reader.u16())
      guard find(key) < 0 else { throw DecodingError(message: "key \(source):\(key.sourcePort) twice") }
      let slot = insert(key)
      if flags & EntryFlag.hasPending != 0 {
        let lines = try reader.varint()
        guard lines > 0, lines <= UInt64(reader.remaining / 8) else {
          throw DecodingError(message: "\(lines) pending lines at byte \(reader.position)")
        }
        for _ in 0..<lines {
          let preFlags = try reader.u8()
          let id = lastID &+ (try reader.signed())
          lastID = id
          let time = watermark &- (try reader.signed())
          let lastSeen = time &+ (try reader.signed())
          let offset = try reader.signed()
          let destination = try reader.address(isIPv4: preFlags & PendingFlag.destinationIsIPv4 != 0)
          let port = try reader.u16()
          let ipID = preFlags & PendingFlag.hasIPID != 0 ? try reader.u32() : nil
          let length = try reader.u16Varint()
          var retransmits: [UInt32] = []
          if preFlags & PendingFlag.hasRetransmits != 0 {
            let ids = try reader.varint()
            guard ids <= UInt64(reader.remaining) else { throw DecodingError(message: "\(ids) retransmitted ids") }
            for _ in 0..<ids { retransmits.append(try reader.u32()) }
          }
          appendPending(
            PendingPre(
              id: id, timeMicros: time, lastSeenMicros: lastSeen, clockOffsetMicros: offset,
              destination: destination, destinationPort: port, ipID: ipID, length: length,
              retransmitIDs: retransmits), to: slot)
        }
      }
      if flags & EntryFlag.hasRecent != 0 {
        let matchFlags = try reader.u8()
        let time = watermark &- (try reader.signed())
        let service = try reader.address(isIPv4: matchFlags & RecentFlag.serviceIsIPv4 != 0)
        let servicePort = try reader.u16()
        let pod = try reader.address(isIPv4: matchFlags & RecentFlag.podIsIPv4 != 0)
        let podPort = try reader.u16()
        let expected = try reader.signed()
        var match = RecentMatch(
          timeMicros: time, service: service, servicePort: servicePort, pod: pod, podPort: podPort,
          expectedPosts: Int(truncatingIfNeeded: expected))
        if matchFlags & RecentFlag.hasLastIPID != 0 { match.lastIPID = try reader.u32() }
        if matchFlags & RecentFlag.hasPreID != 0 {
          lastID = lastID &+ (try reader.signed())
          match.preID = lastID
        }
        if matchFlags & RecentFlag.hasPostID != 0 {
          lastID = lastID &+ (try reader.signed())
          match.postID = lastID
        }
        setRecent(match, in: slot)
      }
      guard flags & (EntryFlag.hasPending | EntryFlag.hasRecent) != 0 else {
        throw DecodingError(message: "empty entry at byte \(reader.position)")
      }
    }
  }

  /// Reads the body of a version 1–3 state (fixed-width little-endian fields).
  private mutating func decodeFixedWidth(_ reader: inout ByteReader, version: UInt8) throws {
    watermarkMicros = try reader.i64()
    for _ in 0..<(try reader.fixedU32()) {
      let key = try reader.key()
      let slot = slot(for: key)
      guard slots[slot].pendingHead < 0 else { throw DecodingError(message: "pending key listed twice") }
      for _ in 0..<(try reader.fixedU32()) {
        let id = try reader.i64()
        let time = try reader.i64()
        let lastSeen = try reader.i64()
        let offset = try reader.i64()
        let destination = try reader.address(isIPv4: false)
        let port = try reader.u16()
        let hasID = try reader.u8() == 1
        let ipID = try reader.fixedU32()
        let length = try reader.u16()
        var retransmits: [UInt32] = []
        for _ in 0..<(try reader.fixedU32()) { retransmits.append(try reader.fixedU32()) }
        appendPending(
          PendingPre(
            id: id, timeMicros: time, lastSeenMicros: lastSeen, clockOffsetMicros: offset, destination: destination,
            destinationPort: port,
            ipID: hasID ? ipID : nil, length: length, retransmitIDs: retransmits), to: slot)
      }
      if slots[slot].pendingHead < 0 && !slots[slot].hasRecent { remove(at: slot) }
    }
    for _ in 0..<(try reader.fixedU32()) {
      let key = try reader.key()
      var match = RecentMatch(
        timeMicros: try reader.i64(), service: try reader.address(isIPv4: false), servicePort: try reader.u16(),
        pod: try reader.address(isIPv4: false), podPort: try reader.u16(), expectedPosts: Int(try reader.fixedU32()))
      if version >= 2 {
        let hasID = try reader.u8() == 1
        let id = try reader.fixedU32()
        match.lastIPID = hasID ? id : nil
      }
      if version >= 3 {
        let pre = try reader.i64()
        let post = try reader.i64()
        match.preID = pre == 0 ? nil : pre
        match.postID = post == 0 ? nil : post
      }
      setRecent(match, in: slot(for: key))
    }
  }
}

extension ByteSink {
  /// 4 bytes for an IPv4 address, else 16 (little-endian words).
  mutating func address(_ value: IPAddress, isIPv4: Bool) {
    if isIPv4 {
      u32(UInt32(truncatingIfNeeded: value.low))
    } else {
      u64(value.high)
      u64(value.low)
    }
  }
}

/// A bounds-checked cursor over encoded bytes.
private struct ByteReader {
  let bytes: [UInt8]
  var position = 0

  var isAtEnd: Bool { position == bytes.count }
  var remaining: Int { bytes.count - position }

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
  mutating func fixedU32() throws -> UInt32 { try integer(UInt32.self) }
  mutating func i64() throws -> Int64 { Int64(bitPattern: try integer(UInt64.self)) }

  /// A LEB128 varint of at most 64 bits.
  mutating func varint() throws -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard position < bytes.count else {
        throw CorrelatorState.DecodingError(message: "truncated at byte \(position)")
      }
      let byte = bytes[position]
      position += 1
      guard shift < 64, shift < 63 || byte <= 1 else {
        throw CorrelatorState.DecodingError(message: "varint too long at byte \(position - 1)")
      }
      value |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { return value }
      shift += 7
    }
  }

  mutating func signed() throws -> Int64 {
    let raw = try varint()
    return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
  }

  /// A varint that must fit 32 bits.
  mutating func u32() throws -> UInt32 {
    let start = position
    guard let value = UInt32(exactly: try varint()) else {
      throw CorrelatorState.DecodingError(message: "value out of range at byte \(start)")
    }
    return value
  }

  /// A varint that must fit 16 bits.
  mutating func u16Varint() throws -> UInt16 {
    let start = position
    guard let value = UInt16(exactly: try varint()) else {
      throw CorrelatorState.DecodingError(message: "value out of range at byte \(start)")
    }
    return value
  }

  mutating func address(isIPv4: Bool) throws -> IPAddress {
    if isIPv4 { return IPAddress(ipv4: try fixedU32()) }
    return IPAddress(high: try integer(UInt64.self), low: try integer(UInt64.self))
  }

  mutating func key() throws -> CorrelationKey {
    CorrelationKey(proto: try u8(), source: try address(isIPv4: false), sourcePort: try u16())
  }
}
