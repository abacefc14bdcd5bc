import Foundation
public import SVCTraceCore

/// Reads a log file from the local disk (`collect --from-file NODE=PATH`), plain or gzip.
///
/// The cursor works as for ``LogFileSource``: the same file ingested twice yields nothing new,
/// a file that grew yields only its new lines. A gzip file is decompressed whole on each pull
/// and returned in one chunk. The file is treated as final: an unterminated last line is
/// returned with a `\n` appended.
public struct LocalFileSource: CaptureSource {
  public let node: HostID
  /// The local path.
  public let path: String

  public init(node: HostID, path: String) {
    self.node = node
    self.path = path
  }

  public var sourceID: String { "local:" + path }

  /// The reference time for the years of traditional (`Mmm dd hh:mm:ss`) timestamps in the file:
  /// its modification time (when its last line was written, for a log copied with its times or
  /// rotated in place), never later than `nowMicros`; `nowMicros` when the file cannot be read.
  /// A log that ended months ago then gets the years it was written in, as long as it spans
  /// less than a year.
  public func yearReferenceMicros(nowMicros: Int64) -> Int64 {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
      let modified = attributes[.modificationDate] as? Date
    else { return nowMicros }
    let micros = modified.timeIntervalSince1970 * 1_000_000
    guard micros.isFinite, micros > 0, micros < Double(nowMicros) else { return nowMicros }
    return Int64(micros)
  }

  public func pull(after stored: SourceCursor?, maxBytes: Int) async throws -> SourceChunk {
    let cursor = stored.flatMap(FileCursor.init)
    if let stored, cursor == nil {
      throw CaptureError(
        host: node, operation: "resume \(path)", cause: .invalidData,
        message: "the stored cursor is a '\(stored.kind)' cursor, not a log file's")
    }
    let attributes: [FileAttributeKey: Any]
    do {
      attributes = try FileManager.default.attributesOfItem(atPath: path)
    } catch {
      let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code
      throw CaptureError(
        host: node, operation: "read \(path)", cause: .system(errno: code.map(Int32.init) ?? ENOENT),
        message: "no such readable file")
    }
    let inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw CaptureError(
        host: node, operation: "read \(path)", cause: .system(errno: errno), message: "cannot open the file")
    }
    defer { try? handle.close() }
    let magic = [UInt8](handle.readData(ofLength: 2))
    var offset: UInt64 = 0
    let fileSize: UInt64
    if Gzip.isGzip(magic) {
      let content: [UInt8]
      do {
        content = try await Gzip.decompress(fileAt: path)
      } catch {
        throw CaptureError(host: node, operation: "decompress \(path)", cause: .decompression, message: "\(error)")
      }
      fileSize = UInt64(content.count)
      if let cursor, content.starts(with: cursor.fingerprint), fileSize >= cursor.offset { offset = cursor.offset }
      let rest = Array(content[Int(offset)...])
      return chunk(
        rest, from: offset, total: fileSize, inode: inode,
        prefix: Array(content.prefix(FileCursor.fingerprintLength)), caughtUp: true)
    }
    handle.seek(toFileOffset: 0)
    let prefix = [UInt8](handle.readData(ofLength: FileCursor.fingerprintLength))
    fileSize = handle.seekToEndOfFile()
    if let cursor, prefix.starts(with: cursor.fingerprint), fileSize >= cursor.offset { offset = cursor.offset }
    let limit = Int(min(UInt64(max(maxBytes, 4096)), fileSize - offset))
    // Read straight into the chunk's array (no intermediate Data).
    var readError: Int32 = 0
    var content = [UInt8](unsafeUninitializedCapacity: limit) { buffer, count in
      guard let base = buffer.baseAddress else { return }
      while count < limit {
        let got = pread(handle.fileDescriptor, base + count, limit - count, off_t(offset) + off_t(count))
        if got < 0, errno == EINTR { continue }
        guard got > 0 else {
          if got < 0 { readError = errno }
          return
        }
        count += got
      }
    }
    guard readError == 0 else {
      throw CaptureError(
        host: node, operation: "read \(path)", cause: .system(errno: readError),
        message: String(cString: strerror(readError)))
    }
    let atEnd = offset + UInt64(content.count) >= fileSize
    if atEnd {
      return chunk(content, from: offset, total: fileSize, inode: inode, prefix: prefix, caughtUp: true)
    }
    // Whole lines only: the rest is read again by the next pull.
    let consumed = content.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? content.count
    content.removeLast(content.count - consumed)
    return chunk(content, from: offset, total: fileSize, inode: inode, prefix: prefix, caughtUp: false)
  }

  private func chunk(
    _ data: [UInt8], from offset: UInt64, total: UInt64, inode: UInt64, prefix: [UInt8], caughtUp: Bool
  ) -> SourceChunk {
    var data = data
    let newOffset = offset + UInt64(data.count)
    let transferred = data.count
    if caughtUp, let last = data.last, last != UInt8(ascii: "\n") { data.append(UInt8(ascii: "\n")) }
    return SourceChunk(
      data: data, cursor: FileCursor(inode: inode, fingerprint: prefix, size: total, offset: newOffset).sourceCursor,
      isCaughtUp: caughtUp, transferredBytes: transferred, file: path, events: [])
  }
}
