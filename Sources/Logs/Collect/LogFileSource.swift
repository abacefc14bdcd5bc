public import SVCTraceCore
import Synchronization

/// Incremental, rotation-safe reading of a node's log file through a ``RemoteSession``.
///
/// Each pull lists the live file and its rotated siblings — numbered (`path.1`, `path.2.gz`) or
/// named by date (logrotate `dateext`: `path-20261207`, `path-2026-12-07-1796600000.gz`), plain
/// or gzip — with inode, size, mtime and first 64 bytes, orders them by age (mtime, then the name
/// logrotate gave them), finds the file the cursor belongs to by inode and first bytes, never by
/// name (see ``FileCursor``), and reads the unread rest of that file; the caller pulls again
/// until ``SourceChunk/isCaughtUp``, which walks every newer file in order and ends on the live
/// file. While the live file is still empty, the cursor rests at the end of the newest rotated
/// file it read, so that no cursor names a file by an empty fingerprint.
///
/// Reads open the file once and check its inode on the opened descriptor, so a rotation between
/// listing and reading is detected and the pull starts over. A partial last line of the live
/// file is left for a later pull; the unterminated last line of a rotated file is final and is
/// returned with a `\n` appended. Ranges larger than ``compressionThreshold`` are compressed on
/// the node with `gzip -c -1` and decompressed locally with `gzip -dc`. A rotated `.gz` that does
/// not decompress to its end (corrupt or truncated) fails the pull, naming the file.
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
  /// The shell of a `counters` section (``RuleCounterSample/script``) run in
  /// each exchange after the log's bytes, or `nil` for none: the LOG rules' counters for the
  /// loss accounting, at no extra exec.
  public var countersScript: String?
  /// The unused part of the last exchange, for the next pull (see ``ReadAheadBox``).
  private let readAhead = ReadAheadBox()

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
    /// How logrotate named the file.
    enum Naming: Equatable {
      /// The live file.
      case live
      /// `path.N` / `path.N.gz`.
      case numbered(Int)
      /// `path-<stamp>` / `path-<stamp>.gz` (`dateext`; the stamp is digits, `-` and `_`).
      case dated(String)
    }

    /// The path on the node.
    var name: String
    var naming: Naming = .live
    var compressed = false
    var inode: UInt64
    /// Size on disk (compressed size for `.gz`).
    var size: UInt64
    /// Modification time, seconds since the epoch (logrotate and gzip keep it on rotated files).
    var mtime: Int64 = 0
    /// The first (up to 64) bytes of the decompressed content.
    var prefix: [UInt8]

    /// The name without `.gz`: a file being compressed is listed twice under one key.
    var key: Substring { compressed ? name.dropLast(3) : Substring(name) }

    /// `true` when `self` is newer than `other`: the live file first, then by mtime; within one
    /// second, `.N` by N and dated files by their stamp (newest last in logrotate's formats).
    func isNewer(than other: Candidate) -> Bool {
      switch (naming, other.naming) {
      case (.live, .live): return false
      case (.live, _): return true
      case (_, .live): return false
      default: break
      }
      if mtime != other.mtime { return mtime > other.mtime }
      switch (naming, other.naming) {
      case (.numbered(let a), .numbered(let b)): return a < b
      case (.dated(let a), .dated(let b)): return a > b
      case (.numbered, _): return true
      default: return false
      }
    }
  }

  /// Where to read next: the candidate's position in the newest-first list and the offset.
  struct Position {
    var fileIndex: Int
    var offset: UInt64
    var events: [CaptureEvent]
    /// The cursor said this (rotated, final) file was read to its end: go on to the next newer
    /// file without reading it again.
    var isComplete = false
    /// The cursor's own file was found (not lost, truncated or fresh).
    var foundCursorFile = false
  }

  public func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let position = try fileCursor(cursor)
    let limit = max(maxBytes, 4096)
    var attempt = 0
    while true {
      attempt += 1
      // The exchange of the previous pull, when it read ahead for this one; else a new one.
      let exchange: Exchange
      if attempt == 1, let ahead = readAhead.take(after: cursor) {
        exchange = ahead
      } else {
        exchange = try await self.exchange(after: position, maxBytes: limit)
      }
      do {
        var used: Set<Int> = []
        var chunk = try await pull(
          after: position, files: exchange.files, maxBytes: limit, reads: exchange.reads, used: &used)
        chunk.clock = exchange.clock
        chunk.counters = exchange.counters
        if !chunk.isCaughtUp {
          var rest = exchange
          rest.reads = exchange.reads.enumerated().filter { !used.contains($0.offset) }.map(\.element)
          // The sample goes with this pull: the next one, reusing the bytes, has none.
          rest.counters = nil
          readAhead.keep(rest, after: chunk.cursor)
        }
        return chunk
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

  private func pull(
    after cursor: FileCursor?, files: [Candidate], maxBytes: Int, reads: [ReadAhead], used: inout Set<Int>
  ) async throws -> SourceChunk {
    guard !files.isEmpty else {
      return SourceChunk(
        data: [], cursor: (cursor ?? FileCursor(inode: 0, fingerprint: [], size: 0, offset: 0)).sourceCursor,
        isCaughtUp: true,
        transferredBytes: 0, file: path, events: [])
    }
    var position = Self.locate(cursor: cursor, in: files, start: startPosition)
    // The cursor a pull that reads nothing may keep: its file was found and read to its end.
    let keepable = position.foundCursorFile && position.fileIndex > 0 ? cursor : nil
    while true {
      let file = files[position.fileIndex]
      let isNewest = position.fileIndex == 0
      // A plain file grows no more once rotated, but a late write (before the logger reopened
      // its file) is still read; a compressed one is final.
      if file.compressed ? position.isComplete : position.offset >= file.size {
        if isNewest {
          let identity =
            file.prefix.isEmpty
            ? Self.restingCursor(readPast: keepable, files: files)
            : Self.cursor(for: file, offset: position.offset, read: [], readOffset: 0)
          // Resting where it was (the live file still empty): nothing happened worth reporting.
          let resting = identity == cursor?.sourceCursor && file.prefix.isEmpty
          return SourceChunk(
            data: [], cursor: identity, isCaughtUp: true, transferredBytes: 0, file: file.name,
            events: resting ? [] : position.events)
        }
        position = Position(
          fileIndex: position.fileIndex - 1, offset: 0,
          events: position.events + [.followedRotation(file: files[position.fileIndex - 1].name)])
        continue
      }
      let data: [UInt8]
      let transferred: Int
      if let index = reads.firstIndex(where: { $0.covers(file, offset: position.offset) }) {
        (data, transferred) = (reads[index].data, reads[index].transferredBytes)
        used.insert(index)
      } else {
        (data, transferred) = try await read(file, from: position.offset, length: maxBytes)
      }
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
        // The cursor stays at the end of this file (complete): the next pull walks on to the
        // newer files, and if they are still empty the cursor keeps naming this one.
        let end = position.offset + UInt64(data.count)
        var fingerprint = file.prefix
        if position.offset == 0, data.count > fingerprint.count {
          fingerprint = Array(data.prefix(FileCursor.fingerprintLength))
        }
        let done = FileCursor(
          inode: file.inode, fingerprint: fingerprint, size: end, offset: end, isComplete: true, mtime: file.mtime)
        return SourceChunk(
          data: lines, cursor: done.sourceCursor, isCaughtUp: false, transferredBytes: transferred, file: file.name,
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
    return FileCursor(inode: file.inode, fingerprint: fingerprint, size: size, offset: offset, mtime: file.mtime)
      .sourceCursor
  }

  /// The cursor of a pull that ends on an empty live file: `readPast`, the cursor the pull
  /// started from when its rotated file was found and read to its end; else the end of the
  /// newest rotated file with content (complete); else a fresh cursor (empty fingerprint:
  /// nothing read yet).
  static func restingCursor(readPast: FileCursor?, files: [Candidate]) -> SourceCursor {
    if var previous = readPast, !previous.fingerprint.isEmpty {
      previous.isComplete = true
      return previous.sourceCursor
    }
    if let newest = files.dropFirst().first(where: { !$0.prefix.isEmpty }) {
      // A compressed file's decompressed size is not listed; the complete flag is what counts.
      let end = newest.compressed ? 0 : newest.size
      return FileCursor(
        inode: newest.inode, fingerprint: newest.prefix, size: end, offset: end, isComplete: true, mtime: newest.mtime
      ).sourceCursor
    }
    return FileCursor(inode: files[0].inode, fingerprint: [], size: 0, offset: 0).sourceCursor
  }

  /// Finds where reading resumes: the file holding the cursor and the offset in it.
  ///
  /// Rules, in order: a fresh cursor (nothing read while every file was empty) starts at the
  /// oldest file; a plain file with the cursor's inode whose first bytes still match and that
  /// is not shorter than the offset (no rotation, or create-mode rotation); else the newest file
  /// whose first bytes match (copytruncate copy, compressed rotation); else, if the live file has
  /// the cursor's inode and no rotated file is newer than the cursor's mtime, it was truncated:
  /// restart it at 0; else the file is gone: restart at the oldest file. A file is never identified by an empty fingerprint alone (only cursors of the
  /// first encoding have one; they are resolved as they were).
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
    if cursor.isFresh {
      return Position(fileIndex: files.count - 1, offset: 0, events: [])
    }
    func prefixMatches(_ file: Candidate) -> Bool {
      file.prefix.count >= cursor.fingerprint.count && file.prefix.starts(with: cursor.fingerprint)
    }
    func found(_ index: Int) -> Position {
      Position(
        fileIndex: index, offset: cursor.offset, events: index == 0 ? [] : [.followedRotation(file: files[index].name)],
        isComplete: cursor.isComplete, foundCursorFile: true)
    }
    if let index = files.firstIndex(where: {
      !$0.compressed && $0.inode == cursor.inode && prefixMatches($0) && $0.size >= cursor.offset
    }) {
      return found(index)
    }
    if !cursor.fingerprint.isEmpty,
      let index = files.firstIndex(where: { prefixMatches($0) && ($0.compressed || $0.size >= cursor.offset) })
    {
      return found(index)
    }
    // The live file has the cursor's inode: truncated in place, unless a rotated file is newer
    // than the cursor's file was (it was rotated away and the inode reused).
    if files[0].inode == cursor.inode, !files[0].compressed,
      cursor.mtime == 0 || !files.dropFirst().contains(where: { $0.mtime > cursor.mtime })
    {
      return Position(
        fileIndex: 0, offset: 0, events: [.truncated(file: files[0].name, previousOffset: cursor.offset)])
    }
    if cursor.offset == 0, cursor.fingerprint.isEmpty {
      // The cursor named an empty file that is gone; nothing of it was read.
      return Position(fileIndex: 0, offset: 0, events: [])
    }
    return Position(fileIndex: files.count - 1, offset: 0, events: [.cursorFileLost])
  }

  // MARK: The exchange

  /// What one exchange with the node brought back: the rotation listing, the clock sample and
  /// the bytes read ahead.
  struct Exchange: Sendable {
    var files: [Candidate]
    var clock: ClockOffset?
    var reads: [ReadAhead]
    /// The LOG rules' counters, read after the bytes (with ``countersScript``).
    var counters: RuleCounterSample? = nil
  }

  /// Bytes of one plain file read in the exchange, from `offset` (at most the pull's size).
  struct ReadAhead: Sendable {
    var name: String
    var inode: UInt64
    var offset: UInt64
    var data: [UInt8]
    var transferredBytes: Int

    /// `true` when these are the bytes a pull wants of `file` from `offset`.
    func covers(_ file: Candidate, offset: UInt64) -> Bool {
      !file.compressed && file.name == name && file.inode == inode && offset == self.offset
    }
  }

  /// Keeps the unused part of an exchange for the next pull of the same collect (the live file
  /// read ahead after a rotated one), so that following a rotation costs no second exchange.
  final class ReadAheadBox: Sendable {
    private let kept = Mutex<(cursor: SourceCursor, exchange: Exchange, at: ContinuousClock.Instant)?>(nil)

    func keep(_ exchange: Exchange, after cursor: SourceCursor) {
      kept.withLock { $0 = (cursor, exchange, .now) }
    }

    /// The kept exchange when the pull continues from the cursor it was kept for, within 10 s.
    func take(after cursor: SourceCursor?) -> Exchange? {
      kept.withLock { value in
        defer { value = nil }
        guard let value, value.cursor == cursor, ContinuousClock.now - value.at < .seconds(10) else { return nil }
        return value.exchange
      }
    }
  }

  /// One round trip: the rotation listing, an NTP-style clock sample, and — when there is a
  /// cursor — the bytes after it in the plain file with the cursor's inode, plus the live file
  /// from its start when the cursor's file is a rotated one. See `docs/node-reply.md`.
  func exchange(after cursor: FileCursor?, maxBytes: Int) async throws -> Exchange {
    let quoted = try ShellQuote.quote(path)
    var script = NodeReply.Script()
    // The cursor's inode, offset and first bytes (hex); digits only, nothing to quote.
    let resumeAt = cursor.flatMap { !$0.isFresh && !$0.isComplete && !$0.fingerprint.isEmpty ? $0 : nil }
    let resumable = resumeAt != nil
    let (inode, offset, fingerprint) =
      resumeAt.map { (String($0.inode), String($0.offset), Self.hex($0.fingerprint)) } ?? ("", "0", "")
    script.prelude(
      """
      p=\(quoted); m=\(maxBytes); th=\(compressionThreshold); ci=\(inode); co=\(offset); cf=\(fingerprint)
      command -v gzip >/dev/null 2>&1 && z=yes || z=no
      svct_hex() { set -- $(od -An -v -tx1 -N64); IFS=; h="$*"; unset IFS; }
      svct_f() {
        s=$(stat -L -c '%i %s %Y' -- "$1") || return 1
        case "$1" in *.gz) h=$(gzip -dc < "$1" 2>/dev/null | { svct_hex; printf %s "$h"; }) ;;
          *) svct_hex < "$1" ;; esac
        svct_list="${svct_list}F $s ${h:--} $1
      "
        [ -z "$hit" ] && [ -n "$ci" ] && [ "${s%% *}" = "$ci" ] && case "$1" in *.gz) ;; *) hit=$1 ;; esac
        return 0
      }
      svct_read() {
        exec 3< "$1" || return 3
        set -- "$1" "$2" $(stat -L -c '%i %s' /dev/fd/3) || return 3
        [ "$4" -gt "$2" ] || return 0
        if [ $(($4 - $2)) -gt "$th" ] && [ "$z" = yes ]; then
          printf 'R %s %s Z %s\\n' "$3" "$2" "$1"; tail -c +$(($2 + 1)) <&3 | head -c "$m" | gzip -c -1
        else
          printf 'R %s %s P %s\\n' "$3" "$2" "$1"; tail -c +$(($2 + 1)) <&3 | head -c "$m"
        fi
      }
      svct_list=; hit=
      # The cursor's file is still the live file, not truncated, same first bytes: no rotation
      # happened, and the rotated files are not listed (nor their first bytes decompressed).
      if [ -f "$p" ] && svct_f "$p" && [ "$hit" = "$p" ] && [ "${s#* }" != "$s" ]; then
        set -- $s
        case "$h" in "$cf"*) [ -n "$cf" ] && [ "$2" -ge "$co" ] && quick=yes ;; esac
      fi
      if [ "${quick:-no}" = no ]; then
        svct_list=; hit=
        \(Self.listingLoop)
      fi
      """,
      usesTemporaryDirectory: true)
    script.clockSection(ClockOffset.startSection)
    script.section("list", "printf '%s' \"$svct_list\"")
    if resumable {
      script.binarySection("read", "[ -n \"$hit\" ] && svct_read \"$hit\" \"$co\"")
      script.binarySection(
        "read-live", "[ -n \"$hit\" ] && [ \"$hit\" != \"$p\" ] && [ -f \"$p\" ] && svct_read \"$p\" 0")
    } else if let cursor, cursor.isComplete {
      // The cursor rests at the end of a rotated file (the live file was empty last time): what
      // comes next is, as a rule, the live file from its start.
      script.binarySection("read-live", "[ -f \"$p\" ] && svct_read \"$p\" 0")
    }
    if let countersScript {
      // After the reads: every line read was logged before the counters were read.
      script.section(RuleCounterSample.sectionName, countersScript)
    }
    script.clockSection(ClockOffset.endSection)
    let operation = "collect \(path)"
    let (reply, sent, received) = try await session.exchange(script, timeout: timeout, operation: operation)
    guard let listing = reply.section("list") else {
      throw CaptureError(host: node, operation: operation, message: "the node's reply has no listing")
    }
    var reads: [ReadAhead] = []
    for section in reply.sections where section.name.hasPrefix("read") && section.status == 0 {
      if let read = try await Self.parseRead(section.body, maxBytes: maxBytes, host: node, path: path) {
        reads.append(read)
      }
    }
    return Exchange(
      files: try Self.parseListing(listing.text, path: path, host: node),
      clock: ClockOffset(reply: reply, sentMicros: sent, receivedMicros: received), reads: reads,
      counters: reply.section(RuleCounterSample.sectionName).flatMap { RuleCounterSample.parse($0.text) })
  }

  /// Parses a read section: `R inode offset P|Z name\n` and the bytes (gzip when `Z`).
  static func parseRead(_ body: [UInt8], maxBytes: Int, host: HostID, path: String) async throws -> ReadAhead? {
    guard let newline = body.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
    let fields = body[..<newline].split(separator: UInt8(ascii: " "), maxSplits: 4, omittingEmptySubsequences: false)
    guard fields.count == 5, fields[0].elementsEqual("R".utf8),
      let inode = UInt64(String(decoding: fields[1], as: UTF8.self)),
      let offset = UInt64(String(decoding: fields[2], as: UTF8.self)),
      fields[3].elementsEqual("P".utf8) || fields[3].elementsEqual("Z".utf8)
    else {
      throw CaptureError(
        host: host, operation: "collect \(path)", cause: .invalidData,
        message: "unexpected read header '\(String(decoding: body[..<newline].prefix(200), as: UTF8.self))'")
    }
    let name = String(decoding: fields[4], as: UTF8.self)
    let payload = Array(body[(newline + 1)...])
    var data = payload
    if fields[3].elementsEqual("Z".utf8) {
      do {
        data = try await Gzip.decompress(payload, limit: maxBytes)
      } catch {
        throw CaptureError(host: host, operation: "decompress \(name)", cause: .decompression, message: "\(error)")
      }
    }
    return ReadAhead(name: name, inode: inode, offset: offset, data: data, transferredBytes: payload.count)
  }

  // MARK: Remote commands

  /// The shell loop that lists the live file and its rotations into `$svct_list` (`F inode size
  /// mtime hex name` lines, through `svct_f`), and sets `$hit` to the first plain file with the
  /// cursor's inode. Only names logrotate gives: `.N`, `-<digits, '-', '_'>`, either with `.gz`.
  static let listingLoop = """
    for f in "$p" "$p".[0-9]* "$p"-[0-9]*; do
        [ -f "$f" ] || continue
        n=${f#"$p"}; n=${n%.gz}
        case "$n" in
          '') [ "$f" = "$p" ] || continue ;;
          .*) case "${n#.}" in ''|*[!0-9]*) continue ;; esac ;;
          -*) case "${n#-}" in ''|*[!0-9_-]*) continue ;; esac ;;
          *) continue ;;
        esac
        svct_f "$f"
      done
    """

  /// Hex digits of `bytes`.
  static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Lists the live file and its rotations (numbered or dated, plain or gzip), newest first.
  func listFiles() async throws -> [Candidate] {
    try await exchange(after: nil, maxBytes: 4096).files
  }

  /// Parses the `F inode size mtime hex name` lines of ``listFiles()``.
  static func parseListing(_ text: String, path: String, host: HostID) throws -> [Candidate] {
    var files: [Candidate] = []
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false)
      guard fields.count == 6, fields[0] == "F", let inode = UInt64(fields[1]), let size = UInt64(fields[2]),
        let mtime = Int64(fields[3]), let prefix = fields[4] == "-" ? [] : decodeHex(fields[4])
      else {
        throw CaptureError(
          host: host, operation: "list \(path)", message: "unexpected listing line '\(line.prefix(200))'")
      }
      let name = String(fields[5])
      guard let (naming, compressed) = naming(of: name, path: path) else { continue }
      files.append(
        Candidate(
          name: name, naming: naming, compressed: compressed, inode: inode, size: size, mtime: mtime, prefix: prefix))
    }
    return ordered(files)
  }

  /// How logrotate named `name` (a rotation of `path`), and whether it is gzip; `nil` for a file
  /// that only looks like one (`path.bak`, `path.1.tmp`, `pathfoo`).
  static func naming(of name: String, path: String) -> (Candidate.Naming, Bool)? {
    if name == path { return (.live, false) }
    guard name.hasPrefix(path) else { return nil }
    var suffix = name.utf8.dropFirst(path.utf8.count)
    let compressed = suffix.count > 3 && suffix.suffix(3).elementsEqual(".gz".utf8)
    if compressed { suffix = suffix.dropLast(3) }
    guard let mark = suffix.first else { return nil }
    let body = suffix.dropFirst()
    let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    guard let first = body.first, isDigit(first) else { return nil }
    switch mark {
    case UInt8(ascii: "."):
      guard body.allSatisfy(isDigit), let number = Int(String(decoding: body, as: UTF8.self)) else { return nil }
      return (.numbered(number), compressed)
    case UInt8(ascii: "-"):
      guard body.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else { return nil }
      return (.dated(String(decoding: body, as: UTF8.self)), compressed)
    default:
      return nil
    }
  }

  /// The listed files newest first (see ``Candidate/isNewer(than:)``); a file listed both plain
  /// and `.gz` (compression in progress) is kept plain.
  static func ordered(_ files: [Candidate]) -> [Candidate] {
    var seen = Set<Substring>()
    let unique = files.sorted { !$0.compressed && $1.compressed }.filter { seen.insert($0.key).inserted }
    return unique.sorted { $0.isNewer(than: $1) }
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
    // gzip's own exit status goes to stderr (a pipeline reports only its last command's): a
    // corrupt or truncated .gz must not read as a shorter complete file.
    let source =
      file.compressed
      ? "{ gzip -dc <&3; echo \"\(Self.gzipStatusMark)$?\" >&2; } | tail -c +\(offset + 1)"
      : "tail -c +\(offset + 1) <&3"
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
    var data = payload
    if marker == UInt8(ascii: "Z") {
      do {
        data = try await Gzip.decompress(payload, limit: length)
      } catch {
        throw CaptureError(host: node, operation: "decompress \(file.name)", cause: .decompression, message: "\(error)")
      }
    }
    // Fewer bytes than asked means gzip ran to the end: then it must have succeeded (when head
    // stopped it early, a SIGPIPE status is expected and harmless).
    if file.compressed, data.count < length {
      let (status, messages) = Self.gzipStatus(in: result.stderrText)
      if status != 0 {
        throw CaptureError(
          host: node, operation: "read \(file.name)", cause: .decompression,
          message:
            "gzip -dc failed (exit status \(status.map(String.init) ?? "unknown")): the file is corrupt or truncated"
            + (messages.isEmpty ? "" : " (\(messages.prefix(300)))"))
      }
    }
    return (data, payload.count)
  }

  /// What the read command writes to stderr before gzip's exit status.
  static let gzipStatusMark = "svctrace-gzip-status="

  /// gzip's exit status as the read command reported it (`nil` when missing) and the rest of
  /// stderr.
  static func gzipStatus(in stderr: String) -> (Int32?, String) {
    var status: Int32?
    var rest: [Substring] = []
    for line in stderr.split(separator: "\n") {
      if line.hasPrefix(gzipStatusMark) {
        status = Int32(line.dropFirst(gzipStatusMark.count))
      } else {
        rest.append(line)
      }
    }
    return (status, rest.joined(separator: "; "))
  }
}
