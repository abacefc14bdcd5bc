import Foundation
public import SVCTraceCore

/// A node clock's offset from the local clock, measured over SSH.
public struct ClockOffset: Sendable, Equatable, Codable {
  /// Remote minus local wall-clock time, in microseconds. Subtract it from a node timestamp to
  /// get local time.
  public var offsetMicros: Int64
  /// Half the round trip of the sample used: the true offset is within ± this bound.
  public var boundMicros: Int64

  public init(offsetMicros: Int64, boundMicros: Int64) {
    self.offsetMicros = offsetMicros
    self.boundMicros = boundMicros
  }

  /// No offset, no bound (local files, or when measuring failed).
  public static let zero = ClockOffset(offsetMicros: 0, boundMicros: 0)
}

/// Measures a node's clock offset with several `date +%s%N` round trips.
///
/// Each round takes local wall time t0, runs the command, takes t1; the sample with the
/// tightest round trip wins: offset = remote − (t0 + t1) / 2, bound = (t1 − t0) / 2.
///
/// - Throws: ``RemoteError`` from the session, or ``CaptureError`` when `date` output is not a
///   number (e.g. a `date` without `%N`).
public func measureClockOffset(session: some RemoteSession, rounds: Int = 5) async throws -> ClockOffset {
  var best: ClockOffset?
  for _ in 0..<max(rounds, 1) {
    let t0 = wallClockMicros()
    let result = try await session.run("date +%s%N", stdin: nil, timeout: .seconds(30))
    let t1 = wallClockMicros()
    let text = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    guard result.succeeded, let nanos = Int64(text) else {
      throw CaptureError(
        host: session.host, operation: "measure the clock offset",
        message: "date +%s%N printed '\(text.prefix(40))' (\(result.failureSummary))")
    }
    let sample = ClockOffset(offsetMicros: nanos / 1000 - (t0 + t1) / 2, boundMicros: (t1 - t0 + 1) / 2)
    if best == nil || sample.boundMicros < best?.boundMicros ?? .max { best = sample }
  }
  return best ?? .zero
}

/// Local wall-clock time in microseconds since the epoch.
func wallClockMicros() -> Int64 {
  Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
}
