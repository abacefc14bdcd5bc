public import SVCTraceCore

/// Everything one pull produced, ready to be committed atomically by the store: the parsed
/// lines, the cursor after them, and the batch's bookkeeping.
public struct CollectedBatch: Sendable {
  public var node: HostID
  public var sourceID: String
  /// The cursor to store in the same transaction as ``lines``.
  public var cursor: SourceCursor
  /// The packet lines the parser accepted, in file order.
  public var lines: [PacketLine]
  /// Their raw text (kept for `trace --explain`), one buffer for the batch: line `i` is
  /// `text[lineEnds[i - 1] ..< lineEnds[i] - 1]` (from 0 for the first), each followed by `\n`.
  public var text: [UInt8]
  /// The end offset in ``text`` of each line, after its newline.
  public var lineEnds: [UInt32]
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
    node: HostID, sourceID: String, cursor: SourceCursor, lines: [PacketLine], text: [UInt8], lineEnds: [UInt32],
    byteCount: Int,
    transferredBytes: Int, lineCount: Int, skippedCount: Int, clock: ClockOffset, collectedAtMicros: Int64,
    isCaughtUp: Bool, events: [CaptureEvent]
  ) {
    self.node = node
    self.sourceID = sourceID
    self.cursor = cursor
    self.lines = lines
    self.text = text
    self.lineEnds = lineEnds
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
    // Sized up front: grown by doubling, the text alone would be copied twice over.
    var lines: [PacketLine] = []
    var text: [UInt8] = []
    var ends: [UInt32] = []
    text.reserveCapacity(chunk.data.count)
    lines.reserveCapacity(chunk.data.count / 160)
    ends.reserveCapacity(chunk.data.count / 160)
    var seen = 0
    var skipped = 0
    var splitter = LineSplitter()
    chunk.data.withUnsafeBufferPointer { buffer in
      // A chunk holds whole lines; `finish` hands out a last one without a newline.
      // (The splitter drops a `\r` before the newline.)
      func accept(_ line: UnsafeBufferPointer<UInt8>) {
        guard !line.isEmpty else { return }
        seen += 1
        guard let packet = parser.parse(line) else {
          skipped += 1
          return
        }
        lines.append(packet)
        text.append(contentsOf: line)
        text.append(UInt8(ascii: "\n"))
        ends.append(UInt32(truncatingIfNeeded: text.count))
      }
      splitter.feed(buffer, accept)
      splitter.finish(accept)
    }
    self.init(
      node: node, sourceID: sourceID, cursor: chunk.cursor, lines: lines, text: text, lineEnds: ends, byteCount: chunk.data.count,
      transferredBytes: chunk.transferredBytes, lineCount: seen, skippedCount: skipped, clock: clock,
      collectedAtMicros: collectedAtMicros ?? ClockOffset.wallClockMicros(), isCaughtUp: chunk.isCaughtUp, events: chunk.events)
  }

  /// The raw text of line `index`, without its newline.
  public func rawLine(_ index: Int) -> String {
    let start = index == 0 ? 0 : Int(lineEnds[index - 1])
    return String(decoding: text[start..<(Int(lineEnds[index]) - 1)], as: UTF8.self)
  }
}
