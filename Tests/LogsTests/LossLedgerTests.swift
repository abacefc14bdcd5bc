import Foundation
import SVCTraceCore
import Testing

@testable import Logs

/// The loss accounting, pure: counters against lines, epochs, lines in flight.
@Suite("LossLedger")
struct LossLedgerTests {
  static let node = HostID("node3")
  /// Boot time on the node's wall clock: uptime 0 at this wall time.
  static let bootWall: Int64 = 1_796_600_000_000_000

  /// A sample at uptime `seconds` with the given rule counters.
  static func sample(
    _ seconds: Double, _ counters: [String: UInt64], boot: String = "b1", generation: String = "g1",
    rsyslog: Bool = true
  ) -> RuleCounterSample {
    let uptime = Int64(seconds * 1_000_000)
    return RuleCounterSample(
      bootID: boot, generation: generation, counters: counters, uptimeMicros: uptime, wallMicros: bootWall + uptime,
      rsyslogRunning: rsyslog)
  }

  /// `count` lines stamped evenly in (`from`, `to`] seconds of uptime, received `lag` later.
  static func lines(_ count: Int, from: Double, to: Double, lag: Double = 0.5) -> [PacketLine] {
    (1...max(count, 1)).prefix(count).map { index in
      let stamp = Int64((from + (to - from) * Double(index) / Double(count)) * 1_000_000)
      return PacketLine(
        timeMicros: bootWall + stamp + Int64(lag * 1_000_000), kernelMicros: stamp, stage: .pre,
        source: IPAddress(high: 0, low: 0xffff_0a00_0001), destination: IPAddress(high: 0, low: 0xffff_0a60_000a),
        proto: 6, sourcePort: 40000, destinationPort: 80)
    }
  }

  static func feed(
    _ ledger: inout LossLedger, _ sample: RuleCounterSample, caughtUp: Bool = true
  ) -> LossLedger.Update {
    ledger.add(sample, caughtUp: caughtUp, clock: .zero, node: node, nowMicros: sample.wallMicros)
  }

  @Test func aQuietNodeReportsExactlyZero() {
    var ledger = LossLedger()
    var intervals: [LossInterval] = []
    for step in 0..<20 {
      intervals +=
        Self.feed(&ledger, Self.sample(100 + Double(step) * 30, ["iptables-nft:SVCT-LOG-PRE:1": 500])).intervals
    }
    #expect(intervals.isEmpty)
    #expect(ledger.epochLost == 0 && ledger.unsettledPackets == 0)
  }

