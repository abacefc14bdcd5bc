/// SplitMix64: a tiny, fast, deterministic generator (not for cryptography).
///
/// The one seeded generator of the tests and benchmarks: a failing stream can be replayed from
/// its seed, and generated logs and stores are the same on every run.
public struct SplitMix64: RandomNumberGenerator, Sendable {
  private var state: UInt64

  /// A generator whose stream is determined by `seed`.
  public init(seed: UInt64) { state = seed }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z &>> 31)
  }

  /// A uniform value in `0..<bound` (bound > 0).
  public mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }

  /// A value in `0..<bound`, or 0 for a bound below 1.
  public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }

  /// `true` with probability `share`.
  public mutating func chance(_ share: Double) -> Bool { Double(next() >> 11) * 0x1p-53 < share }
}
