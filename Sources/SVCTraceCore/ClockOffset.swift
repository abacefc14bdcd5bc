import Foundation

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

  /// An NTP-style sample from one exchange: the local clock read when the request was sent
  /// (`t0`) and when the reply arrived (`t3`), the node's clock read when its script started
  /// (`t1`) and just before it replied (`t2`). `offset = ((t1 − t0) + (t2 − t3)) / 2`, exact to
  /// within half the network delay `(t3 − t0) − (t2 − t1)`: the time the script spent on the
  /// node (reading a large file, say) does not widen the bound.
  public init(sentMicros t0: Int64, receivedMicros t3: Int64, nodeStartNanos: Int64, nodeEndNanos: Int64) {
    let t1 = nodeStartNanos / 1000
    let t2 = max(t1, nodeEndNanos / 1000)
    offsetMicros = ((t1 - t0) + (t2 - t3)) / 2
    boundMicros = (max(0, (t3 - t0) - (t2 - t1)) + 1) / 2
  }

  /// The names of the two clock sections of a reply script (``NodeReply/Script/clockSection(_:)``).
  public static let startSection = "clock-start"
  public static let endSection = "clock-end"

  /// The sample a reply carries in its clock sections, or `nil` when it has none (or the node's
  /// `date` cannot print nanoseconds: busybox prints `%N` literally).
  public init?(reply: NodeReply, sentMicros: Int64, receivedMicros: Int64) {
    func nanos(_ name: String) -> Int64? {
      reply.section(name).flatMap { Int64($0.text.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
    guard let start = nanos(Self.startSection), let end = nanos(Self.endSection) else { return nil }
    self.init(sentMicros: sentMicros, receivedMicros: receivedMicros, nodeStartNanos: start, nodeEndNanos: end)
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
