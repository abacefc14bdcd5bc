import Foundation
import Logs

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
  /// The node's newest batch when the state was read (`nil`: none, or a row from before v5).
  var lastBatch: Int64?
}

/// Hands out line-id ranges to batches correlated ahead of their commit: ranges never overlap
/// within the process, whatever order the batches of several nodes commit in.
final class LineIDAllocator: @unchecked Sendable {
  private let lock = NSLock()
  private var next: Int64 = 1

  /// Reserves `count` consecutive ids, none below `floor` (the store's next free id when the
  /// caller last looked), and returns the first.
  func reserve(_ count: Int, floor: Int64) -> Int64 {
    lock.lock()
    defer { lock.unlock() }
    let first = max(next, floor)
    next = first + Int64(count)
    return first
  }
}
