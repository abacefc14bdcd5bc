public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Everything one pull produced, ready to be committed atomically by the store: the parsed
/// lines, the cursor after them, and the batch's bookkeeping.
public struct CollectedBatch: Sendable {
  public var node: HostID
  public var sourceID: String
  /// The cursor to store in the same transaction as ``lines``.
  public var cursor: SourceCursor
  /// The packet lines the parser accepted, in file order.
  public var lines: [PacketLine]
  /// The raw input of the batch (kept for `trace --explain`): the pulled bytes as they came,
  /// every line, accepted or not, each ending with `\n`. Packet line `i` is the last line of
  /// `text[lineEnds[i - 1] ..< lineEnds[i]]` (from 0 for the first): lines the parser skipped
  /// sit before it in that range (see ``lineRange(in:from:to:)``).
  public var text: [UInt8]
  /// The end offset in ``text`` of each packet line, after its newline.
  public var lineEnds: [UInt32]
  /// Connections the source reported whole, stored beside those the lines complete.
  public var connections: [FinishedConnection] = []
  /// Each packet line's time and stage (``PacketLine/Stage`` raw value), kept beside ``lines``
  /// for the store, which writes them as columns.
  public private(set) var lineTimes: [Int64]
  public private(set) var lineStages: [UInt8]
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
    self.lineTimes = lines.map(\.timeMicros)
    self.lineStages = lines.map(\.stage.rawValue)
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
  /// Empty lines are ignored; a line the parser rejects is counted in ``skippedCount``. The
  /// chunk's bytes become ``text`` as they are (no copy), with a `\n` added after an
  /// unterminated last line.
  public init(
    chunk: SourceChunk, node: HostID, sourceID: String, parser: inout some LineParsing, clock: ClockOffset,
    collectedAtMicros: Int64? = nil
  ) {
    var text = chunk.data
    if let last = text.last, last != UInt8(ascii: "\n") { text.append(UInt8(ascii: "\n")) }
    var lines: [PacketLine] = []
    var ends: [UInt32] = []
    var times: [Int64] = []
    var stages: [UInt8] = []
    lines.reserveCapacity(text.count / 160)
    ends.reserveCapacity(text.count / 160)
    times.reserveCapacity(text.count / 160)
    stages.reserveCapacity(text.count / 160)
    var seen = 0
    var skipped = 0
    text.withUnsafeBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      // Every line ends with `\n`, so the splitter hands out each one in place (the `\r` of
      // CRLF and the excess of an over-long line cut off): its end is the next newline.
      var splitter = LineSplitter()
      splitter.feed(buffer) { line in
        guard let start = line.baseAddress, !line.isEmpty else { return }
        seen += 1
        guard let packet = parser.parse(line) else {
          skipped += 1
          return
        }
        lines.append(packet)
        times.append(packet.timeMicros)
        stages.append(packet.stage.rawValue)
        let from = start + line.count
        let end: Int
        if from < base + buffer.count, from.pointee == UInt8(ascii: "\n") {
          end = from - base + 1
        } else {
          let newline = memchr(from, Int32(UInt8(ascii: "\n")), base + buffer.count - from)
          end = newline.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) + 1 } ?? buffer.count
        }
        ends.append(UInt32(truncatingIfNeeded: end))
      }
    }
    self.node = node
    self.sourceID = sourceID
    self.cursor = chunk.cursor
    self.lines = lines
    self.text = text
    self.lineEnds = ends
    self.lineTimes = times
    self.lineStages = stages
    self.connections = chunk.connections
    self.byteCount = chunk.data.count
    self.transferredBytes = chunk.transferredBytes
    self.lineCount = seen
    self.skippedCount = skipped
    self.clock = clock
    self.collectedAtMicros = collectedAtMicros ?? ClockOffset.wallClockMicros()
    self.isCaughtUp = chunk.isCaughtUp
    self.events = chunk.events
  }

  /// The raw text of packet line `index`, without its newline.
  public func rawLine(_ index: Int) -> String {
    let from = index == 0 ? 0 : Int(lineEnds[index - 1])
    return text.withUnsafeBytes { Self.lineText(in: $0, from: from, to: Int(lineEnds[index])) }
  }

  /// The text of the packet line in `bytes[from ..< to]` (see ``lineRange(in:from:to:)``).
  public static func lineText(in bytes: UnsafeRawBufferPointer, from: Int, to end: Int) -> String {
    String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lineRange(in: bytes, from: from, to: end)]), as: UTF8.self)
  }

  /// The packet line in `bytes[from ..< to]`, the range between the previous packet line's end
  /// and this one's (see ``text``): the text after the range's last inner newline, without the
  /// final `\n` or a `\r` before it. Ranges stored before skipped lines were kept (they hold
  /// just the line) give the same answer.
  public static func lineRange(in bytes: UnsafeRawBufferPointer, from: Int, to end: Int) -> Range<Int> {
    let upper = min(max(end, from), bytes.count)
    var stop = upper
    if stop > from, bytes[stop - 1] == UInt8(ascii: "\n") { stop -= 1 }
    var start = stop
    while start > from, bytes[start - 1] != UInt8(ascii: "\n") { start -= 1 }
    if stop > start, bytes[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
    return start..<stop
  }
}