  @Test func everyLineArrivingIsNoLossEvenWhileInFlight() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    // 1000 packets between 100 s and 110 s; at the read (110.5 s) only 600 lines are written.
    let all = Self.lines(1000, from: 100, to: 110)
    ledger.add(lines: all.prefix(600))
    let first = Self.feed(&ledger, Self.sample(110.5, ["k": 1000]))
    #expect(first.intervals.isEmpty)
    #expect(ledger.unsettledPackets == 1000)
    // The other 400 arrive before the next read: settled, nothing lost.
    ledger.add(lines: all.dropFirst(600))
    ledger.add(lines: Self.lines(10, from: 111, to: 112))
    let second = Self.feed(&ledger, Self.sample(140, ["k": 1010]))
    #expect(second.intervals.map(\.lost) == [0])
    #expect(second.intervals.map(\.packets) == [1000] && second.intervals.map(\.lines) == [1000])
    #expect(ledger.epochLost == 0)
  }

  @Test func aLossIsReportedOnceTheFileCaughtUp() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["pre": 0, "post": 0]))
    // 2000 packets; 37 lines never reach the file.
    var all = Self.lines(2000, from: 100, to: 105)
    all.removeSubrange(500..<537)
    ledger.add(lines: all.prefix(1000))
    let during = Self.feed(&ledger, Self.sample(105.2, ["pre": 1000, "post": 1000]))
    #expect(during.intervals.isEmpty)
    ledger.add(lines: all.dropFirst(1000))
    // A later read, the node quiet since: settled by time (nothing stamped later arrived).
    let after = Self.feed(&ledger, Self.sample(125, ["pre": 1000, "post": 1000]))
    #expect(after.intervals.map(\.lost) == [37])
    #expect(after.intervals.first?.packets == 2000 && after.intervals.first?.lines == 1963)
    #expect(after.intervals.first?.fromMicros == Self.bootWall + 100_000_000)
    // Nothing more is reported for it later.
    let later = Self.feed(&ledger, Self.sample(155, ["pre": 1000, "post": 1000]))
    #expect(later.intervals.isEmpty)
    #expect(ledger.epochLost == 37)
  }

  @Test func aLaterLineSettlesWithoutWaiting() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    var burst = Self.lines(100, from: 100, to: 101)
    burst.removeLast(5)
    ledger.add(lines: burst)
    _ = Self.feed(&ledger, Self.sample(101.5, ["k": 100]))
    // One second later a line stamped after the first read arrived: the first is settled.
    ledger.add(lines: Self.lines(1, from: 101.6, to: 101.7))
    let update = Self.feed(&ledger, Self.sample(102.5, ["k": 101]))
    #expect(update.intervals.map(\.lost) == [5])
  }

  @Test func aLaggingFileIsNotALoss() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    let all = Self.lines(300, from: 100, to: 101)
    // Reads every 5 s while rsyslog writes nothing (lag): not yet settled, nothing reported.
    var reported: [LossInterval] = []
    for step in 1...2 {
      reported += Self.feed(&ledger, Self.sample(101 + Double(step) * 5, ["k": 300])).intervals
    }
    #expect(reported.isEmpty)
    ledger.add(lines: all)
    reported += Self.feed(&ledger, Self.sample(122, ["k": 300])).intervals
    #expect(reported.map(\.lost) == [0])
  }

  @Test func countersThatResetStartANewEpochWithoutBogusLoss() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 5000]))
    ledger.add(lines: Self.lines(100, from: 100, to: 101))
    _ = Self.feed(&ledger, Self.sample(102, ["k": 5100]))
    // Reinstalled: the counter restarted and is now lower.
    let reset = Self.feed(&ledger, Self.sample(130, ["k": 40]))
    #expect(reset.newEpoch != nil && reset.intervals.isEmpty)
    // Counted from the reset on.
    ledger.add(lines: Self.lines(60, from: 130, to: 131))
    _ = Self.feed(&ledger, Self.sample(131.5, ["k": 100]))
    let next = Self.feed(&ledger, Self.sample(160, ["k": 100]))
    #expect(next.intervals.map(\.lost) == [0])
    #expect(next.intervals.first?.packets == 60)
  }

  @Test func aRebootOrARewriteStartsANewEpoch() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(1000, ["k": 10]))
    #expect(Self.feed(&ledger, Self.sample(30, ["k": 50], boot: "b2")).newEpoch == "the node rebooted")
    #expect(Self.feed(&ledger, Self.sample(60, ["k": 70], boot: "b2", generation: "g2")).newEpoch != nil)
    #expect(Self.feed(&ledger, Self.sample(90, ["other": 70], boot: "b2", generation: "g2")).newEpoch != nil)
    // A rule that appears is counted from 0, in the same epoch.
    let added = Self.feed(&ledger, Self.sample(120, ["other": 70, "new": 3], boot: "b2", generation: "g2"))
    #expect(added.newEpoch == nil)
    #expect(ledger.unsettledPackets == 3)
  }

  @Test func linesBeforeTheEpochDoNotCount() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    // In flight at the first read (stamped before it): not the epoch's.
    ledger.add(lines: Self.lines(50, from: 99, to: 100))
    ledger.add(lines: Self.lines(20, from: 100, to: 101))
    _ = Self.feed(&ledger, Self.sample(101.5, ["k": 25]))
    let update = Self.feed(&ledger, Self.sample(130, ["k": 25]))
    #expect(update.intervals.map(\.lost) == [5])
    #expect(update.intervals.map(\.lines) == [20])
  }

  @Test func aLineOfAnEarlierBootReadLateSettlesNothing() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(60, ["k": 0], boot: "b2"))
    ledger.add(lines: Self.lines(10, from: 60, to: 61))
    _ = Self.feed(&ledger, Self.sample(61.5, ["k": 10], boot: "b2"))
    // The old boot's line (stamp 5000 s, written an hour ago) does not show the file caught up.
    var old = Self.lines(1, from: 4999, to: 5000)
    old[0].timeMicros = Self.bootWall - 3_600_000_000
    ledger.add(lines: old)
    #expect(Self.feed(&ledger, Self.sample(62, ["k": 10], boot: "b2")).intervals.isEmpty)
    #expect(ledger.unsettledPackets == 10)
  }

  @Test func aGapInTheAccountingRestarts() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    ledger.lastBatch = 7
    ledger.resume(lastBatch: 9)  // batches 8, 9 stored by a collect that did not save the ledger
    let update = Self.feed(&ledger, Self.sample(130, ["k": 1000]))
    #expect(update.intervals.isEmpty && ledger.unsettledPackets == 0)
  }

  @Test func withoutKernelStampsOnlyAQuietMomentSettles() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    var unstamped = Self.lines(90, from: 100, to: 101)
    for index in unstamped.indices { unstamped[index].kernelMicros = nil }
    ledger.add(lines: unstamped)
    // Counters still moving: nothing settles.
    #expect(Self.feed(&ledger, Self.sample(102, ["k": 100])).intervals.isEmpty)
    // Still for 20 s and read to the end: 10 lost.
    let quiet = Self.feed(&ledger, Self.sample(122, ["k": 100]))
    #expect(quiet.intervals.map(\.lost) == [10])
  }

  @Test func aMissedEndOfFileBoundsNothing() {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    let all = Self.lines(100, from: 100, to: 101)
    ledger.add(lines: all.prefix(40))
    _ = Self.feed(&ledger, Self.sample(101.5, ["k": 100]), caughtUp: false)
    ledger.add(lines: all.dropFirst(40))
    let update = Self.feed(&ledger, Self.sample(130, ["k": 100]))
    #expect(update.intervals.map(\.lost) == [0])
  }

  @Test func survivesTheStoredForm() throws {
    var ledger = LossLedger()
    _ = Self.feed(&ledger, Self.sample(100, ["k": 0]))
    ledger.add(lines: Self.lines(10, from: 100, to: 101))
    _ = Self.feed(&ledger, Self.sample(101.5, ["k": 12]))
    let data = try JSONEncoder().encode(ledger)
    var copy = try JSONDecoder().decode(LossLedger.self, from: data)
    #expect(copy == ledger)
    #expect(Self.feed(&copy, Self.sample(130, ["k": 12])).intervals.map(\.lost) == [2])
  }
}

