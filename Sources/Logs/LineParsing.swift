/// Turns one log line (without its trailing newline) into a ``PacketLine``.
///
/// The seam between capture and parsing: the collector feeds lines through any `LineParsing`;
/// ``PacketLineParser`` is the kernel-LOG implementation. A line that is not a packet line
/// (garbled, another program's message, an unknown prefix) yields `nil` and is counted in
/// ``stats`` as skipped — never an error.
public protocol LineParsing {
  /// Parses one line. `nil` means "not a packet line"; ``stats`` records which.
  mutating func parse(_ line: UnsafeBufferPointer<UInt8>) -> PacketLine?
  /// Lines parsed and skipped so far.
  var stats: ParseStats { get }
}

/// How many lines a parser accepted and how many it skipped.
public struct ParseStats: Sendable, Equatable, Codable {
  public var parsed: Int
  public var skipped: Int

  public init(parsed: Int = 0, skipped: Int = 0) {
    self.parsed = parsed
    self.skipped = skipped
  }
}
