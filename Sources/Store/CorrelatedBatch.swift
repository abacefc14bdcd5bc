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
struct CorrelatedBatch: Sendable {
  var batch: CollectedBatch
  /// The id of the batch's first line (the others follow).
  var firstID: Int64
  var output: Correlator.Output
  /// The state after the batch, encoded, when this batch stores it (see
  /// ``TraceStore/stateInterval``).
  var encodedState: [UInt8]?
  /// The batch's connections, encoded as blocks (what the commit inserts).
  var blocks: [PreparedConnectionBlock]
}

/// The correlator state a node's next batch starts from.
struct CorrelationBase: Sendable {
  var state: CorrelatorState
  /// The node's newest batch when the state was read (`nil`: none).
  var lastBatch: Int64?
}

/// Hands out line-id ranges to batches correlated ahead of their commit: ranges never overlap
/// within the process, whatever order the batches of several nodes commit in.
final class LineIDAllocator: Sendable {
  private let next = Mutex<Int64>(1)

  /// Reserves `count` consecutive ids, none below `floor` (the store's next free id when the
  /// caller last looked), and returns the first.
  func reserve(_ count: Int, floor: Int64) -> Int64 {
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
}

/// The correlator state a node's next batch is correlated against ahead of its commit, and the
/// line ids it may take (see ``TraceStore/prepare(_:base:storesState:staging:)``).
public struct IngestBase: Sendable {
  var correlation: CorrelationBase
  /// The store's next free line id when the run started.
  var lineFloor: Int64

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
  var ahead: CorrelatedBatch?
  /// The node's newest batch the correlation ahead assumed; the commit uses that correlation
  /// only if the store still says so.
  public var expectedLastBatch: Int64?
  var rawWrite: PendingRawWrite?
  var staging: BatchStaging?
}

/// What a commit stored, and whether it had to correlate again in its transaction (the node had
/// moved on since the batch was prepared).
public struct CommitResult: Sendable, Equatable {
  public var summary: CommitSummary
  public var reCorrelated: Bool
}

/// The batch text writer of one collect run (raw segment files this run holds alone).
public final class BatchStaging: Sendable {
  let writer: RawSegmentWriter

  init(writer: RawSegmentWriter) { self.writer = writer }

  /// Waits for the scheduled writes and cuts away the text of batches that did not commit.
  public func close() async { await writer.close() }
}
