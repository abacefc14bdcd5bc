import Foundation
import SVCTraceCore
import Testing

@testable import Logs
@testable import Store

/// The loss accounting's part of the store (both implementations): the ledger between
/// collects, the settled intervals, window lookups, `verify`'s checks, prune.
extension StoreBehaviourTests {
  func interval(_ node: String, _ from: Int64, _ until: Int64, lost: Int64, recorded: Int64) -> LossInterval {
    LossInterval(
      node: node, fromMicros: from, untilMicros: until, packets: 1000, lines: 1000 - lost, lost: lost,
      rsyslogRunning: lost < 100, recordedAtMicros: recorded)
  }

  @Test(arguments: StoreFactory.all)
  func keepsTheLossLedgerAndItsIntervals(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let node = HostID("node3")
    #expect(try await store.lossLedger(node: node) == nil)
    var ledger = LossLedger()
    _ = ledger.add(
      RuleCounterSample(bootID: "b", generation: "g", counters: ["k": 4], uptimeMicros: 5_000_000, wallMicros: t1),
      caughtUp: true, clock: .zero, node: node, nowMicros: t1)
    ledger.lastBatch = 12
    let first = interval("node3", t1, t1 + 30_000_000, lost: 37, recorded: t1 + 31_000_000)
    let quiet = interval("node3", t1 + 30_000_000, t1 + 60_000_000, lost: 0, recorded: t1 + 61_000_000)
    try await store.recordLoss(node: node, ledger: ledger, intervals: [first, quiet])
    #expect(try await store.lossLedger(node: node) == ledger)
    // Saved again: replaced, not added.
    ledger.lastBatch = 13
    let other = interval("node1", t1 + 10_000_000, t1 + 20_000_000, lost: 200, recorded: t1 + 21_000_000)
    try await store.recordLoss(node: HostID("node1"), ledger: ledger, intervals: [other])
    try await store.recordLoss(node: node, ledger: ledger, intervals: [])
    #expect(try await store.lossLedger(node: node)?.lastBatch == 13)
    // Window lookups: overlapping intervals, by node then time.
    #expect(try await store.lossIntervals(sinceMicros: nil, untilMicros: nil) == [other, first, quiet])
    #expect(
      try await store.lossIntervals(sinceMicros: t1 + 40_000_000, untilMicros: t1 + 50_000_000) == [quiet])
    #expect(try await store.lossIntervals(sinceMicros: t1 + 25_000_000, untilMicros: nil) == [first, quiet])
    #expect(try await store.lossIntervals(sinceMicros: t1 - 2_000_000, untilMicros: t1 - 1_000_000).isEmpty)
  }

  @Test(arguments: StoreFactory.all)
  func verifyFailsALossOnlyOnce(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let node = HostID("node3")
    // Never collected with counters: not accounted.
    let never = try await store.checkLoss(node: node, atMicros: t1)
    #expect(!never.accounted && never.intervals.isEmpty && never.previousCheckMicros == nil)
    let lossy = interval("node3", t1, t1 + 30_000_000, lost: 37, recorded: t1 + 31_000_000)
    let quiet = interval("node3", t1 + 30_000_000, t1 + 60_000_000, lost: 0, recorded: t1 + 61_000_000)
    try await store.recordLoss(node: node, ledger: LossLedger(), intervals: [lossy, quiet])
    try await store.recordLoss(
      node: HostID("node1"), ledger: LossLedger(),
      intervals: [interval("node1", t1, t1 + 1, lost: 5, recorded: t1 + 2)])
    let check = try await store.checkLoss(node: node, atMicros: t1 + 90_000_000)
    #expect(check.accounted && check.previousCheckMicros == t1)
    #expect(check.intervals == [lossy] && check.lost == 37)
    // The next check starts where this one ended.
    let again = try await store.checkLoss(node: node, atMicros: t1 + 120_000_000)
    #expect(again.intervals.isEmpty && again.previousCheckMicros == t1 + 90_000_000)
    // The ledger survives a check, and a check survives a ledger update.
    try await store.recordLoss(node: node, ledger: LossLedger(settleMicros: 5), intervals: [])
    #expect(try await store.lossLedger(node: node)?.settleMicros == 5)
    #expect(try await store.checkLoss(node: node, atMicros: t1 + 150_000_000).previousCheckMicros == t1 + 120_000_000)
  }

  @Test(arguments: StoreFactory.all)
  func pruneDropsOldLossIntervals(_ factory: StoreFactory) async throws {
    let subject = try await factory.make()
    let store = subject.store
    let old = interval("node3", t1, t1 + 30_000_000, lost: 37, recorded: t1 + 31_000_000)
    let new = interval("node3", t2, t2 + 30_000_000, lost: 2, recorded: t2 + 31_000_000)
    try await store.recordLoss(node: HostID("node3"), ledger: LossLedger(), intervals: [old, new])
    try await store.prune(olderThan: t1 + 60_000_000)
    #expect(try await store.lossIntervals(sinceMicros: nil, untilMicros: nil) == [new])
  }
}
