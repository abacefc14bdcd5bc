extension Duration {
  /// The duration in seconds, as a `Double` (figures, recap times).
  public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

  /// The duration as a `poll(2)` timeout: whole milliseconds rounded up (so a wait never ends
  /// early), clamped to `Int32`; `0` for a duration that is zero or negative.
  public var pollMilliseconds: Int32 {
    guard self > .zero else { return 0 }
    let (seconds, attoseconds) = components
    return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
  }
}
