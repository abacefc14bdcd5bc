import Foundation
import Logs
package import SVCTraceCore

/// One connection as stored in a connection block (see ``ConnectionBlock``).
package struct StoredConnection: Equatable, Sendable {
  /// Position in its block: the connection id is `block id << 24 | slot`.
  package var slot: UInt32
  package var timeMicros: Int64
  package var proto: UInt8
  package var client: IPAddress
  package var clientPort: UInt16
  package var service: IPAddress
  package var servicePort: UInt16
  /// The endpoint; ``noPod`` and port 0 when ``method`` is ``MatchMethod/podUnknown``.
  package var pod: IPAddress
  package var podPort: UInt16
  /// ``MatchMethod`` raw value.
  package var method: UInt8

  /// What the pod column holds for a connection without a pod (the unspecified address `::`;
  /// the method, not the address, says there is no pod).
  package static let noPod = IPAddress(high: 0, low: 0)

  /// Whether the connection has a pod (its method is not ``MatchMethod/podUnknown``).
  package var hasPod: Bool { method != MatchMethod.podUnknown.rawValue }
  package var preID: Int64?
  package var postID: Int64?
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
///     u8[]     methods (a ``MatchMethod/podUnknown`` entry has no pod: its pod index points at
///              ``StoredConnection/noPod``, its pod port is 0, it has no post line id and no
///              `pod` block key)
///     zigzag[] pre line id + 1 (0 = none) minus the previous entry's
///     zigzag[] post line id + 1 (0 = none) minus the same entry's pre value
///
/// Entries are in slot order; blocks written by a commit hold them in time order too, so the
/// time deltas are small and non-negative. A block of 30 k connections takes ≈ 15 bytes per
/// connection (addresses repeat, ports and ids are deltas) and decodes in about a millisecond.
package enum ConnectionBlock {
  package static let version: UInt8 = 1
  /// The most entries one block holds (slots must fit in 24 bits; smaller keeps decoding cheap).
  package static let maxEntries = 1 << 16

  /// Encodes `entries` (sorted by slot, slots distinct).
  package static func encode(_ entries: [StoredConnection]) -> [UInt8] {
    encode(entries, AddressColumns(entries))
  }

  /// ``encode(_:)`` with the address columns already built.
  package static func encode(_ entries: [StoredConnection], _ columns: AddressColumns) -> [UInt8] {
    let addresses = columns.dictionary.addresses
    // Every field's worst case: a varint of 64 bits is 10 bytes, an address 17.
    let bound = 32 + entries.count * 64 + addresses.count * 17
    return ByteSink.bytes(capacity: bound) { out in
      out.u8(version)
      out.varint(UInt64(entries.count))
      let dense = entries.enumerated().allSatisfy { $0.offset == Int($0.element.slot) }
      out.u8(dense ? 0 : 1)
      if !dense {
        var previous: UInt32 = 0
        for entry in entries {
          out.varint(UInt64(entry.slot &- previous))
          previous = entry.slot
        }
      }
      var previousTime: Int64 = 0
      for entry in entries {
        out.signed(entry.timeMicros &- previousTime)
        previousTime = entry.timeMicros
      }
      for entry in entries { out.u8(entry.proto) }
      out.varint(UInt64(addresses.count))
      for address in addresses {
        if let v4 = address.ipv4 {
          out.u8(4)
          out.bigEndian(v4)
        } else {
          out.u8(6)
          out.bigEndian(address.high)
          out.bigEndian(address.low)
        }
      }
      for value in columns.clients { out.varint(UInt64(value)) }
      for entry in entries {
        out.u16(entry.clientPort)
      }
      for value in columns.services { out.varint(UInt64(value)) }
      for entry in entries { out.varint(UInt64(entry.servicePort)) }
      for value in columns.pods { out.varint(UInt64(value)) }
      for entry in entries { out.varint(UInt64(entry.podPort)) }
      for entry in entries { out.u8(entry.method) }
      var previousPre: Int64 = 0
      for entry in entries {
        let pre = entry.preID.map { $0 &+ 1 } ?? 0
        out.signed(pre &- previousPre)
        previousPre = pre
      }
      for entry in entries {
        let pre = entry.preID.map { $0 &+ 1 } ?? 0
        let post = entry.postID.map { $0 &+ 1 } ?? 0
        out.signed(post &- pre)
      }
    }
  }

  /// The distinct addresses of a block's connections, numbered in order of first appearance
  /// (client, service, pod of each connection), and each connection's three indices.
  package struct AddressColumns {
    package var dictionary = AddressDictionary()
    package var clients: [UInt32] = []
    package var services: [UInt32] = []
    package var pods: [UInt32] = []

    package init(_ entries: [StoredConnection]) {
      clients.reserveCapacity(entries.count)
      services.reserveCapacity(entries.count)
      pods.reserveCapacity(entries.count)
      for entry in entries {
        clients.append(dictionary.index(entry.client))
        services.append(dictionary.index(entry.service))
        pods.append(dictionary.index(entry.pod))
      }
    }

    /// The block's distinct `block_keys` values (clients, service address:ports, service
    /// ports, pods), in key order.
    package func keys(_ entries: [StoredConnection]) -> [TraceStore.BlockKey] {
      let addresses = dictionary.addresses
      var isClient = [Bool](repeating: false, count: addresses.count)
      var isPod = [Bool](repeating: false, count: addresses.count)
      var ports = [Bool](repeating: false, count: 1 << 16)
      // Distinct (service address index, port) pairs, numbered like addresses are.
      var services = AddressDictionary()
      for index in entries.indices {
        isClient[Int(clients[index])] = true
        if entries[index].hasPod { isPod[Int(pods[index])] = true }
        ports[Int(entries[index].servicePort)] = true
        _ = services.index(IPAddress(high: UInt64(self.services[index]), low: UInt64(entries[index].servicePort)))
      }
      var keys: [TraceStore.BlockKey] = []
      for (index, address) in addresses.enumerated() {
        if isClient[index] { keys.append(.init(kind: .client, address: address, port: 0)) }
        if isPod[index] { keys.append(.init(kind: .pod, address: address, port: 0)) }
      }
      for port in ports.indices where ports[port] {
        keys.append(.init(kind: .servicePort, address: .any, port: UInt16(port)))
      }
      for pair in services.addresses {
        keys.append(
          .init(kind: .service, address: addresses[Int(pair.high)], port: UInt16(truncatingIfNeeded: pair.low)))
      }
      return keys.sorted()
    }
  }

  /// Dense indices for distinct addresses (or any two-word values): open addressing with
  /// linear probing (the encoder asks three times per connection; a `Dictionary` hashes each
  /// time with SipHash).
  package struct AddressDictionary {
    private(set) var addresses: [IPAddress] = []
    /// Index + 1 into `addresses`, 0 for an empty slot; a power of two long.
    private var slots = [UInt32](repeating: 0, count: 64)

    /// The index of `address`, adding it on first sight.
    package mutating func index(_ address: IPAddress) -> UInt32 {
      let mask = slots.count - 1
      var slot = Self.hash(address) & mask
      while true {
        let entry = slots[slot]
        if entry == 0 { break }
        if addresses[Int(entry - 1)] == address { return entry - 1 }
        slot = (slot + 1) & mask
      }
      addresses.append(address)
      slots[slot] = UInt32(addresses.count)
      if addresses.count * 2 > slots.count { grow() }
      return UInt32(addresses.count - 1)
    }

    private mutating func grow() {
      slots = [UInt32](repeating: 0, count: slots.count * 2)
      let mask = slots.count - 1
      for (index, address) in addresses.enumerated() {
        var slot = Self.hash(address) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = UInt32(index + 1)
      }
    }

    private static func hash(_ address: IPAddress) -> Int {
      let mixed = (address.high &* 0x9E37_79B9_7F4A_7C15 ^ address.low) &* 0xC2B2_AE3D_27D4_EB4F
      return Int(truncatingIfNeeded: mixed >> 29 ^ mixed >> 3)
    }
  }

  /// Decodes a block written by ``encode(_:)``.
  ///
  /// - Throws: ``StoreError`` when the bytes are truncated or malformed.
  package static func decode(_ bytes: [UInt8]) throws -> [StoredConnection] {
    let columns = try bytes.withUnsafeBytes { try Columns(decoding: $0) }
    return (0..<columns.count).map { columns.entry($0) }
  }

  /// A decoded block kept column by column (what lookups filter on before building the few
  /// connections that match): addresses are indices into ``addresses``.
  package struct Columns {
    package var count = 0
    package var slots: [UInt32] = []
    package var times: [Int64] = []
    package var protos: [UInt8] = []
    package var addresses: [IPAddress] = []
    package var clients: [UInt32] = []
    package var clientPorts: [UInt16] = []
    package var services: [UInt32] = []
    package var servicePorts: [UInt16] = []
    package var pods: [UInt32] = []
    package var podPorts: [UInt16] = []
    package var methods: [UInt8] = []
    /// Line id + 1, 0 for none.
    package var pres: [Int64] = []
    package var posts: [Int64] = []

    /// No connections.
    package init() {}

    /// Decodes the bytes of ``ConnectionBlock/encode(_:)``.
    ///
    /// - Throws: ``StoreError`` when the bytes are truncated or malformed.
    package init(decoding raw: UnsafeRawBufferPointer) throws {
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
    package func entry(_ i: Int) -> StoredConnection {
      StoredConnection(
        slot: slots[i], timeMicros: times[i], proto: protos[i], client: addresses[Int(clients[i])],
        clientPort: clientPorts[i], service: addresses[Int(services[i])], servicePort: servicePorts[i],
        pod: addresses[Int(pods[i])], podPort: podPorts[i], method: methods[i],
        preID: pres[i] == 0 ? nil : pres[i] &- 1, postID: posts[i] == 0 ? nil : posts[i] &- 1)
    }

    /// The dictionary index of `address`, `nil` when no connection of the block has it.
    package func index(of address: IPAddress) -> UInt32? {
      addresses.firstIndex(of: address).map { UInt32($0) }
    }
  }

  // MARK: Primitives

  package static func unzigzag(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
  }

  /// A bounds-checked cursor over the encoded bytes.
  package struct Reader {
    package let raw: UnsafeRawBufferPointer
    package var position = 0

    package init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    package func failure(_ message: String) -> StoreError {
      StoreError(operation: "decode a connection block", message: "\(message) at byte \(position) of \(raw.count)")
    }

    package mutating func byte() throws -> UInt8 {
      guard position < raw.count else { throw failure("truncated") }
      defer { position += 1 }
      return raw[position]
    }

    package mutating func varint() throws -> UInt64 {
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

    package mutating func bigEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
      T(bigEndian: try fixed(T.self))
    }

    /// The next `T`'s bytes as stored (no byte order conversion).
    package mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
      let size = MemoryLayout<T>.size
      guard position + size <= raw.count else { throw failure("truncated") }
      defer { position += size }
      return raw.loadUnaligned(fromByteOffset: position, as: T.self)
    }

    /// The next `count` bytes.
    package mutating func bytes(_ count: Int) throws -> [UInt8] {
      guard count >= 0, position + count <= raw.count else { throw failure("truncated") }
      defer { position += count }
      return Array(raw[position..<(position + count)])
    }
  }
}

/// A block of connections encoded ahead of its transaction: everything its rows hold but the
/// block id, which the insert assigns.
package struct PreparedConnectionBlock: Sendable {
  package var count: Int
  package var minTime: Int64
  package var maxTime: Int64
  /// The ``ClientBloom`` bytes.
  package var bloom: [UInt8]
  /// The ``ConnectionBlock`` encoding.
  package var data: [UInt8]
  /// Its distinct `block_keys` values, in key order.
  package var keys: [TraceStore.BlockKey]

  /// `connections` (in the order they get ids) cut into blocks of at most
  /// ``ConnectionBlock/maxEntries``, slots numbered from 0 in each.
  package static func blocks(of connections: [StoredConnection]) -> [PreparedConnectionBlock] {
    stride(from: 0, to: connections.count, by: ConnectionBlock.maxEntries).map { start in
      var entries = Array(connections[start..<min(connections.count, start + ConnectionBlock.maxEntries)])
      for index in entries.indices { entries[index].slot = UInt32(index) }
      let columns = ConnectionBlock.AddressColumns(entries)
      return PreparedConnectionBlock(
        count: entries.count, minTime: entries.lazy.map(\.timeMicros).min() ?? 0,
        maxTime: entries.lazy.map(\.timeMicros).max() ?? 0, bloom: ClientBloom(entries: entries).bytes,
        data: ConnectionBlock.encode(entries, columns), keys: columns.keys(entries))
    }
  }
}
