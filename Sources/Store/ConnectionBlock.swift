import Foundation
import Logs

/// One connection as stored in a connection block (see ``ConnectionBlock``).
struct StoredConnection: Equatable, Sendable {
  /// Position in its block: the connection id is `block id << 24 | slot`.
  var slot: UInt32
  var timeMicros: Int64
  var proto: UInt8
  var client: IPAddress
  var clientPort: UInt16
  var service: IPAddress
  var servicePort: UInt16
  var pod: IPAddress
  var podPort: UInt16
  /// ``MatchMethod`` raw value.
  var method: UInt8
  var preID: Int64?
  var postID: Int64?
}

/// The columnar encoding of a block of connections (the `data` column of `connection_blocks`).
///
/// Layout (all integers little-endian; "varint" is LEB128, "zigzag" maps signed to unsigned):
///
///     u8       version (1)
///     varint   count
///     u8       flags: bit 0 = slots explicit (else slot i is entry i)
///     [varint] slots, when explicit: first slot, then the gap to the previous one
///     zigzag   times: the first time (µs), then each time minus the previous one
///     u8[]     protos
///     varint   address dictionary size, then per address: u8 4 + 4 bytes, or u8 6 + 16 bytes
///     varint[] client address index     u16[] client port
///     varint[] service address index    varint[] service port
///     varint[] pod address index        varint[] pod port
///     u8[]     methods
///     zigzag[] pre line id + 1 (0 = none) minus the previous entry's
///     zigzag[] post line id + 1 (0 = none) minus the same entry's pre value
///
/// Entries are in slot order; blocks written by a commit hold them in time order too, so the
/// time deltas are small and non-negative. A block of 30 k connections takes ≈ 15 bytes per
/// connection (addresses repeat, ports and ids are deltas) and decodes in about a millisecond.
enum ConnectionBlock {
  static let version: UInt8 = 1
  /// The most entries one block holds (slots must fit in 24 bits; smaller keeps decoding cheap).
  static let maxEntries = 1 << 16

  /// Encodes `entries` (sorted by slot, slots distinct).
  static func encode(_ entries: [StoredConnection]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(64 + entries.count * 20)
    out.append(version)
    putVarint(UInt64(entries.count), &out)
    let dense = entries.enumerated().allSatisfy { $0.offset == Int($0.element.slot) }
    out.append(dense ? 0 : 1)
    if !dense {
      var previous: UInt32 = 0
      for entry in entries {
        putVarint(UInt64(entry.slot &- previous), &out)
        previous = entry.slot
      }
    }
    var previousTime: Int64 = 0
    for entry in entries {
      putVarint(zigzag(entry.timeMicros &- previousTime), &out)
      previousTime = entry.timeMicros
    }
    for entry in entries { out.append(entry.proto) }
    var dictionary: [IPAddress: Int] = [:]
    var addresses: [IPAddress] = []
    func index(_ address: IPAddress) -> Int {
      if let known = dictionary[address] { return known }
      dictionary[address] = addresses.count
      addresses.append(address)
      return addresses.count - 1
    }
    let clients = entries.map { index($0.client) }
    let services = entries.map { index($0.service) }
    let pods = entries.map { index($0.pod) }
    putVarint(UInt64(addresses.count), &out)
    for address in addresses {
      if let v4 = address.ipv4 {
        out.append(4)
        withUnsafeBytes(of: v4.bigEndian) { out.append(contentsOf: $0) }
      } else {
        out.append(6)
        withUnsafeBytes(of: (address.high.bigEndian, address.low.bigEndian)) { out.append(contentsOf: $0) }
      }
    }
    for value in clients { putVarint(UInt64(value), &out) }
    for entry in entries {
      out.append(UInt8(truncatingIfNeeded: entry.clientPort))
      out.append(UInt8(truncatingIfNeeded: entry.clientPort >> 8))
    }
    for value in services { putVarint(UInt64(value), &out) }
    for entry in entries { putVarint(UInt64(entry.servicePort), &out) }
    for value in pods { putVarint(UInt64(value), &out) }
    for entry in entries { putVarint(UInt64(entry.podPort), &out) }
    for entry in entries { out.append(entry.method) }
    var previousPre: Int64 = 0
    for entry in entries {
      let pre = entry.preID.map { $0 &+ 1 } ?? 0
      putVarint(zigzag(pre &- previousPre), &out)
      previousPre = pre
    }
    for entry in entries {
      let pre = entry.preID.map { $0 &+ 1 } ?? 0
      let post = entry.postID.map { $0 &+ 1 } ?? 0
      putVarint(zigzag(post &- pre), &out)
    }
    return out
  }

