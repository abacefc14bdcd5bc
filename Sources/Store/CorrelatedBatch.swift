public import Logs
import Synchronization

/// A batch correlated before its transaction, on the task that collected it, so that the single
/// database writer only writes.
///
/// It was correlated against the node's state after the batch the collect committed last, with
/// line ids reserved from the store's ``LineIDAllocator``. Its commit uses the result only when
/// that batch is still the node's newest and no stored line has one of its ids; otherwise
/// (another process collected the node meanwhile, or the previous commit failed) the commit
/// correlates the batch again inside its transaction.
package struct CorrelatedBatch: Sendable {
  package var batch: CollectedBatch
  /// The id of the batch's first line (the others follow).
  package var firstID: Int64
  package var output: Correlator.Output
  /// The state after the batch, encoded, when this batch stores it (see
  /// ``TraceStore/stateInterval``).
  package var encodedState: [UInt8]?
  /// The batch's connections, encoded as blocks (what the commit inserts).
  package var blocks: [PreparedConnectionBlock]

  package init(
    batch: CollectedBatch, firstID: Int64, output: Correlator.Output, encodedState: [UInt8]?,
    blocks: [PreparedConnectionBlock]
  ) {
    self.batch = batch
    self.firstID = firstID
    self.output = output
    self.encodedState = encodedState
    self.blocks = blocks
  }
}

/// The correlator state a node's next batch starts from.
package struct CorrelationBase: Sendable {
  package var state: CorrelatorState
  /// The node's newest batch when the state was read (`nil`: none).
  package var lastBatch: Int64?

  package init(state: CorrelatorState, lastBatch: Int64?) {
    self.state = state
    self.lastBatch = lastBatch
  }
}

/// Hands out line-id ranges to batches correlated ahead of their commit: ranges never overlap
/// within the process, whatever order the batches of several nodes commit in.
package final class LineIDAllocator: Sendable {
  private let next = Mutex<Int64>(1)

  package init() {}

  /// Reserves `count` consecutive ids, none below `floor` (the store's next free id when the
  /// caller last looked), and returns the first.
  package func reserve(_ count: Int, floor: Int64) -> Int64 {
    next.withLock { next in
      let first = max(next, floor)
      next = first + Int64(count)
      return first
    }
  }
}

/// Where a collect run starts: the committed cursor of its source and the node's correlator
/// state (see ``TraceStore/ingestStart(node:source:)``).
public struct IngestStart: Sendable {
  /// The committed cursor, `nil` before the source's first collect.
  public var cursor: SourceCursor?
  /// The state the run's first batch is correlated against, ahead of its commit.
  public var base: IngestBase

  package init(cursor: SourceCursor?, base: IngestBase) {
    self.cursor = cursor
    self.base = base
  }
}

/// The correlator state a node's next batch is correlated against ahead of its commit, and the
/// line ids it may take (see ``TraceStore/prepare(_:base:storesState:staging:)``).
public struct IngestBase: Sendable {
  package var correlation: CorrelationBase
  /// The store's next free line id when the run started.
  package var lineFloor: Int64

  package init(correlation: CorrelationBase, lineFloor: Int64) {
    self.correlation = correlation
    self.lineFloor = lineFloor
  }

  /// The node's newest batch this state follows (`nil`: none).
  public var lastBatch: Int64? { correlation.lastBatch }
}

/// What a batch's commit must find stored as its source's cursor: a compare-and-swap, so that
/// two collects of one node (a cron `collect` beside `trace --follow`, two processes) never
/// store the same bytes twice.
public enum CursorPrecondition: Sendable, Equatable {
  /// No check: the batch is committed whatever the stored cursor (tests, a batch on its own).
  case unchecked
  /// The stored cursor must be this one, the cursor the batch was pulled after (`nil`: none is
  /// stored yet). Otherwise the commit stores nothing and fails with ``StoreError`` cause
  /// ``StoreError/Cause/cursorMoved``.
  case continues(from: SourceCursor?)
}

/// A batch ready for its commit: maybe correlated ahead, its text maybe already on its way to a
/// raw segment.
public struct PreparedBatch: Sendable {
  public var batch: CollectedBatch
  /// The cursor the commit must find stored (see ``CursorPrecondition``).
  public var precondition: CursorPrecondition
  package var ahead: CorrelatedBatch?
  /// The node's newest batch the correlation ahead assumed; the commit uses that correlation
  /// only if the store still says so.
  public var expectedLastBatch: Int64?
  var rawWrite: PendingRawWrite?
  package var staging: BatchStaging?

  init(
    batch: CollectedBatch, precondition: CursorPrecondition, ahead: CorrelatedBatch?, expectedLastBatch: Int64?,
    rawWrite: PendingRawWrite?, staging: BatchStaging?
  ) {
    self.batch = batch
    self.precondition = precondition
    self.ahead = ahead
    self.expectedLastBatch = expectedLastBatch
    self.rawWrite = rawWrite
    self.staging = staging
  }

  /// A batch prepared by a store without raw segment files (its text goes in the commit).
  package init(
    batch: CollectedBatch, precondition: CursorPrecondition, ahead: CorrelatedBatch?, expectedLastBatch: Int64?
  ) {
    self.init(
      batch: batch, precondition: precondition, ahead: ahead, expectedLastBatch: expectedLastBatch, rawWrite: nil,
      staging: nil)
  }
}

/// What a commit stored, and whether it had to correlate again in its transaction (the node had
/// moved on since the batch was prepared).
public struct CommitResult: Sendable, Equatable {
  public var summary: CommitSummary
  public var reCorrelated: Bool

  package init(summary: CommitSummary, reCorrelated: Bool) {
    self.summary = summary
    self.reCorrelated = reCorrelated
  }
}

/// The batch text writer of one collect run (raw segment files this run holds alone).
public final class BatchStaging: Sendable {
  let writer: RawSegmentWriter

  init(writer: RawSegmentWriter) { self.writer = writer }

  /// Waits for the scheduled writes and cuts away the text of batches that did not commit.
  public func close() async { await writer.close() }
}
