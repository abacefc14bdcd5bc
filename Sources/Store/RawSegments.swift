import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Where a batch's raw text went: a segment file and the offset of its first byte.
struct RawLocation: Sendable, Equatable {
  var segment: Int64
  var offset: Int64
}

/// The raw text of stored lines, kept out of the database: append-only segment files in a
/// directory beside the store (`<store>.raw/segment-<n>`), referenced from `line_blocks` by
/// segment and offset (`line_raw`).
///
/// Through SQLite the text would be written twice (WAL, then checkpoint) page by page; as a file
/// it is written once. Each writer (``RawSegmentWriter``: one per collecting node) appends only
/// to segments it holds an exclusive `flock` on, so writers of several nodes and processes
/// never share a file and need no database lock: the text is written and flushed before its
/// batch's transaction starts, and a committed block never points at text a crash lost.
/// Segments written since v5 get random numbers ≥ ``lockedNumbers``; smaller numbers are
/// segments of older versions (appended under the store's write lock), only read.
final class RawSegments: Sendable {
  let directory: String
  /// A segment takes appends until it holds this many bytes (256 MiB).
  let segmentBytes: Int64

  /// Segment numbers from here up belong to writers that lock them.
  static let lockedNumbers: Int64 = 1 << 40

  init(directory: String, segmentBytes: Int64 = 256 << 20) {
    self.directory = directory
    self.segmentBytes = segmentBytes
  }

  /// The path of segment `number`.
  func path(_ number: Int64) -> String { directory + "/segment-\(number)" }

  /// A writer appending to segments of this directory (see ``RawSegmentWriter``).
  func makeWriter() -> RawSegmentWriter { RawSegmentWriter(segments: self) }

  /// `length` bytes of segment `segment` from `offset`.
  ///
  /// - Throws: ``StoreError`` when the segment is missing or shorter.
  func read(segment: Int64, offset: Int64, length: Int) throws -> [UInt8] {
    let descriptor = open(path(segment), O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw StoreError(operation: "read \(path(segment))", errno: errno)
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
        throw result == 0
          ? StoreError(operation: "read \(path(segment))", message: "shorter than the store says")
          : StoreError(operation: "read \(path(segment))", errno: errno)
      }
      done += result
    }
    return bytes
  }

  /// Deletes the segment files no stored block refers to and no writer holds.
  ///
  /// The segments `referenced` does not name are locked, and `referenced` is asked again only
  /// then: a writer keeps its lock until the last batch it wrote there has committed, so a
  /// segment locked here and still unreferenced is garbage (left by a crash, or by a commit that
  /// failed). Only candidates are opened, however many segments the store has.
  func deleteUnreferenced(_ referenced: () throws -> Set<Int64>) rethrows {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
    let before = try referenced()
    var held: [(number: Int64, descriptor: Int32)] = []
    defer { for segment in held { close(segment.descriptor) } }
    for name in names where name.hasPrefix("segment-") {
      guard let number = Int64(name.dropFirst("segment-".count)), !before.contains(number) else { continue }
      let descriptor = open(path(number), O_RDONLY | O_CLOEXEC)
      guard descriptor >= 0 else { continue }
      guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
        close(descriptor)
        continue
      }
      held.append((number, descriptor))
    }
    guard !held.isEmpty else { return }
    let keep = try referenced()
    for segment in held where !keep.contains(segment.number) {
      unlink(path(segment.number))
    }
  }
}

/// Appends batches' raw text to segment files, one owner of their descriptors.
///
/// Writes run on the writer's own serial queue (blocking file I/O stays off the cooperative
/// thread pool) in the order they were requested. Large writes bypass the page cache
/// (`O_DIRECT`, from the batch's own memory, each batch in its own 4 KiB blocks): a buffered
/// write copies every byte into the page cache and its flush costs several times the direct
/// write's. The writer holds an exclusive `flock` on every segment it opened until
/// ``close()``; the caller reports each committed batch (``committed(_:length:)``) so that
/// ``close()`` can cut away the text of batches that never committed.
final class RawSegmentWriter: Sendable {
  /// Runs the writes, in the order requested, off the cooperative thread pool.
  private let queue = DispatchQueue(label: "svctrace.raw-segments")
  /// The open segments; only the work on `queue` takes the lock (it is never contended).
  private let state: Mutex<State>

