/// One packet line fed to the correlator, with the identifier its caller (the store) gave it.
public struct Observation: Sendable, Equatable {
  /// A caller-assigned identifier (the store's line row id), echoed in the output.
  public var id: Int64
  public var line: PacketLine
  /// The node clock's offset (remote − local, µs) measured by the collect that brought the line.
  public var clockOffsetMicros: Int64

  public init(id: Int64, line: PacketLine, clockOffsetMicros: Int64 = 0) {
    self.id = id
    self.line = line
    self.clockOffsetMicros = clockOffsetMicros
  }
}