  /// Decodes a block written by ``encode(_:)``.
  ///
  /// - Throws: ``StoreError`` when the bytes are truncated or malformed.
  static func decode(_ bytes: [UInt8]) throws -> [StoredConnection] {
    try bytes.withUnsafeBytes { raw in
      var reader = Reader(raw)
      guard try reader.byte() == version else { throw reader.failure("unknown block version") }
      let count = Int(try reader.varint())
      guard count <= maxEntries * 256, count <= raw.count else { throw reader.failure("implausible entry count") }
      let flags = try reader.byte()
      var entries = [StoredConnection](
        repeating: StoredConnection(
          slot: 0, timeMicros: 0, proto: 0, client: IPAddress.any, clientPort: 0, service: IPAddress.any,
          servicePort: 0, pod: IPAddress.any, podPort: 0, method: 0, preID: nil, postID: nil),
        count: count)
      if flags & 1 != 0 {
        var slot: UInt64 = 0
        for i in 0..<count {
          slot &+= try reader.varint()
          entries[i].slot = UInt32(truncatingIfNeeded: slot)
        }
      } else {
        for i in 0..<count { entries[i].slot = UInt32(truncatingIfNeeded: i) }
      }
      var time: Int64 = 0
      for i in 0..<count {
        time &+= unzigzag(try reader.varint())
        entries[i].timeMicros = time
      }
      for i in 0..<count { entries[i].proto = try reader.byte() }
      let addressCount = Int(try reader.varint())
      guard addressCount <= raw.count else { throw reader.failure("implausible dictionary size") }
      var addresses: [IPAddress] = []
      addresses.reserveCapacity(addressCount)
      for _ in 0..<addressCount {
        switch try reader.byte() {
        case 4: addresses.append(IPAddress(ipv4: try reader.bigEndian(UInt32.self)))
        case 6:
          let high = try reader.bigEndian(UInt64.self)
          addresses.append(IPAddress(high: high, low: try reader.bigEndian(UInt64.self)))
        default: throw reader.failure("bad address tag")
        }
      }
      func address() throws -> IPAddress {
        let index = Int(try reader.varint())
        guard index < addresses.count else { throw reader.failure("address index out of range") }
        return addresses[index]
      }
      for i in 0..<count { entries[i].client = try address() }
      for i in 0..<count {
        let low = UInt16(try reader.byte())
        entries[i].clientPort = low | UInt16(try reader.byte()) << 8
      }
      for i in 0..<count { entries[i].service = try address() }
      for i in 0..<count { entries[i].servicePort = UInt16(truncatingIfNeeded: try reader.varint()) }
      for i in 0..<count { entries[i].pod = try address() }
      for i in 0..<count { entries[i].podPort = UInt16(truncatingIfNeeded: try reader.varint()) }
      for i in 0..<count { entries[i].method = try reader.byte() }
      var pre: Int64 = 0
      for i in 0..<count {
        pre &+= unzigzag(try reader.varint())
        entries[i].preID = pre == 0 ? nil : pre &- 1
      }
      for i in 0..<count {
        let own = entries[i].preID.map { $0 &+ 1 } ?? 0
        let post = own &+ unzigzag(try reader.varint())
        entries[i].postID = post == 0 ? nil : post &- 1
      }
      return entries
    }
  }

  // MARK: Primitives

  static func putVarint(_ value: UInt64, _ out: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
      out.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    out.append(UInt8(value))
  }

  static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

  static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

  /// A bounds-checked cursor over the encoded bytes.
  struct Reader {
    let raw: UnsafeRawBufferPointer
    var position = 0

    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    func failure(_ message: String) -> StoreError {
      StoreError(operation: "decode a connection block", message: "\(message) at byte \(position) of \(raw.count)")
    }

    mutating func byte() throws -> UInt8 {
      guard position < raw.count else { throw failure("truncated") }
      defer { position += 1 }
      return raw[position]
    }

    mutating func varint() throws -> UInt64 {
      var result: UInt64 = 0
      var shift: UInt64 = 0
      while position < raw.count {
        let byte = raw[position]
        position += 1
        result |= UInt64(byte & 0x7F) << shift
        if byte < 0x80 { return result }
        shift += 7
        guard shift < 64 else { throw failure("varint too long") }
      }
      throw failure("truncated")
    }

    mutating func bigEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
      let size = MemoryLayout<T>.size
      guard position + size <= raw.count else { throw failure("truncated") }
      defer { position += size }
      return T(bigEndian: raw.loadUnaligned(fromByteOffset: position, as: T.self))
    }
  }
}