  /// Writes at least this long go around the page cache.
  static let directThreshold = 256 << 10
  /// Alignment of direct writes (offset, length and buffer).
  static let alignment = 4096

  init(segments: RawSegments) {
    self.state = Mutex(State(segments: segments))
  }

  deinit {
    state.withLock { $0.release() }
  }

  /// Schedules an append of `bytes`; the result tells where they went once they are on disk.
  func append(_ bytes: [UInt8]) -> PendingRawWrite {
    let pending = PendingRawWrite()
    queue.async {
      pending.complete(Result { try bytes.withUnsafeBytes { try self.write($0) } })
    }
    return pending
  }

  /// Appends `bytes` and flushes them, blocking the caller (who must not be on the
  /// cooperative pool for long; the store's commit path uses it inside its transaction).
  func appendNow(_ bytes: UnsafeRawBufferPointer) throws -> RawLocation {
    try queue.sync { try write(bytes) }
  }

  /// The body of an append (on `queue`).
  private func write(_ bytes: UnsafeRawBufferPointer) throws -> RawLocation {
    try state.withLock { try $0.write(bytes) }
  }

  /// Records that the batch written at `location` (`length` bytes) is committed.
  func committed(_ location: RawLocation, length: Int) {
    queue.async {
      self.state.withLock { state in
        guard let index = state.open.firstIndex(where: { $0.number == location.segment }) else { return }
        state.open[index].committedEnd = max(state.open[index].committedEnd, location.offset + Int64(length))
        state.open[index].uncommitted -= 1
      }
    }
  }

  /// Drops the text written at `location` by a batch whose transaction failed. Only for a
  /// writer used one batch at a time (nothing written after it).
  func discard(_ location: RawLocation) {
    queue.sync {
      state.withLock { state in
        guard let index = state.open.firstIndex(where: { $0.number == location.segment }),
          location.offset >= state.open[index].committedEnd, location.offset < state.open[index].size
        else { return }
        state.open[index].uncommitted -= 1
        if ftruncate(state.open[index].descriptor, off_t(location.offset)) == 0 {
          state.open[index].size = location.offset
        }
      }
    }
  }

  /// Cuts away the text of batches that did not commit, removes segments this writer created
  /// and nothing committed in, and releases every segment. Waits for scheduled writes.
  func close() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      queue.async {
        self.state.withLock { $0.closeSegments() }
        continuation.resume()
      }
    }
  }

  /// ``close()`` blocking the caller.
  func closeNow() {
    queue.sync { state.withLock { $0.closeSegments() } }
  }

  /// `value` rounded up to the alignment.
  static func roundUp(_ value: Int64) -> Int64 {
    let alignment = Int64(Self.alignment)
    return (value + alignment - 1) / alignment * alignment
  }
}

extension RawSegmentWriter {
  /// The writer's segments and buffers, behind its lock. Unchecked only for its staging block:
  /// memory the state owns alone and reaches only through the writer's `Mutex`.
  struct State: @unchecked Sendable {
    let segments: RawSegments
    /// An open, locked segment.
    struct OpenSegment {
      var number: Int64
      var descriptor: Int32
      /// Bytes in the file (the next buffered append goes there; a direct one rounds up).
      var size: Int64
      /// The end of the text of committed batches (or the size found when the file was opened).
      var committedEnd: Int64
      /// Created by this writer (removed on close if nothing in it committed).
      var created: Bool
      /// Batches written here and neither committed nor discarded yet.
      var uncommitted = 0
    }

    var open: [OpenSegment] = []
    var staging: UnsafeMutableRawPointer?
    var directUnsupported = false
    var closed = false

    init(segments: RawSegments) {
      self.segments = segments
    }

    /// Closes the descriptors and frees the staging block (the writer is going away).
    mutating func release() {
      for segment in open { Glibc.close(segment.descriptor) }
      open.removeAll()
      staging?.deallocate()
      staging = nil
    }

    mutating func closeSegments() {
      for segment in open {
        if segment.created, segment.committedEnd == 0 {
          unlink(segments.path(segment.number))
        } else if segment.size > segment.committedEnd {
          _ = ftruncate(segment.descriptor, off_t(segment.committedEnd))
        }
        Glibc.close(segment.descriptor)
      }
      open.removeAll()
      closed = true
    }

