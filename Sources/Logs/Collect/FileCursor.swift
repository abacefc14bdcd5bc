/// Where a log file source stands: which file (by identity) and how far it was read. Kept inside
/// a ``SourceCursor`` of kind ``kind``.
///
/// A file is identified by its inode and by its first bytes (up to 64, kept verbatim as the
/// fingerprint): the inode survives a rename (logrotate create mode), the first bytes survive a
/// copy or compression (copytruncate, `.2.gz`). `offset` counts bytes of the (decompressed) file
/// content that were consumed and committed — always at a line boundary.
public struct FileCursor: Sendable, Equatable {
  /// The ``SourceCursor/kind`` of log file sources (over SSH or local): kernel LOG lines.
  public static let kind = "log-file"

  /// Inode of the file when it was read (0 when unknown).
  public var inode: UInt64
  /// The file's first bytes (at most ``FileCursor/fingerprintLength``) when it was read.
  public var fingerprint: [UInt8]
  /// File size (decompressed) seen at the last read.
  public var size: UInt64
  /// Bytes consumed so far.
  public var offset: UInt64

  /// How many leading bytes identify a file.
  public static let fingerprintLength = 64

  /// The encoding's version (the first byte of ``SourceCursor/state``).
  static let version: UInt8 = 1

  public init(inode: UInt64, fingerprint: [UInt8], size: UInt64, offset: UInt64) {
    self.inode = inode
    self.fingerprint = Array(fingerprint.prefix(Self.fingerprintLength))
    self.size = size
    self.offset = offset
  }

  /// Reads a cursor a log file source made; `nil` for another kind or encoding.
  public init?(_ cursor: SourceCursor) {
    let state = cursor.state
    guard cursor.kind == Self.kind, state.count >= 25, state[0] == Self.version else { return nil }
    func field(_ index: Int) -> UInt64 {
      (0..<8).reduce(0) { value, byte in value | UInt64(state[1 + index * 8 + byte]) << (8 * UInt64(byte)) }
    }
    self.init(inode: field(0), fingerprint: Array(state[25...]), size: field(1), offset: field(2))
  }

  /// The cursor as the pipeline and the store carry it: version, inode, size, offset (UInt64
  /// little-endian each), then the fingerprint.
  public var sourceCursor: SourceCursor {
    var state: [UInt8] = [Self.version]
    state.reserveCapacity(25 + fingerprint.count)
    for value in [inode, size, offset] {
      for byte in 0..<8 { state.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte)))) }
    }
    state += fingerprint
    return SourceCursor(kind: Self.kind, state: state)
  }
}
