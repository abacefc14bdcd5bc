#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A node's clock offset to this workstation, measured over the session.
///
/// Each round runs `date +%s%N` remotely between two local readings `t0` and `t1`; the remote
/// reading is assumed to fall in the middle, so `offset = remote − (t0 + t1) / 2` with an error
/// of at most `(t1 − t0) / 2`. Several rounds are taken and the tightest one kept (NTP's idea).
public struct ClockOffset: Sendable, Equatable, Codable {
  /// Node clock minus workstation clock, in microseconds (positive: the node is ahead).
  public var offsetMicros: Int64
  /// Half the round trip of the kept sample: the offset is exact to within ± this.
  public var boundMicros: Int64

  public init(offsetMicros: Int64, boundMicros: Int64) {
    self.offsetMicros = offsetMicros
    self.boundMicros = boundMicros
  }

  /// No offset, no uncertainty (local files, tests).
  public static let zero = ClockOffset(offsetMicros: 0, boundMicros: 0)

  /// One sample: a remote reading taken between two local readings.
  public init(remoteNanos: Int64, localBeforeMicros before: Int64, localAfterMicros after: Int64) {
    offsetMicros = remoteNanos / 1000 - (before + after) / 2
    boundMicros = (after - before + 1) / 2
  }

  /// The tighter of two samples.
  public func tighter(_ other: ClockOffset) -> ClockOffset {
    other.boundMicros < boundMicros ? other : self
  }

  /// Measures the offset with `rounds` round trips and keeps the tightest.
  /// - Throws: ``RemoteError`` if `date` fails or prints something unexpected.
  public static func measure(_ session: some RemoteSession, rounds: Int = 3) async throws -> ClockOffset {
    var best: ClockOffset?
    for _ in 0..<max(1, rounds) {
      let before = wallClockMicros()
      let result = try await session.run("date +%s%N", stdin: nil, timeout: .seconds(15))
      let after = wallClockMicros()
      let text = result.stdoutText.filter { !$0.isWhitespace }
      guard result.succeeded, let nanos = Int64(text) else {
        throw RemoteError(
          host: session.host, operation: "read the clock", kind: .commandFailed,
          message: "`date +%s%N` printed \(text.prefix(40).debugDescription)")
      }
      let sample = ClockOffset(remoteNanos: nanos, localBeforeMicros: before, localAfterMicros: after)
      if best.map({ sample.boundMicros < $0.boundMicros }) ?? true { best = sample }
    }
    return best ?? ClockOffset(offsetMicros: 0, boundMicros: 0)
  }

  /// The local wall clock in microseconds since the epoch.
  public static func wallClockMicros() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
  }
}
