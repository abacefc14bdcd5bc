package import Logs
package import SVCTraceCore

/// A blocked Bloom filter over the (client ip, client port) pairs of one connection block, the
/// `client_bloom` column of `connection_block_data`: serves `trace --client IP:PORT` without
/// decoding blocks that cannot hold the pair.
///
/// The filter is a sequence of 64-byte lines; a key sets ``probes`` bits inside the one line its
/// hash picks, so a lookup reads 64 bytes of the blob (incremental blob I/O), never the whole
/// filter. Sized at ``bitsPerKey`` bits per key (false positives ≈ 0.1 %); no false negatives.
package struct ClientBloom: Equatable {
  package static let lineBytes = 64
  package static let bitsPerKey = 16
  package static let probes = 7

  package private(set) var bytes: [UInt8]

  /// An empty filter sized for `capacity` keys.
  package init(capacity: Int) {
    let lines = max(1, (max(capacity, 1) * Self.bitsPerKey + Self.lineBytes * 8 - 1) / (Self.lineBytes * 8))
    bytes = [UInt8](repeating: 0, count: lines * Self.lineBytes)
  }

  /// A filter over the stored bytes (length a multiple of ``lineBytes``).
  package init?(bytes: [UInt8]) {
    guard !bytes.isEmpty, bytes.count % Self.lineBytes == 0 else { return nil }
    self.bytes = bytes
  }

  /// The filter of `entries`' client pairs.
  package init(entries: [StoredConnection]) {
    self.init(capacity: entries.count)
    for entry in entries { insert(Self.hash(entry.client, entry.clientPort)) }
  }

  package var lineCount: Int { bytes.count / Self.lineBytes }

  package mutating func insert(_ hash: UInt64) {
    let base = Self.line(of: hash, lines: lineCount) * Self.lineBytes
    var bits = Self.mix(hash)
    for _ in 0..<Self.probes {
      let bit = Int(bits & 511)
      bytes[base + bit >> 3] |= 1 << UInt8(bit & 7)
      bits >>= 9
    }
  }

  package func mayContain(_ hash: UInt64) -> Bool {
    let start = Self.line(of: hash, lines: lineCount) * Self.lineBytes
    return Self.lineMayContain(hash, Array(bytes[start..<(start + Self.lineBytes)]))
  }

  /// Which line of a filter of `lines` lines `hash` lives in.
  package static func line(of hash: UInt64, lines: Int) -> Int {
    Int(((hash >> 32) &* UInt64(lines)) >> 32)
  }

  /// Whether the 64-byte `line` (the one ``line(of:lines:)`` picks) has every bit of `hash`.
  package static func lineMayContain(_ hash: UInt64, _ line: [UInt8]) -> Bool {
    guard line.count == lineBytes else { return true }
    var bits = mix(hash)
    for _ in 0..<probes {
      let bit = Int(bits & 511)
      if line[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
      bits >>= 9
    }
    return true
  }

  /// The key hash of a client address and port.
  package static func hash(_ client: IPAddress, _ port: UInt16) -> UInt64 {
    mix(mix(client.high ^ 0x6A09_E667_F3BC_C908) ^ client.low ^ UInt64(port) << 48 ^ UInt64(port))
  }

  /// SplitMix64's finalizer.
  package static func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
