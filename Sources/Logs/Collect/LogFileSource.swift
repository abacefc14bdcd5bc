public import SVCTraceCore

/// Incremental, rotation-safe reading of a node's log file through a ``RemoteSession``.
///
/// Each pull lists the live file and its rotated siblings (`path.1`, `path.2.gz`, … numbered,
/// plain or gzip) with inode, size and first 64 bytes, finds the file the cursor belongs to
/// (see ``FileCursor``), and reads the unread rest of that file; the caller pulls again until
/// ``SourceChunk/isCaughtUp``, which walks every newer file in order and ends on the live file.
///
/// Reads open the file once and check its inode on the opened descriptor, so a rotation between
/// listing and reading is detected and the pull starts over. A partial last line of the live
/// file is left for a later pull; the unterminated last line of a rotated file is final and is
/// returned with a `\n` appended. Ranges larger than ``compressionThreshold`` are compressed on
/// the node with `gzip -c -1` and decompressed locally with `gzip -dc`.
public struct LogFileSource: CaptureSource {
  /// Where the first collect (no cursor) starts.
  public enum StartPosition: Sendable, Equatable {
    /// At the oldest rotated file still present (nothing the node kept is missed).
    case oldestFile
    /// At the start of the live file.
    case liveFile
    /// At the end of the live file (only new lines). If a line is being written at that moment,
    /// its tail is the first "line" read and the parser skips it.
    case end
  }

  public let session: any RemoteSession
  /// The live log path on the node.
  public let path: String
  public var startPosition: StartPosition
  /// Ranges above this many bytes are gzip-compressed on the node when it has `gzip`.
  public var compressionThreshold: Int
  /// Per-command timeout.
  public var timeout: Duration?

  /// The default log path written by svctrace's rsyslog drop-in.
  public static let defaultPath = "/var/log/iptables.log"

  public init(
    session: any RemoteSession, path: String = LogFileSource.defaultPath, startPosition: StartPosition = .oldestFile,
    compressionThreshold: Int = 256 * 1024, timeout: Duration? = .seconds(300)
  ) {
    self.session = session
    self.path = path
    self.startPosition = startPosition
    self.compressionThreshold = compressionThreshold
    self.timeout = timeout
  }

  public var node: HostID { session.host }
  public var sourceID: String { "file:" + path }

  /// One file of the rotation set as listed on the node.
  struct Candidate: Equatable {
    /// The path on the node.
    var name: String
    /// 0 for the live file, N for `path.N` / `path.N.gz`.
    var index: Int
    var compressed: Bool
    var inode: UInt64
    /// Size on disk (compressed size for `.gz`).
    var size: UInt64
    /// The first (up to 64) bytes of the decompressed content.
    var prefix: [UInt8]
  }

  /// Where to read next: the candidate's position in the newest-first list and the offset.
  struct Position {
    var fileIndex: Int
    var offset: UInt64
    var events: [CaptureEvent]
  }

