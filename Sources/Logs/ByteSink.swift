/// Writes bytes into memory sized for the worst case up front: no growth check per byte (the
/// capacity is checked in debug builds, so the tests catch a wrong bound). The compact
/// encodings of the correlator state and of the store's connection blocks are written with it.
public struct ByteSink {
  @usableFromInline let base: UnsafeMutablePointer<UInt8>
  @usableFromInline let capacity: Int
  @usableFromInline var written = 0

  /// Bytes written so far.
  public var count: Int { written }

  @inlinable
  init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
    self.base = base
    self.capacity = capacity
  }

  /// An array of at most `capacity` bytes, as many as `body` writes.
  @inlinable
  public static func bytes(capacity: Int, _ body: (inout ByteSink) -> Void) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
      guard let base = buffer.baseAddress else { return }
      var sink = ByteSink(base: base, capacity: capacity)
      body(&sink)
      initialized = sink.written
    }
  }

  @inlinable
  public mutating func u8(_ value: UInt8) {
    assert(written < capacity, "encoding larger than its bound")
    base[written] = value
    written &+= 1
  }

  /// Little-endian.
  @inlinable
  public mutating func u16(_ value: UInt16) {
    u8(UInt8(truncatingIfNeeded: value))
    u8(UInt8(truncatingIfNeeded: value >> 8))
  }

  /// Little-endian.
  @inlinable
  public mutating func u32(_ value: UInt32) {
    for shift in stride(from: 0, to: 32, by: 8) { u8(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
  }

  /// Little-endian.
  @inlinable
  public mutating func u64(_ value: UInt64) {
    for shift in stride(from: 0, to: 64, by: 8) { u8(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
  }

  /// Big-endian (network order).
  @inlinable
  public mutating func bigEndian<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.bigEndian) { bytes in
      for byte in bytes { u8(byte) }
    }
  }

  /// LEB128: 7 bits a byte, low first, the high bit set on all but the last.
  @inlinable
  public mutating func varint(_ value: UInt64) {
    var value = value
    while value >= 0x80 {
      u8(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    u8(UInt8(truncatingIfNeeded: value))
  }

  /// A zigzag varint (small magnitudes of either sign take few bytes).
  @inlinable
  public mutating func signed(_ value: Int64) {
    varint(UInt64(bitPattern: value << 1 ^ value >> 63))
  }
}