    /// The body of an append (on `queue`).
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws -> RawLocation {
      guard !closed else { throw StoreError(operation: "write \(segments.directory)", message: "the writer is closed") }
      let index = try writableSegment()
      let direct = bytes.count >= RawSegmentWriter.directThreshold && !directUnsupported
      let start = direct ? RawSegmentWriter.roundUp(open[index].size) : open[index].size
      var segment = open[index]
      var first = start
      do {
        if direct {
          do {
            first = try writeDirect(bytes, to: segment, at: start)
          } catch is DirectIOUnsupported {
            directUnsupported = true
            try writeBuffered(bytes, to: segment, at: start)
          }
        } else {
          try writeBuffered(bytes, to: segment, at: start)
        }
        guard fdatasync(segment.descriptor) == 0 else {
          throw StoreError(
            operation: "flush \(segments.path(segment.number))", errno: errno)
        }
      } catch {
        // Nothing after `start` is committed: cut it off again.
        _ = ftruncate(segment.descriptor, off_t(open[index].size))
        throw error
      }
      var status = stat()
      segment.size = fstat(segment.descriptor, &status) == 0 ? Int64(status.st_size) : first + Int64(bytes.count)
      segment.uncommitted += 1
      open[index] = segment
      return RawLocation(segment: segment.number, offset: first)
    }

