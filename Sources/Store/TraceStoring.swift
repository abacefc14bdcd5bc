public import Foundation
public import Logs
public import SVCTraceCore

/// What svctrace needs from a store: the ingest side (cursors, correlator state, atomic batch
/// commits) and the read side (lookups, `--explain`, stats, names, status, prune).
///
/// ``TraceStore`` (SQLite) implements it; the behaviour every implementation must show is one
/// test suite run against each (StoreTests/StoreBehaviourTests.swift).
public protocol TraceStoring: Sendable {
  // MARK: Ingest

  /// Where a collect of `node`'s `source` starts: the cursor committed with the source's last
  /// batch and the node's correlator state after its newest batch (replayed when the last
  /// collect stopped between two stored states).
  func ingestStart(node: HostID, source: String) async throws -> IngestStart

  /// Claims `node` for one collect run, across processes: `nil` while another collect holds it
  /// (the caller skips the node instead of pulling what the other pulls). Released with
  /// ``CollectClaim/release()`` or when the process ends. Correctness does not rest on it: the
  /// cursor's compare-and-swap in ``commit(_:)`` keeps two collects that both run apart.
  func claimCollect(node: HostID) async throws -> CollectClaim?

  /// A writer of batch text ahead of the commits for one collect run; `nil` when the store
  /// writes the text in the commit.
  func makeStaging() -> BatchStaging?

  /// Prepares `batch`, pulled after the cursor `start`, for ``commit(_:)`` on the caller's task,
  /// off the store's writer: correlated against `base` (which moves on) when one is given, its
  /// text handed to `staging`. `storesState`: the commit stores the correlator state after the
  /// batch. Its commit requires `start` to be the source's stored cursor
  /// (``CursorPrecondition/continues(from:)``).
  func prepare(
    _ batch: CollectedBatch, after start: SourceCursor?, base: inout IngestBase?, storesState: Bool,
    staging: BatchStaging?
  ) -> PreparedBatch

  /// Commits one prepared batch atomically: its lines, the connections they complete (with
  /// the node's pending lines from earlier batches), rewrites of connections whose first
  /// packet was DNATed again, the correlator state and the source's cursor. On any error
  /// nothing of it is stored and the cursor is unchanged.
  ///
  /// The cursor is compared and swapped in the same transaction: when the batch's
  /// ``PreparedBatch/precondition`` names another cursor than the stored one (another collect
  /// of the node committed meanwhile), nothing is stored and it throws ``StoreError`` with cause
  /// ``StoreError/Cause/cursorMoved``.
  @discardableResult
  func commit(_ prepared: PreparedBatch) async throws -> CommitResult

  // MARK: Read

  /// Stored connections matching `query`, oldest first.
  func connections(matching query: TraceQuery) async throws -> [ConnectionRecord]
  /// The packet lines behind a connection, for `trace --explain`.
  func explain(_ record: ConnectionRecord) async throws -> [StoredLine]
  /// Stored lines by id.
  func lines(ids: [Int64]) async throws -> [StoredLine]
  /// The id of the newest stored connection (`trace --follow` polls with it).
  func latestConnectionID() async throws -> Int64?
  /// How a Service's connections spread over its endpoints.
  func stats(service: ServiceSelector, sinceMicros: Int64?, untilMicros: Int64?) async throws -> ServiceStats
  /// Each node source's cursor and totals.
  func collectStatus() async throws -> [CollectStatus]

  // MARK: Lost lines

  /// `node`'s loss accounting as the last collect left it (`nil`: none yet).
  func lossLedger(node: HostID) async throws -> LossLedger?
  /// Stores `node`'s ledger and the intervals it settled, in one transaction.
  func recordLoss(node: HostID, ledger: LossLedger, intervals: [LossInterval]) async throws
  /// Every node's settled intervals that overlap [`sinceMicros`, `untilMicros`] (`nil`: open),
  /// by node, oldest first.
  func lossIntervals(sinceMicros: Int64?, untilMicros: Int64?) async throws -> [LossInterval]
  /// `node`'s intervals with lines lost recorded since its previous check, and marks this one
  /// (at `atMicros`, this workstation's clock): `verify` fails a node once per loss.
  func checkLoss(node: HostID, atMicros: Int64) async throws -> LossCheck

  // MARK: Names and retention

  /// Stores a cluster snapshot and the name rows derived from it.
  @discardableResult
  func ingestSnapshot(json: Data, takenAtMicros: Int64, source: String) async throws -> SnapshotSummary
  /// Deletes what is older than `cutoffMicros`, keeping what later data still needs.
  @discardableResult
  func prune(olderThan cutoffMicros: Int64) async throws -> PruneSummary
}

extension PreparedBatch {
  /// A batch committed on its own: correlated in the commit's transaction, its text written
  /// there, whatever the stored cursor (``CursorPrecondition/unchecked``).
  public init(_ batch: CollectedBatch) {
    self.init(
      batch: batch, precondition: .unchecked, ahead: nil, expectedLastBatch: nil, rawWrite: nil, staging: nil)
  }
}

/// A store whose commit can fail on purpose, for the tests that a failed commit leaves nothing
/// behind.
package protocol FaultInjectableStore: TraceStoring {
  /// ``TraceStoring/commit(_:)`` calling `faultInjection` inside the transaction, just before
  /// the cursor is written.
  func commit(_ prepared: PreparedBatch, faultInjection: (@Sendable () throws -> Void)?) async throws
    -> CommitResult
}
