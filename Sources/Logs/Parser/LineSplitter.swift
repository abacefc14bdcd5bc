#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Splits a byte stream into lines across chunk boundaries.
///
/// Lines end at `\n`; a `\r` right before it is dropped (CRLF files). Lines lying wholly inside a
/// chunk are handed out without copying; only a line cut by a chunk boundary is assembled in an
/// internal buffer (the partial tail). A final line without `\n` is only emitted by ``finish(_:)``.
/// Empty lines are emitted too (as empty buffers), so a consumer can count them.
///
/// A line longer than `maxLineLength` is cut: its first `maxLineLength` bytes are emitted and the
/// rest up to the newline is dropped (counted in ``truncatedLineCount``), so memory stays bounded
/// whatever the input.
public struct LineSplitter: Sendable {
  private var pending: [UInt8] = []
  /// Set while dropping the excess of an over-long line (until its newline).
  private var discarding = false
  /// The longest line (without newline) that is emitted whole.
  public let maxLineLength: Int
  /// Lines that were longer than ``maxLineLength`` and were cut.
  public private(set) var truncatedLineCount = 0

  /// Creates a splitter; `maxLineLength` (default 1 MiB) bounds the partial-line buffer.
  public init(maxLineLength: Int = 1 << 20) {
    self.maxLineLength = max(1, maxLineLength)
  }

  /// Bytes of an unfinished line kept from earlier chunks.
  public var pendingByteCount: Int { pending.count }

  /// Feeds the next chunk; calls `body` once per complete line, in order. The buffer passed to
  /// `body` is only valid during the call.
  public mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    guard let base = chunk.baseAddress, chunk.count > 0 else { return }
    let count = chunk.count
    var start = 0
    while start < count {
      guard let found = memchr(base + start, Int32(UInt8(ascii: "\n")), count &- start) else { break }
      let newline = UnsafeRawPointer(found).assumingMemoryBound(to: UInt8.self) - base
      if pending.isEmpty, !discarding {
        if newline &- start > maxLineLength { truncatedLineCount &+= 1 }
        emit(UnsafeBufferPointer(start: base + start, count: newline &- start), body)
      } else {
        append(UnsafeBufferPointer(start: base + start, count: newline &- start))
        pending.withUnsafeBufferPointer { emit($0, body) }
        pending.removeAll(keepingCapacity: pending.count <= 64 * 1024)
        discarding = false
      }
      start = newline &+ 1
    }
    if start < count {
      append(UnsafeBufferPointer(start: base + start, count: count &- start))
    }
  }

  /// Emits the unfinished last line, if any, and resets the splitter.
  public mutating func finish(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    if !pending.isEmpty {
      pending.withUnsafeBufferPointer { emit($0, body) }
    }
    pending.removeAll()
    discarding = false
  }

  /// Adds bytes of an unfinished line, honouring `maxLineLength`.
  private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
    guard !discarding else { return }
    let room = maxLineLength &- pending.count
    if bytes.count <= room {
      pending.append(contentsOf: bytes)
    } else {
      pending.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[0..<max(room, 0)]))
      discarding = true
      truncatedLineCount &+= 1
    }
  }

  /// Hands a line to `body` without its trailing `\r` and cut to `maxLineLength`.
  @inline(__always)
  private func emit(_ line: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    var length = line.count
    if length > 0, let base = line.baseAddress, base[length &- 1] == UInt8(ascii: "\r") { length &-= 1 }
    body(UnsafeBufferPointer(start: line.baseAddress, count: min(length, maxLineLength)))
  }
}
