public import SVCTraceCore

/// Lines lost on one node in one settled collect interval: packets svctrace's LOG rules matched
/// (their counters) against the lines of those packets that reached the log file.
public struct LossInterval: Sendable, Equatable, Codable {
  public var node: String
  /// The interval, µs since the epoch on this workstation's clock (the node's counter reads,
  /// corrected by the node's clock offset).
  public var fromMicros: Int64
  public var untilMicros: Int64
  /// Packets the LOG rules counted in the interval.
  public var packets: Int64
  /// Lines of the interval's packets that reached the file (by their kernel timestamp).
  public var lines: Int64
  /// Lines lost in the interval (never negative; see ``LossLedger``).
  public var lost: Int64
  /// Whether rsyslogd was running at both ends (`false` when it was seen stopped).
  public var rsyslogRunning: Bool
  /// When it was settled (this workstation's clock, µs).
  public var recordedAtMicros: Int64

  public init(
    node: String, fromMicros: Int64, untilMicros: Int64, packets: Int64, lines: Int64, lost: Int64,
    rsyslogRunning: Bool = true, recordedAtMicros: Int64
  ) {
    self.node = node
    self.fromMicros = fromMicros
    self.untilMicros = untilMicros
    self.packets = packets
    self.lines = lines
    self.lost = lost
    self.rsyslogRunning = rsyslogRunning
    self.recordedAtMicros = recordedAtMicros
  }
}

/// The loss accounting of one node, kept in the store between collects: pure, fed the lines of
/// each pull and the LOG rules' counters read after them (``RuleCounterSample``).
///
/// **Epochs.** Counters restart when svctrace's rules are rewritten or the node reboots. An
/// epoch starts at a sample and lasts while the boot id (and ``RuleCounterSample/generation``) stay, every
/// counter it knows is still there and none went down, and no line escaped the accounting (a
/// collect interrupted before it saved the ledger, a rotated file lost): anything else starts a
/// new epoch at that sample, and the interval across the break is not judged (no negative or
/// made-up loss; a loss inside it goes unseen). A rule that appears (a counter at a new key) is
/// counted from 0.
///
/// **Lines in flight.** rsyslog writes a packet's line seconds after the counter counted it.
/// Lines carry the kernel's `[seconds.micros]` stamp, the clock of the sample's uptime, so a
/// sample is compared only with the lines stamped at or before it, and only once it is
/// *settled*: when a line stamped after it has reached the file (the path from the kernel to
/// the file keeps order) or when a later sample, taken ``settleMicros`` after it, read the file
/// to its end. Loss is cumulative within an epoch: after sample *k* settles, lost =
/// packets(k) − lines stamped ≤ k, capped by packets − all lines at the latest sample read to
/// the end of the file (an upper bound that is exact when nothing is in flight); what is
/// reported only grows, so an interval's loss is never negative. A quiet node's counters do
/// not move: 0, exactly.
///
/// Lines without a kernel stamp (an rsyslog that strips it) cannot be placed against a
/// sample: then a loss is settled only when the counters stood still for ``settleMicros``
/// before a sample that read the file to its end (nothing can be in flight then).
public struct LossLedger: Sendable, Equatable, Codable {
  /// One counter read of the epoch.
  struct Point: Sendable, Equatable, Codable {
    /// Packets counted since the epoch began.
    var packets: Int64
    var uptimeMicros: Int64
    /// Node clock.
    var wallMicros: Int64
    /// Lines stamped after the epoch's start and at or before this point, collected so far.
    var linesAtOrBefore: Int64
    var caughtUp: Bool
    /// The clock offset of the exchange that read it (to report wall times).
    var clockOffsetMicros: Int64
    var rsyslogRunning: Bool
  }

  struct Epoch: Sendable, Equatable, Codable {
    var bootID: String
    var generation: String
    /// The counters at the newest sample (to compute deltas and notice resets).
    var counters: [String: UInt64]
    /// The epoch's first sample.
    var startUptimeMicros: Int64
    var startWallMicros: Int64
    /// Packets counted since the start, at the newest sample.
    var packets: Int64 = 0
    /// Lines since the start (stamped after it; unstamped lines received after it).
    var lines: Int64 = 0
    var unstampedLines: Int64 = 0
    /// The newest kernel stamp collected.
    var newestStamp: Int64 = 0
    /// The newest sample that settled (at first the start, with nothing).
    var settled: Point
    /// Samples waiting for their lines, oldest first.
    var pending: [Point] = []
    /// The newest sample (settled or not).
    var latest: Point
    /// Lost lines reported in this epoch so far.
    var lost: Int64 = 0
  }

