public import SVCTraceCore

/// A parsed packet line together with its raw text (kept for `trace --explain`).
public struct CollectedLine: Sendable, Equatable {
  public var line: PacketLine
  public var raw: String

  public init(line: PacketLine, raw: String) {
    self.line = line
    self.raw = raw
  }
}

/// Everything one pull produced, ready to be committed atomically by the store: the parsed
/// lines, the cursor after them, and the batch's bookkeeping.
public struct CollectedBatch: Sendable {
  public var node: HostID
  public var sourceID: String
  /// The cursor to store in the same transaction as ``lines``.
  public var cursor: SourceCursor
  public var lines: [CollectedLine]
  /// Bytes of log content covered (uncompressed).
  public var byteCount: Int
  /// Bytes that crossed the wire.
  public var transferredBytes: Int
  /// Lines seen (parsed + skipped).
  public var lineCount: Int
  /// Lines the parser did not accept.
  public var skippedCount: Int
  public var clock: ClockOffset
  /// Local time of the collect, µs since the epoch.
  public var collectedAtMicros: Int64
  public var isCaughtUp: Bool
  public var events: [CaptureEvent]

  public init(
    node: HostID, sourceID: String, cursor: SourceCursor, lines: [CollectedLine], byteCount: Int,
    transferredBytes: Int, lineCount: Int, skippedCount: Int, clock: ClockOffset, collectedAtMicros: Int64,
    isCaughtUp: Bool, events: [CaptureEvent]
  ) {
    self.node = node
    self.sourceID = sourceID
    self.cursor = cursor
    self.lines = lines
    self.byteCount = byteCount
    self.transferredBytes = transferredBytes
    self.lineCount = lineCount
    self.skippedCount = skippedCount
    self.clock = clock
    self.collectedAtMicros = collectedAtMicros
    self.isCaughtUp = isCaughtUp
    self.events = events
  }

  /// Splits a chunk into lines and parses each with `parser`.
  ///
  /// Empty lines are ignored; a line the parser rejects is counted in ``skippedCount``.
  public init(
    chunk: SourceChunk, node: HostID, sourceID: String, parser: inout some LineParsing, clock: ClockOffset,
    collectedAtMicros: Int64? = nil
  ) {
    var lines: [CollectedLine] = []
    var seen = 0
    var skipped = 0
    chunk.data.withUnsafeBufferPointer { buffer in
      var start = 0
      while start < buffer.count {
        var end = start
        while end < buffer.count, buffer[end] != UInt8(ascii: "\n") { end += 1 }
        var stop = end
        if stop > start, buffer[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
        if stop > start {
          seen += 1
          let slice = UnsafeBufferPointer(rebasing: buffer[start..<stop])
          if let line = parser.parse(slice) {
            lines.append(CollectedLine(line: line, raw: String(decoding: slice, as: UTF8.self)))
          } else {
            skipped += 1
          }
        }
        start = end + 1
      }
    }
    self.init(
      node: node, sourceID: sourceID, cursor: chunk.cursor, lines: lines, byteCount: chunk.data.count,
      transferredBytes: chunk.transferredBytes, lineCount: seen, skippedCount: skipped, clock: clock,
      collectedAtMicros: collectedAtMicros ?? ClockOffset.wallClockMicros(), isCaughtUp: chunk.isCaughtUp, events: chunk.events)
  }
}
