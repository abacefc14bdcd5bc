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

/// The columnar encoding of a block of connections (the `data` column of
/// `connection_block_data`).
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
    let columns = try bytes.withUnsafeBytes { try Columns(decoding: $0) }
    return (0..<columns.count).map { columns.entry($0) }
  }

  /// A decoded block kept column by column (what lookups filter on before building the few
  /// connections that match): addresses are indices into ``addresses``.
  struct Columns {
    var count = 0
    var slots: [UInt32] = []
    var times: [Int64] = []
    var protos: [UInt8] = []
    var addresses: [IPAddress] = []
    var clients: [UInt32] = []
    var clientPorts: [UInt16] = []
    var services: [UInt32] = []
    var servicePorts: [UInt16] = []
    var pods: [UInt32] = []
    var podPorts: [UInt16] = []
    var methods: [UInt8] = []
    /// Line id + 1, 0 for none.
    var pres: [Int64] = []
    var posts: [Int64] = []

    /// No connections.
    init() {}

    /// Decodes the bytes of ``ConnectionBlock/encode(_:)``.
    ///
    /// - Throws: ``StoreError`` when the bytes are truncated or malformed.
    init(decoding raw: UnsafeRawBufferPointer) throws {
      var reader = Reader(raw)
      guard try reader.byte() == version else { throw reader.failure("unknown block version") }
      let count = Int(try reader.varint())
      guard count <= raw.count else { throw reader.failure("implausible entry count") }
      self.count = count
      let flags = try reader.byte()
      slots.reserveCapacity(count)
      if flags & 1 != 0 {
        var slot: UInt64 = 0
        for _ in 0..<count {
          slot &+= try reader.varint()
          slots.append(UInt32(truncatingIfNeeded: slot))
        }
      } else {
        for i in 0..<count { slots.append(UInt32(truncatingIfNeeded: i)) }
      }
      times.reserveCapacity(count)
      var time: Int64 = 0
      for _ in 0..<count {
        time &+= unzigzag(try reader.varint())
        times.append(time)
      }
      protos = try reader.bytes(count)
      let addressCount = Int(try reader.varint())
      guard addressCount <= raw.count else { throw reader.failure("implausible dictionary size") }
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
      let limit = UInt64(addressCount)
      func indices() throws -> [UInt32] {
        var values: [UInt32] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
          let index = try reader.varint()
          guard index < limit else { throw reader.failure("address index out of range") }
          values.append(UInt32(truncatingIfNeeded: index))
        }
        return values
      }
      func ports() throws -> [UInt16] {
        var values: [UInt16] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(UInt16(truncatingIfNeeded: try reader.varint())) }
        return values
      }
      clients = try indices()
      clientPorts.reserveCapacity(count)
      for _ in 0..<count { clientPorts.append(UInt16(littleEndian: try reader.fixed(UInt16.self))) }
      services = try indices()
      servicePorts = try ports()
      pods = try indices()
      podPorts = try ports()
      methods = try reader.bytes(count)
      pres.reserveCapacity(count)
      var pre: Int64 = 0
      for _ in 0..<count {
        pre &+= unzigzag(try reader.varint())
        pres.append(pre)
      }
      posts.reserveCapacity(count)
      for i in 0..<count { posts.append(pres[i] &+ unzigzag(try reader.varint())) }
    }

    /// Entry `i` as a ``StoredConnection``.
    func entry(_ i: Int) -> StoredConnection {
      StoredConnection(
        slot: slots[i], timeMicros: times[i], proto: protos[i], client: addresses[Int(clients[i])],
        clientPort: clientPorts[i], service: addresses[Int(services[i])], servicePort: servicePorts[i],
        pod: addresses[Int(pods[i])], podPort: podPorts[i], method: methods[i],
        preID: pres[i] == 0 ? nil : pres[i] &- 1, postID: posts[i] == 0 ? nil : posts[i] &- 1)
    }

    /// The dictionary index of `address`, `nil` when no connection of the block has it.
    func index(of address: IPAddress) -> UInt32? {
      addresses.firstIndex(of: address).map { UInt32($0) }
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
      T(bigEndian: try fixed(T.self))
    }

    /// The next `T`'s bytes as stored (no byte order conversion).
    mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
      let size = MemoryLayout<T>.size
      guard position + size <= raw.count else { throw failure("truncated") }
      defer { position += size }
      return raw.loadUnaligned(fromByteOffset: position, as: T.self)
    }

    /// The next `count` bytes.
    mutating func bytes(_ count: Int) throws -> [UInt8] {
      guard count >= 0, position + count <= raw.count else { throw failure("truncated") }
      defer { position += count }
      return Array(raw[position..<(position + count)])
    }
  }
}

/// A block of connections encoded ahead of its transaction: everything its rows hold but the
/// block id, which the insert assigns.
struct PreparedConnectionBlock: Sendable {
  var count: Int
  var minTime: Int64
  var maxTime: Int64
  /// The ``ClientBloom`` bytes.
  var bloom: [UInt8]
  /// The ``ConnectionBlock`` encoding.
  var data: [UInt8]
  /// Its distinct `block_keys` values, in key order.
  var keys: [TraceStore.BlockKey]

  /// `connections` (in the order they get ids) cut into blocks of at most
  /// ``ConnectionBlock/maxEntries``, slots numbered from 0 in each.
  static func blocks(of connections: [StoredConnection]) -> [PreparedConnectionBlock] {
    stride(from: 0, to: connections.count, by: ConnectionBlock.maxEntries).map { start in
      var entries = Array(connections[start..<min(connections.count, start + ConnectionBlock.maxEntries)])
      for index in entries.indices { entries[index].slot = UInt32(index) }
      return PreparedConnectionBlock(
        count: entries.count, minTime: entries.lazy.map(\.timeMicros).min() ?? 0,
        maxTime: entries.lazy.map(\.timeMicros).max() ?? 0, bloom: ClientBloom(entries: entries).bytes,
        data: ConnectionBlock.encode(entries), keys: sortedKeys(of: entries))
    }
  }

  /// The distinct key values of `entries`, in key order.
  static func sortedKeys(of entries: [StoredConnection]) -> [TraceStore.BlockKey] {
    TraceStore.blockKeys(entries).sorted()
  }
}