  var epoch: Epoch?
  /// The node's newest stored batch when the ledger was saved: a store whose newest batch is
  /// another one got lines this ledger did not count (see ``resume(lastBatch:)``).
  public var lastBatch: Int64?
  /// How long after a sample its lines are surely in the file when no later line shows it
  /// (rsyslog lags seconds under load).
  public var settleMicros: Int64

  /// The most samples kept waiting; beyond, the oldest is settled as if its time had come.
  static let maxPending = 256

  public init(settleMicros: Int64 = 15_000_000) {
    self.settleMicros = settleMicros
  }

  /// What ``add(_:caughtUp:clock:node:nowMicros:)`` did.
  public struct Update: Sendable, Equatable {
    /// Intervals settled by this sample, oldest first (quiet ones, with nothing counted and
    /// nothing lost, are left out).
    public var intervals: [LossInterval] = []
    /// Why a new epoch began at this sample (`nil`: none, or the first one).
    public var newEpoch: String?
  }

  /// Packets counted whose lines are not judged yet (samples not settled).
  public var unsettledPackets: Int64 {
    guard let epoch else { return 0 }
    return epoch.latest.packets - epoch.settled.packets
  }

  /// Lines lost since the current epoch began.
  public var epochLost: Int64 { epoch?.lost ?? 0 }

  /// Called before the lines of a collect: when the store's newest batch is not the one the
  /// ledger was saved with, lines were stored that it did not count, and the next sample starts
  /// a new epoch.
  public mutating func resume(lastBatch: Int64?) {
    if lastBatch != self.lastBatch { epoch = nil }
  }

  /// Forgets the epoch: the next sample starts a new one (lines were lost to rotation or
  /// truncation, which the events report).
  public mutating func breakEpoch() { epoch = nil }

  /// Counts the lines of one pull (in file order), read before the pull's sample.
  public mutating func add(lines: some Sequence<PacketLine>) {
    guard var epoch else { return }
    for line in lines where line.origin == .svctrace {
      if let stamp = line.kernelMicros {
        // Stamped before the epoch: in flight at its start, not its packet.
        guard stamp > epoch.startUptimeMicros else { continue }
        epoch.lines += 1
        // Only a line received in this epoch shows how far the file caught up (one of an earlier
        // boot, read late, carries that boot's stamps). Counting such a line errs towards less
        // loss, never more.
        if line.timeMicros >= epoch.startWallMicros - 1_000_000 { epoch.newestStamp = max(epoch.newestStamp, stamp) }
        for index in epoch.pending.indices where stamp <= epoch.pending[index].uptimeMicros {
          epoch.pending[index].linesAtOrBefore += 1
        }
      } else {
        // Some may have been in flight at the epoch's start: counted, they err towards less loss.
        epoch.lines += 1
        epoch.unstampedLines += 1
      }
    }
    self.epoch = epoch
  }