    /// The index in `open` of a segment with room, opening or creating one when needed.
    ///
    /// Full segments with no batch waiting for its commit are released on the way (a prune may
    /// delete them once nothing refers to them).
    mutating func writableSegment() throws -> Int {
      if let last = open.indices.last, open[last].size < segments.segmentBytes { return last }
      // Every open segment is full now.
      for segment in open where segment.uncommitted == 0 { Glibc.close(segment.descriptor) }
      open.removeAll { $0.uncommitted == 0 }
      try FileManager.default.createDirectory(
        atPath: segments.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      open.append(try reuseSegment() ?? createSegment())
      return open.count - 1
    }

    /// A segment of this kind with room that no one holds, locked.
    mutating func reuseSegment() -> OpenSegment? {
      guard let names = try? FileManager.default.contentsOfDirectory(atPath: segments.directory) else { return nil }
      let mine = Set(open.map(\.number))
      for name in names.sorted() where name.hasPrefix("segment-") {
        guard let number = Int64(name.dropFirst("segment-".count)), number >= RawSegments.lockedNumbers,
          !mine.contains(number)
        else { continue }
        let descriptor = Glibc.open(segments.path(number), O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { continue }
        var status = stat()
        // Locked, still linked (prune unlinks only while holding the lock) and not full.
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0, fstat(descriptor, &status) == 0, status.st_nlink > 0,
          Int64(status.st_size) < segments.segmentBytes
        else {
          Glibc.close(descriptor)
          continue
        }
        let size = Int64(status.st_size)
        return OpenSegment(number: number, descriptor: descriptor, size: size, committedEnd: size, created: false)
      }
      return nil
    }

    /// A new segment with a random number, locked.
    mutating func createSegment() throws -> OpenSegment {
      for _ in 0..<16 {
        let number = Int64.random(in: RawSegments.lockedNumbers..<(Int64.max >> 1))
        let path = segments.path(number)
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor < 0, errno == EEXIST { continue }
        guard descriptor >= 0 else {
          throw StoreError(operation: "create \(path)", errno: errno)
        }
        var status = stat()
        // A prune may take an empty, unlocked segment between the create and the lock.
        guard flock(descriptor, LOCK_EX) == 0, fstat(descriptor, &status) == 0, status.st_nlink > 0 else {
          Glibc.close(descriptor)
          continue
        }
        return OpenSegment(number: number, descriptor: descriptor, size: 0, committedEnd: 0, created: true)
      }
      throw StoreError(
        operation: "create a raw segment in \(segments.directory)", message: "no free name after 16 tries")
    }

    private struct DirectIOUnsupported: Error {}

    /// Linux's `O_DIRECT` (Glibc leaves it out without `_GNU_SOURCE`); 0 where unknown.
    #if os(Linux) && (arch(x86_64) || arch(i386))
      static let directFlag: Int32 = 0o40000
    #elseif os(Linux) && (arch(arm64) || arch(arm))
      static let directFlag: Int32 = 0o200000
    #else
      static let directFlag: Int32 = 0
    #endif

    /// `pwrite` of all of `bytes` at `offset`.
    mutating func writeBuffered(_ bytes: UnsafeRawBufferPointer, to segment: OpenSegment, at offset: Int64) throws {
      guard let base = bytes.baseAddress else { return }
      var written = 0
      while written < bytes.count {
        let result = pwrite(segment.descriptor, base + written, bytes.count - written, off_t(offset) + off_t(written))
        if result < 0, errno == EINTR { continue }
        guard result > 0 else {
          throw StoreError(
            operation: "write \(segments.path(segment.number))", errno: errno)
        }
        written += result
      }
    }

    /// Writes `bytes` with `O_DIRECT` straight from the caller's memory, and returns the offset
    /// of their first byte.
    ///
    /// Direct I/O wants the memory address, the file offset and the length aligned. The bytes
    /// go to the file at `start` (aligned) plus their address's remainder, so every whole block
    /// of them is written from where it is; only the first and the last partial block are copied
    /// into a staging block (zero-padded) — a few KiB per batch instead of the whole batch.
    mutating func writeDirect(_ bytes: UnsafeRawBufferPointer, to segment: OpenSegment, at start: Int64) throws -> Int64
    {
      guard let base = bytes.baseAddress else { return start }
      let flags = fcntl(segment.descriptor, F_GETFL)
      guard Self.directFlag != 0, flags >= 0, fcntl(segment.descriptor, F_SETFL, flags | Self.directFlag) == 0 else {
        throw DirectIOUnsupported()
      }
      defer { _ = fcntl(segment.descriptor, F_SETFL, flags) }
      let alignment = RawSegmentWriter.alignment
      let shift = Int(bitPattern: base) & (alignment - 1)
      let head = shift == 0 ? 0 : min(alignment - shift, bytes.count)
      let middle = (bytes.count - head) / alignment * alignment
      let tail = bytes.count - head - middle
      let block = try stagingBlock()
      var offset = start
      var first = true
      /// Writes `length` aligned bytes at `offset`.
      func put(_ pointer: UnsafeRawPointer, _ length: Int) throws {
        var written = 0
        while written < length {
          let result = pwrite(segment.descriptor, pointer + written, length - written, off_t(offset) + off_t(written))
          if result < 0, errno == EINTR { continue }
          if result < 0, errno == EINVAL, first { throw DirectIOUnsupported() }
          guard result > 0, result % alignment == 0 || written + result == length else {
            throw result < 0
              ? StoreError(operation: "write \(segments.path(segment.number))", errno: errno)
              : StoreError(operation: "write \(segments.path(segment.number))", message: "short direct write")
          }
          written += result
          first = false
        }
        offset += Int64(length)
      }
      if head > 0 {
        block.initializeMemory(as: UInt8.self, repeating: 0, count: alignment)
        (block + shift).copyMemory(from: base, byteCount: head)
        try put(block, alignment)
      }
      if middle > 0 { try put(base + head, middle) }
      if tail > 0 {
        block.initializeMemory(as: UInt8.self, repeating: 0, count: alignment)
        block.copyMemory(from: base + head + middle, byteCount: tail)
        try put(block, alignment)
      }
      return start + Int64(shift)
    }

    /// The aligned staging block of direct writes (allocated on first use).
    mutating func stagingBlock() throws -> UnsafeMutableRawPointer {
      if let staging { return staging }
      let block = UnsafeMutableRawPointer.allocate(
        byteCount: RawSegmentWriter.alignment, alignment: RawSegmentWriter.alignment)
      staging = block
      return block
    }
  }
}

/// The outcome of a scheduled ``RawSegmentWriter/append(_:)``, awaited by the batch's commit.
final class PendingRawWrite: Sendable {
  private struct State {
    var result: Result<RawLocation, any Error>?
    var waiters: [CheckedContinuation<RawLocation, any Error>] = []
  }
  private let state = Mutex(State())

  /// Where the text went, once it is on disk.
  func location() async throws -> RawLocation {
    try await withCheckedThrowingContinuation { continuation in
      let ready = state.withLock { state in
        if state.result == nil { state.waiters.append(continuation) }
        return state.result
      }
      if let ready { continuation.resume(with: ready) }
    }
  }

  fileprivate func complete(_ result: Result<RawLocation, any Error>) {
    let waiting = state.withLock { state in
      state.result = result
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiting { waiter.resume(with: result) }
  }
}
