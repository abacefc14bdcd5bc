import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The raw text of stored lines, kept out of the database: append-only segment files in a
/// directory beside the store (`<store>.raw/segment-<n>`), referenced from `line_blocks` by
/// segment and offset.
///
/// Through SQLite the text would be written twice (WAL, then checkpoint) page by page; as a file
/// it is written once. Appends happen inside the batch's write transaction — SQLite's write lock
/// makes the appender exclusive, also across processes — and are flushed to disk before the
/// transaction commits, so a committed block never points at text that a crash lost. Bytes of a
/// transaction that then fails stay unreferenced in the segment (truncated away when possible).
/// A segment is closed at ``segmentBytes``; `prune` deletes segments no block refers to.
final class RawSegments: @unchecked Sendable {
  let directory: String
  /// A segment takes appends until it holds this many bytes (256 MiB).
  let segmentBytes: Int64

  init(directory: String, segmentBytes: Int64 = 256 << 20) {
    self.directory = directory
    self.segmentBytes = segmentBytes
  }

  /// The path of segment `number`.
  func path(_ number: Int64) -> String { directory + "/segment-\(number)" }

  /// Appends `bytes` to segment `current` (or the next one when it is full) and flushes them;
  /// returns where they went. Call with the store's write lock held.
  ///
  /// - Throws: ``StoreError`` naming the file when it cannot be written.
  func append(_ bytes: UnsafeRawBufferPointer, current: Int64) throws -> (segment: Int64, offset: Int64) {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var segment = current
    var descriptor = try openForAppend(segment)
    var size = try self.size(descriptor, segment)
    if size >= segmentBytes {
      close(descriptor)
      segment += 1
      descriptor = try openForAppend(segment)
      size = try self.size(descriptor, segment)
    }
    defer { close(descriptor) }
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return (segment, size) }
    var written = 0
    while written < bytes.count {
      let result = pwrite(descriptor, base + written, bytes.count - written, off_t(size) + off_t(written))
      if result < 0, errno == EINTR { continue }
      guard result > 0 else {
        let message = String(cString: strerror(errno))
        _ = ftruncate(descriptor, off_t(size))
        throw StoreError(operation: "write \(path(segment))", message: message)
      }
      written += result
    }
    guard fdatasync(descriptor) == 0 else {
      let message = String(cString: strerror(errno))
      _ = ftruncate(descriptor, off_t(size))
      throw StoreError(operation: "flush \(path(segment))", message: message)
    }
    return (segment, size)
  }

  /// Drops bytes appended at `offset` by a transaction that failed (when nothing came after).
  func discard(segment: Int64, from offset: Int64, length: Int) {
    let descriptor = open(path(segment), O_WRONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    var status = stat()
    if fstat(descriptor, &status) == 0, Int64(status.st_size) == offset + Int64(length) {
      _ = ftruncate(descriptor, off_t(offset))
    }
  }

  /// `length` bytes of segment `segment` from `offset`.
  ///
  /// - Throws: ``StoreError`` when the segment is missing or shorter.
  func read(segment: Int64, offset: Int64, length: Int) throws -> [UInt8] {
    let descriptor = open(path(segment), O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw StoreError(operation: "read \(path(segment))", message: String(cString: strerror(errno)))
    }
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: length)
    var done = 0
    while done < length {
      let result = bytes.withUnsafeMutableBytes { buffer -> Int in
        guard let base = buffer.baseAddress else { return 0 }
        return pread(descriptor, base + done, length - done, off_t(offset) + off_t(done))
      }
      if result < 0, errno == EINTR { continue }
      guard result > 0 else {
        throw StoreError(
          operation: "read \(path(segment))", message: result == 0 ? "shorter than the store says" : String(cString: strerror(errno)))
      }
      done += result
    }
    return bytes
  }

  /// Deletes the segment files below `current` that are not in `referenced`.
  func deleteUnreferenced(_ referenced: Set<Int64>, current: Int64) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
    for name in names where name.hasPrefix("segment-") {
      guard let number = Int64(name.dropFirst("segment-".count)), number < current, !referenced.contains(number) else {
        continue
      }
      try? FileManager.default.removeItem(atPath: path(number))
    }
  }

  private func openForAppend(_ segment: Int64) throws -> Int32 {
    let descriptor = open(path(segment), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw StoreError(operation: "open \(path(segment))", message: String(cString: strerror(errno)))
    }
    return descriptor
  }

  private func size(_ descriptor: Int32, _ segment: Int64) throws -> Int64 {
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      let message = String(cString: strerror(errno))
      close(descriptor)
      throw StoreError(operation: "stat \(path(segment))", message: message)
    }
    return Int64(status.st_size)
  }
}
