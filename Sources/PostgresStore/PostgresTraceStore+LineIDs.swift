import Logging
import PostgresNIO
import SVCTraceCore
import Store
import Synchronization

/// The line ids one store connection reserved in the database for the batches of a node that
/// it correlates ahead of their commits (see ``PostgresTraceStore/reserveLineIDs(for:lastBatch:)``).
struct NodeLineIDs: Sendable {
  /// The next unused id of the node's range and the range's end (exclusive).
  var next: Int64 = 0
  var end: Int64 = 0
  /// The node's batch this store committed last with ids of its ranges, when that was its
  /// newest commit of the node: while the node's newest batch is still that one, the rest of
  /// the range lies above every stored line of the node and serves its next run.
  var lastCommitted: Int64?
  /// A batch of the node that this store committed with another correlation than the one
  /// prepared ahead: the batch prepared after it assumed that correlation's state.
  var reCorrelated: Int64?
  /// A refill of the range is on its way.
  var refilling = false

  var remaining: Int64 { end - next }
}

/// The commit found that its batch must be correlated again, with ids claimed afresh.
struct NeedsFreshLineIDs: Error {}

extension PostgresTraceStore {
  /// Line ids reserved per node at a time, in one `UPDATE … RETURNING` of the counter; a node's
  /// range is refilled when half of it is used (a batch of 16 MiB holds far fewer lines).
  /// Unused ids of a range are skipped, never reused: 2^63 ids last for millions of years of
  /// runs.
  static let lineIDRange: Int64 = 1 << 22

  /// Makes sure `node`'s range can serve a collect run that starts after the node's newest
  /// batch `lastBatch` (read before the call): ids of a range reserved now lie above every
  /// stored line, so a range is kept only while the node's newest batch is the one this store
  /// committed last from it, and has room.
  func reserveLineIDs(for node: HostID, lastBatch: Int64?) async throws {
    let keep = reservedLineIDs.withLock { ranges in
      let range = ranges[node, default: NodeLineIDs()]
      ranges[node]?.reCorrelated = nil
      return range.remaining >= Self.lineIDRange / 2 && (lastBatch == nil || range.lastCommitted == lastBatch)
    }
    if !keep { try await refillLineIDs(for: node) }
  }

  /// Reserves a fresh range for `node` from the counter. It replaces the node's range unless a
  /// newer one (reserved later, so higher) is already in place: a node's ids only grow.
  func refillLineIDs(for node: HostID) async throws {
    let size = Self.lineIDRange
    guard
      let first = try await client.query(
        "UPDATE line_ids SET next = next + \(size) RETURNING next - \(size)", logger: logger
      ).decode(Int64.self).array().first
    else { throw StoreError(operation: "reserve line ids", message: "the counter row is missing") }
    reservedLineIDs.withLock { ranges in
      var range = ranges[node, default: NodeLineIDs()]
      if first >= range.end {
        range.next = first
        range.end = first + size
      }
      ranges[node] = range
    }
  }

  /// Takes `count` ids of `node`'s range for a batch prepared ahead; `nil` when the range has no
  /// room left (the batch is then correlated in its commit).
  func takeReservedLineIDs(_ count: Int, node: HostID) -> Int64? {
    reservedLineIDs.withLock { ranges in
      guard var range = ranges[node], range.remaining >= Int64(count), range.end > 0 else { return nil }
      let first = range.next
      range.next += Int64(count)
      ranges[node] = range
      return first
    }
  }

  /// After a commit of `node`: what the next batches and runs may rely on, and a refill of the
  /// range once half of it is used (best effort: without one, later batches are correlated in
  /// their commits).
  func committed(node: HostID, batchID: Int64, usedAhead: Bool, hadAhead: Bool) async {
    let refill = reservedLineIDs.withLock { ranges -> Bool in
      var range = ranges[node, default: NodeLineIDs()]
      range.lastCommitted = usedAhead ? batchID : nil
      if hadAhead && !usedAhead { range.reCorrelated = batchID }
      let refill = usedAhead && range.remaining < Self.lineIDRange / 2 && !range.refilling
      if refill { range.refilling = true }
      ranges[node] = range
      return refill
    }
    guard refill else { return }
    try? await refillLineIDs(for: node)
    reservedLineIDs.withLock { $0[node]?.refilling = false }
  }

  /// Whether a batch prepared ahead after `expectedLastBatch` may use that correlation: not when
  /// this store committed that batch correlated again (its ahead state was dropped).
  func aheadStateHolds(node: HostID, after expectedLastBatch: Int64?) -> Bool {
    guard let expectedLastBatch else { return true }
    return reservedLineIDs.withLock { $0[node]?.reCorrelated != expectedLastBatch }
  }

  /// Claims `count` fresh ids from the counter, in a statement of its own; returns the first.
  func claimFreshLineIDs(_ count: Int64) async throws -> Int64 {
    guard count > 0 else { return 0 }
    return try await client.query(
      "UPDATE line_ids SET next = next + \(count) RETURNING next - \(count)", logger: logger
    ).decode(Int64.self).array().first ?? 1
  }
}