  /// Takes a counter sample read after the lines given so far.
  ///
  /// - Parameters:
  ///   - caughtUp: the exchange read the log to its end before the counters.
  ///   - clock: the node's clock offset in that exchange (intervals are reported in this
  ///     workstation's time).
  public mutating func add(
    _ sample: RuleCounterSample, caughtUp: Bool, clock: ClockOffset, node: HostID, nowMicros: Int64
  ) -> Update {
    var update = Update()
    let running = sample.rsyslogRunning ?? true
    guard var epoch, sample.uncounted == 0 else {
      update.newEpoch = epoch == nil ? nil : "a rule that logs has no counter"
      start(sample, caughtUp: caughtUp, clock: clock)
      return update
    }
    if let reason = Self.breakReason(epoch, sample) {
      update.newEpoch = reason
      start(sample, caughtUp: caughtUp, clock: clock)
      return update
    }
    var delta: Int64 = 0
    for (key, value) in sample.counters { delta += Int64(value - (epoch.counters[key] ?? 0)) }
    epoch.counters = sample.counters
    epoch.packets += delta
    let stamped = epoch.lines - epoch.unstampedLines
    let point = Point(
      packets: epoch.packets, uptimeMicros: sample.uptimeMicros, wallMicros: sample.wallMicros,
      linesAtOrBefore: stamped, caughtUp: caughtUp, clockOffsetMicros: clock.offsetMicros, rsyslogRunning: running)
    let previous = epoch.latest
    epoch.latest = point
    // An upper bound of what was lost by now: exact when nothing is in flight.
    let bound: Int64? = caughtUp ? epoch.packets - epoch.lines : nil
    if epoch.unstampedLines == 0 {
      // Settle, oldest first, what the file has caught up with.
      while let first = epoch.pending.first,
        epoch.newestStamp > first.uptimeMicros
          || (caughtUp && sample.uptimeMicros - first.uptimeMicros >= settleMicros)
          || epoch.pending.count >= Self.maxPending
      {
        epoch.pending.removeFirst()
        var estimate = first.packets - first.linesAtOrBefore
        if let bound { estimate = min(estimate, bound) }
        settle(&epoch, to: first, estimate: estimate, node: node, nowMicros: nowMicros, into: &update)
      }
      if point.packets == epoch.settled.packets, epoch.pending.isEmpty {
        // Nothing counted since the last settled sample: nothing to wait for.
        epoch.settled = point
      } else {
        epoch.pending.append(point)
      }
    } else {
      // Unstamped lines: only a quiet, caught-up moment tells.
      let quiet =
        caughtUp && point.packets == previous.packets
        && sample.uptimeMicros - previous.uptimeMicros >= settleMicros
      if quiet, let bound {
        epoch.pending.removeAll()
        var target = point
        target.linesAtOrBefore = epoch.lines
        settle(&epoch, to: target, estimate: bound, node: node, nowMicros: nowMicros, into: &update)
      } else {
        epoch.pending.append(point)
        if epoch.pending.count > Self.maxPending { epoch.pending.removeFirst() }
      }
    }
    self.epoch = epoch
    return update
  }

  /// Moves the settled point to `point`, reporting what the cumulative `estimate` adds.
  private func settle(
    _ epoch: inout Epoch, to point: Point, estimate: Int64, node: HostID, nowMicros: Int64,
    into update: inout Update
  ) {
    let from = epoch.settled
    let grown = max(0, estimate - epoch.lost)
    epoch.lost += grown
    let packets = point.packets - from.packets
    if packets > 0 || grown > 0 {
      update.intervals.append(
        LossInterval(
          node: node.name, fromMicros: from.wallMicros - from.clockOffsetMicros,
          untilMicros: point.wallMicros - point.clockOffsetMicros, packets: packets,
          lines: point.linesAtOrBefore - from.linesAtOrBefore, lost: grown,
          rsyslogRunning: from.rsyslogRunning && point.rsyslogRunning, recordedAtMicros: nowMicros))
    }
    epoch.settled = point
  }

  private mutating func start(_ sample: RuleCounterSample, caughtUp: Bool, clock: ClockOffset) {
    guard sample.uncounted == 0 else {
      epoch = nil
      return
    }
    let point = Point(
      packets: 0, uptimeMicros: sample.uptimeMicros, wallMicros: sample.wallMicros, linesAtOrBefore: 0,
      caughtUp: caughtUp, clockOffsetMicros: clock.offsetMicros, rsyslogRunning: sample.rsyslogRunning ?? true)
    epoch = Epoch(
      bootID: sample.bootID, generation: sample.generation, counters: sample.counters,
      startUptimeMicros: sample.uptimeMicros, startWallMicros: sample.wallMicros, newestStamp: sample.uptimeMicros,
      settled: point, latest: point)
  }

  /// Why `sample` cannot continue `epoch`, or `nil`.
  static func breakReason(_ epoch: Epoch, _ sample: RuleCounterSample) -> String? {
    if sample.bootID != epoch.bootID { return "the node rebooted" }
    if sample.generation != epoch.generation { return "svctrace's rules were rewritten" }
    if sample.uptimeMicros < epoch.latest.uptimeMicros { return "the node's uptime went back" }
    for (key, value) in epoch.counters {
      guard let now = sample.counters[key] else { return "a log rule went away (rules rewritten)" }
      if now < value { return "a log rule's counter went down (rules rewritten)" }
    }
    return nil
  }
}
