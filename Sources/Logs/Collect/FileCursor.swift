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
  /// The file's mtime (seconds since the epoch) when it was listed; 0 when unknown. A rotated
  /// file newer than this holds lines written after the read: the cursor's file was rotated, so
  /// a live file with its inode is a reused inode, not a truncation.
  public var mtime: Int64

  /// The file was read to its end and is final (a rotated file): reading goes on in the next
  /// newer file without reading this one again. A cursor rests here while the newer file is still
  /// empty, so that no cursor names a file by an empty fingerprint.
  public var isComplete: Bool
  /// The encoding the cursor was read from (``version`` for a new one). Version 1 cursors with an
  /// empty fingerprint named an empty file by its inode alone; they are resolved as before.
  var encoding: UInt8

  /// How many leading bytes identify a file.
  public static let fingerprintLength = 64

  /// The encoding's version (the first byte of ``SourceCursor/state``). Version 2 adds a flags
  /// byte and the mtime after the three integers; version 1 (neither) is still read.
  static let version: UInt8 = 2

  public init(
    inode: UInt64, fingerprint: [UInt8], size: UInt64, offset: UInt64, isComplete: Bool = false, mtime: Int64 = 0
  ) {
    self.inode = inode
    self.fingerprint = Array(fingerprint.prefix(Self.fingerprintLength))
    self.size = size
    self.offset = offset
    self.isComplete = isComplete
    self.mtime = mtime
    self.encoding = Self.version
  }

  /// Reads a cursor a log file source made; `nil` for another kind or encoding.
  public init?(_ cursor: SourceCursor) {
    let state = cursor.state
    guard cursor.kind == Self.kind, let encoding = state.first else { return nil }
    func field(_ index: Int, at start: Int? = nil) -> UInt64 {
      let base = start ?? 1 + index * 8
      return (0..<8).reduce(0) { value, byte in value | UInt64(state[base + byte]) << (8 * UInt64(byte)) }
    }
    switch encoding {
    case 1 where state.count >= 25:
      self.init(inode: field(0), fingerprint: Array(state[25...]), size: field(1), offset: field(2))
    case 2 where state.count >= 34:
      self.init(
        inode: field(0), fingerprint: Array(state[34...]), size: field(1), offset: field(2),
        isComplete: state[25] & 1 != 0, mtime: Int64(bitPattern: field(3, at: 26)))
    default:
      return nil
    }
    self.encoding = encoding
  }

  /// `true` for a cursor that names no file content: nothing was read yet (a version 2 cursor
  /// with an empty fingerprint, made when every file was empty).
  var isFresh: Bool { fingerprint.isEmpty && encoding >= 2 }

  /// The cursor as the pipeline and the store carry it: version, inode, size, offset (UInt64
  /// little-endian each), flags (bit 0: complete), mtime (Int64 little-endian), then the
  /// fingerprint.
  public var sourceCursor: SourceCursor {
    var state: [UInt8] = [Self.version]
    state.reserveCapacity(34 + fingerprint.count)
    func append(_ value: UInt64) {
      for byte in 0..<8 { state.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte)))) }
    }
    for value in [inode, size, offset] { append(value) }
    state.append(isComplete ? 1 : 0)
    append(UInt64(bitPattern: mtime))
    state += fingerprint
    return SourceCursor(kind: Self.kind, state: state)
  }
}