  public func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    var attempt = 0
    while true {
      attempt += 1
      let files = try await listFiles()
      do {
        return try await pull(after: try fileCursor(cursor), files: files, maxBytes: max(maxBytes, 4096))
      } catch let race as RotationRace {
        // The file changed under us (rotated between listing and reading): list again.
        guard attempt < 4 else {
          throw CaptureError(host: node, operation: "read \(path)", cause: .inputChanging, message: race.message)
        }
      }
    }
  }

  private struct RotationRace: Error {
    var message: String
  }

  /// The position inside `cursor`, which a log file source must have made.
  private func fileCursor(_ cursor: SourceCursor?) throws -> FileCursor? {
    guard let cursor else { return nil }
    guard let position = FileCursor(cursor) else {
      throw CaptureError(
        host: node, operation: "resume \(path)", cause: .invalidData,
        message: "the stored cursor is a '\(cursor.kind)' cursor, not a log file's")
    }
    return position
  }

  private func pull(after cursor: FileCursor?, files: [Candidate], maxBytes: Int) async throws -> SourceChunk {
    guard !files.isEmpty else {
      return SourceChunk(
        data: [], cursor: (cursor ?? FileCursor(inode: 0, fingerprint: [], size: 0, offset: 0)).sourceCursor,
        isCaughtUp: true,
        transferredBytes: 0, file: path, events: [])
    }
    var position = Self.locate(cursor: cursor, in: files, start: startPosition)
    while true {
      let file = files[position.fileIndex]
      let isNewest = position.fileIndex == 0
      if !file.compressed, position.offset >= file.size {
        if isNewest {
          let identity = Self.cursor(for: file, offset: position.offset, read: [], readOffset: 0)
          return SourceChunk(
            data: [], cursor: identity, isCaughtUp: true, transferredBytes: 0, file: file.name,
            events: position.events)
        }
        position = Position(
          fileIndex: position.fileIndex - 1, offset: 0,
          events: position.events + [.followedRotation(file: files[position.fileIndex - 1].name)])
        continue
      }
      let (data, transferred) = try await read(file, from: position.offset, length: maxBytes)
      let atEnd = data.count < maxBytes
      if isNewest {
        var consumed = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        if consumed == 0, !atEnd { consumed = data.count }  // one overlong line: take it whole
        let newOffset = position.offset + UInt64(consumed)
        return SourceChunk(
          data: Array(data[..<consumed]),
          cursor: Self.cursor(for: file, offset: newOffset, read: data, readOffset: position.offset),
          isCaughtUp: atEnd, transferredBytes: transferred, file: file.name, events: position.events)
      }
      if atEnd {
        // A rotated file is final: take everything, close an unterminated last line.
        var lines = data
        if let last = lines.last, last != UInt8(ascii: "\n") { lines.append(UInt8(ascii: "\n")) }
        let next = files[position.fileIndex - 1]
        if lines.isEmpty {
          position = Position(
            fileIndex: position.fileIndex - 1, offset: 0,
            events: position.events + [.followedRotation(file: next.name)])
          continue
        }
        return SourceChunk(
          data: lines, cursor: Self.cursor(for: next, offset: 0, read: [], readOffset: 0), isCaughtUp: false,
          transferredBytes: transferred, file: file.name,
          events: position.events + [.followedRotation(file: next.name)])
      }
      let consumed = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.count
      return SourceChunk(
        data: Array(data[..<consumed]),
        cursor: Self.cursor(
          for: file, offset: position.offset + UInt64(consumed), read: data, readOffset: position.offset),
        isCaughtUp: false, transferredBytes: transferred, file: file.name, events: position.events)
    }
  }

  /// The cursor naming `file` at `offset`, with the longest fingerprint known.
  static func cursor(for file: Candidate, offset: UInt64, read: [UInt8], readOffset: UInt64) -> SourceCursor {
    var fingerprint = file.prefix
    if readOffset == 0, read.count > fingerprint.count {
      fingerprint = Array(read.prefix(FileCursor.fingerprintLength))
    }
    let size = file.compressed ? offset : max(file.size, offset)
    return FileCursor(inode: file.inode, fingerprint: fingerprint, size: size, offset: offset).sourceCursor
  }

  /// Finds where reading resumes: the file holding the cursor and the offset in it.
  ///
  /// Rules, in order: a plain file with the cursor's inode whose first bytes still match and that
  /// is not shorter than the offset (no rotation, or create-mode rotation); else the newest file
  /// whose first bytes match (copytruncate copy, compressed rotation); else, if the live file has
  /// the cursor's inode, it was truncated: restart it at 0; else the file is gone: restart at the
  /// oldest file.
  static func locate(cursor: FileCursor?, in files: [Candidate], start: StartPosition) -> Position {
    guard let cursor else {
      switch start {
      case .oldestFile:
        return Position(fileIndex: files.count - 1, offset: 0, events: [.started(file: files[files.count - 1].name)])
      case .liveFile:
        return Position(fileIndex: 0, offset: 0, events: [.started(file: files[0].name)])
      case .end:
        return Position(
          fileIndex: 0, offset: files[0].compressed ? 0 : files[0].size, events: [.started(file: files[0].name)])
      }
    }
    func prefixMatches(_ file: Candidate) -> Bool {
      file.prefix.count >= cursor.fingerprint.count && file.prefix.starts(with: cursor.fingerprint)
    }
    if let index = files.firstIndex(where: {
      !$0.compressed && $0.inode == cursor.inode && prefixMatches($0) && $0.size >= cursor.offset
    }) {
      return Position(
        fileIndex: index, offset: cursor.offset, events: index == 0 ? [] : [.followedRotation(file: files[index].name)])
    }
    if !cursor.fingerprint.isEmpty,
      let index = files.firstIndex(where: { prefixMatches($0) && ($0.compressed || $0.size >= cursor.offset) })
    {
      return Position(
        fileIndex: index, offset: cursor.offset, events: index == 0 ? [] : [.followedRotation(file: files[index].name)])
    }
    if files[0].inode == cursor.inode, !files[0].compressed {
      return Position(
        fileIndex: 0, offset: 0, events: [.truncated(file: files[0].name, previousOffset: cursor.offset)])
    }
    if cursor.offset == 0, cursor.fingerprint.isEmpty {
      // The cursor named an empty file that is gone; nothing of it was read.
      return Position(fileIndex: 0, offset: 0, events: [])
    }
    return Position(fileIndex: files.count - 1, offset: 0, events: [.cursorFileLost])
  }

  // MARK: Remote commands

  /// Lists the live file and its numbered rotations, newest first.
  func listFiles() async throws -> [Candidate] {
    let quoted = try ShellQuote.quote(path)
    let script = """
      p=\(quoted)
      for f in "$p" "$p".[0-9] "$p".[0-9][0-9] "$p".[0-9].gz "$p".[0-9][0-9].gz; do
        [ -f "$f" ] || continue
        s=$(stat -L -c '%i %s' -- "$f") || continue
        case "$f" in
          *.gz) h=$(gzip -dc < "$f" 2>/dev/null | head -c 64 | od -An -v -tx1 | tr -d ' \\n') ;;
          *) h=$(head -c 64 < "$f" | od -An -v -tx1 | tr -d ' \\n') ;;
        esac
        printf 'F %s %s %s\\n' "$s" "${h:--}" "$f"
      done
      """
    let result = try await session.run(script, stdin: nil, timeout: timeout)
    guard result.succeeded else {
      throw CaptureError(
        host: node, operation: "list \(path) and its rotations", cause: .remoteCommand(exitStatus: result.exitStatus),
        message: result.failureSummary)
    }
    return try Self.parseListing(result.stdoutText, path: path, host: node)
  }

  /// Parses the `F inode size hex name` lines of ``listFiles()``.
  static func parseListing(_ text: String, path: String, host: HostID) throws -> [Candidate] {
    var files: [Candidate] = []
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
      guard fields.count == 5, fields[0] == "F", let inode = UInt64(fields[1]), let size = UInt64(fields[2]),
        let prefix = fields[3] == "-" ? [] : decodeHex(fields[3])
      else {
        throw CaptureError(
          host: host, operation: "list \(path)", message: "unexpected listing line '\(line.prefix(200))'")
      }
      let name = String(fields[4])
      var index = 0
      var compressed = false
      if name != path {
        var suffix = name.dropFirst(path.count + 1)
        if suffix.hasSuffix(".gz") {
          compressed = true
          suffix = suffix.dropLast(3)
        }
        guard let number = Int(suffix), number > 0 else { continue }
        index = number
      }
      files.append(
        Candidate(name: name, index: index, compressed: compressed, inode: inode, size: size, prefix: prefix))
    }
    // Newest first; if both path.N and path.N.gz exist (compression in progress), prefer plain.
    files.sort { ($0.index, $0.compressed ? 1 : 0) < ($1.index, $1.compressed ? 1 : 0) }
    var seen = Set<Int>()
    return files.filter { seen.insert($0.index).inserted }
  }

  private static func decodeHex(_ text: Substring) -> [UInt8]? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count / 2)
    var high: UInt8?
    for character in text.utf8 {
      let nibble: UInt8
      switch character {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - UInt8(ascii: "a") + 10
      default: return nil
      }
      if let value = high {
        bytes.append(value << 4 | nibble)
        high = nil
      } else {
        high = nibble
      }
    }
    return high == nil ? bytes : nil
  }

  /// Reads up to `length` bytes of `file`'s (decompressed) content from `offset`.
  ///
  /// - Returns: the bytes and how many crossed the wire.
  private func read(_ file: Candidate, from offset: UInt64, length: Int) async throws -> ([UInt8], Int) {
    let remaining = file.compressed ? UInt64(length) : min(UInt64(length), file.size &- offset)
    let compress = remaining > UInt64(compressionThreshold)
    let source = file.compressed ? "gzip -dc <&3 | tail -c +\(offset + 1)" : "tail -c +\(offset + 1) <&3"
    let script = """
      command -v gzip >/dev/null 2>&1 || z=no
      f=\(try ShellQuote.quote(file.name))
      [ -r "$f" ] || exit 3
      exec 3< "$f"
      i=$(stat -L -c %i /dev/fd/3) || exit 3
      [ "$i" = \(file.inode) ] || exit 3
      if [ \(compress ? "yes" : "no") = yes ] && [ "${z:-yes}" = yes ]; then printf Z; \(source) | head -c \(length) | gzip -c -1
      else printf P; \(source) | head -c \(length); fi
      """
    let result = try await session.run(script, stdin: nil, timeout: timeout)
    if result.exitStatus == 3 {
      throw RotationRace(message: "\(file.name) changed while being read")
    }
    guard result.succeeded, let marker = result.stdout.first else {
      throw CaptureError(
        host: node, operation: "read \(file.name)", cause: .remoteCommand(exitStatus: result.exitStatus),
        message: result.failureSummary)
    }
    let payload = Array(result.stdout.dropFirst())
    if marker == UInt8(ascii: "Z") {
      do {
        return (try await Gzip.decompress(payload, limit: length), payload.count)
      } catch {
        throw CaptureError(host: node, operation: "decompress \(file.name)", cause: .decompression, message: "\(error)")
      }
    }
    return (payload, payload.count)
  }
}