@Suite("RuleCounterSample")
struct RuleCounterSampleTests {
  @Test func parsesTheSection() throws {
    let text = """
      boot 0f2c5e1a-1111-2222-3333-444455556666
      gen 1796600000.2048
      C iptables-nft:SVCT-LOG-PRE:1 120
      C iptables-nft:SVCT-LOG-POST:1 118
      C ip6tables-legacy:SVCT-LOG-PRE:1 4
      C nft:12:7 9
      rsyslog yes
      up 21021.35
      now 1796600000123456789

      """
    let sample = try #require(RuleCounterSample.parse(text))
    #expect(sample.bootID == "0f2c5e1a-1111-2222-3333-444455556666")
    #expect(sample.generation == "1796600000.2048")
    #expect(sample.packets == 251 && sample.counters.count == 4 && sample.uncounted == 0)
    #expect(sample.uptimeMicros == 21_021_350_000 + 10_000)
    #expect(sample.wallMicros == 1_796_600_000_123_456)
    #expect(sample.rsyslogRunning == true)
  }

  @Test func needsTheBootTheUptimeAndTheTime() {
    #expect(RuleCounterSample.parse("C k 1\nup 5.00\nnow 1\n") == nil)
    #expect(RuleCounterSample.parse("boot b\nC k 1\nnow 1\n") == nil)
    #expect(RuleCounterSample.parse("boot b\nup 5.00\nnow 1796600000%N\n") == nil)
    let uncounted = RuleCounterSample.parse("boot b\ngen -\nU nft:3:9\nup 5\nnow 1000\n")
    #expect(uncounted?.uncounted == 1 && uncounted?.generation == "")
  }
}
