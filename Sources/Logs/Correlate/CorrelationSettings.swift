/// Tunables of ``Correlator``.
public struct CorrelationSettings: Sendable, Equatable, Codable {
  /// Maximum distance between the pre and post line of one connection, and the span in which a
  /// repeated line on the same key counts as a retransmission. Default 2 s.
  public var windowMicros: Int64
  /// A pending pre line older than this (behind the newest line seen on the node) expires.
  /// Default 120 s: long enough for a post line that lands in the next collect.
  public var pendingExpiryMicros: Int64
  /// For TCP and SCTP: the longest gap between two lines of one connection that still makes
  /// the later one a retransmission (the window slides with each). SYN retries come 1, 2, 4,
  /// 8, 16, 32 s apart, and the client cannot reuse the port that fast (TIME_WAIT is 60 s).
  /// Default 35 s. UDP and others use ``windowMicros``: conntrack logs no new line for a live
  /// UDP tuple, so a repeat after the window is a new flow.
  public var retransmitWindowMicros: Int64
  /// The most pre lines kept pending per (protocol, source, source port): a new one beyond
  /// drops the oldest (counted in ``CorrelationStats/dropped``), so that one source port sending
  /// to many destinations (a SYN scan) costs each line at most this many comparisons. At least
  /// 1. Default 64: far more connections than one port opens within a window.
  public var maxPendingPerKey: Int

  public init(
    windowMicros: Int64 = 2_000_000, pendingExpiryMicros: Int64 = 120_000_000,
    retransmitWindowMicros: Int64 = 35_000_000, maxPendingPerKey: Int = 64
  ) {
    self.windowMicros = windowMicros
    self.pendingExpiryMicros = pendingExpiryMicros
    self.retransmitWindowMicros = retransmitWindowMicros
    self.maxPendingPerKey = maxPendingPerKey
  }
}
