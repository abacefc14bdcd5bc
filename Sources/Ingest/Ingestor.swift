public import Logs
public import SVCTraceCore
public import Store

/// What one ``Ingestor/collect(from:makeParser:clock:maxBytes:progress:)`` run did for one
/// source.
public struct CollectSummary: Sendable, Equatable {
  public var node: HostID
  public var batches = 0
  public var bytes = 0
  public var transferredBytes = 0
  public var lines = 0
  public var skipped = 0
  public var connections = 0
  /// Of ``connections``: pre lines kept without a pod (no post line came, `MatchMethod.podUnknown`).
  public var podUnknown = 0
  public var events: [CaptureEvent] = []
  /// Pending pre lines the correlator dropped (their key held too many newer ones, see
  /// `CorrelationSettings.maxPendingPerKey`).
  public var droppedPending = 0
  /// The run stopped early, or did not start, because another collect had the node (a cron
  /// `collect` beside `trace --follow`): it held the node's claim, or committed past this run's
  /// cursor. Nothing was stored twice.
  public var yieldedToOtherCollect = false
  /// The node's clock offset the batches were stored with: the tightest sample of the run
  /// (each exchange with the node carries one), else the one the caller gave.
  public var clock: ClockOffset?
  /// Whether the source read the LOG rules' counters (see ``LossLedger``).
  public var countersRead = false
  /// Collect intervals the run settled, with the lines lost in each (quiet ones left out).
  public var lossIntervals: [LossInterval] = []
  /// Packets counted whose lines are not judged yet (they may still be on their way).
  public var unsettledPackets: Int64 = 0
  /// Why the loss accounting began anew in this run (rules rewritten, reboot), if it did.
  public var lossEpoch: String?

  /// Lines lost in the intervals the run settled.
  public var linesLost: Int64 { lossIntervals.reduce(0) { $0 + $1.lost } }

  public init(node: HostID) { self.node = node }
}

/// The ingest pipeline: pulls a capture source, parses each chunk, correlates it ahead of its
/// commit and hands the prepared batches to the store, one commit in flight at a time.
public struct Ingestor: Sendable {
  /// Events after which lines are missing from what was read (the loss accounting starts anew).
  static func losesLines(_ event: CaptureEvent) -> Bool {
    switch event {
    case .cursorFileLost, .truncated: true
    case .followedRotation, .started: false
    }
  }

  public let store: any TraceStoring
  /// Whether a run claims its node first (``TraceStoring/claimCollect(node:)``) and skips it
  /// while another collect holds it. Without, two runs of one node both pull, and the cursor's
  /// compare-and-swap stops the one that commits second.
  public let claimsNodes: Bool

  public init(store: any TraceStoring, claimsNodes: Bool = true) {
    self.store = store
    self.claimsNodes = claimsNodes
  }

  /// How many batches of a collect run share one stored correlator state (it is stored with
  /// every `stateInterval`th batch and the last of a run): encoding and writing the state cost
  /// as much as the rest of a commit.
  public static let stateInterval = 8

  /// Pulls `source` until it is caught up, committing each chunk (lines, connections, cursor)
  /// in its own transaction.
  ///
  /// Interrupting it (error, cancellation, kill) loses nothing: the cursor only moves with the
  /// data it covers, and the next run resumes there (replaying the batches committed after the
  /// node's last stored correlator state).
  ///
  /// A source that reads the LOG rules' counters (``SourceChunk/counters``) feeds them, after
  /// each pull's lines, to the node's ``LossLedger``; the intervals it settles come back in
  /// ``CollectSummary/lossIntervals`` and are stored, with the ledger, when the run ends (a run
  /// that fails saves no ledger, and the next one starts a new epoch).
  ///
  /// Two collects of one source at once (two processes) store nothing twice: a run first claims
  /// its node and returns at once (``CollectSummary/yieldedToOtherCollect``) while another
  /// holds it; and each commit requires the cursor its batch was pulled after, the run whose
  /// commit finds it moved stopping there the same way.
  ///
  /// - Parameters:
  ///   - makeParser: builds a fresh parser (e.g. `{ PacketLineParser() }`).
  ///   - clock: the node's clock offset when the source samples none (a local file: `.zero`);
  ///     a source's own samples (``SourceChunk/clock``) are used when it has them, the
  ///     tightest one of the run.
  ///   - maxBytes: the size of one pull (and so of one transaction).
  ///   - progress: called after each committed batch with the running totals.
  /// - Throws: ``CaptureError``, `RemoteError`, ``StoreError``,
  ///   `CancellationError`.
  public func collect<Parser: LineParsing>(
    from source: some CaptureSource, makeParser: () -> Parser, clock given: ClockOffset? = nil,
    maxBytes: Int = 16 << 20,
    progress: (@Sendable (CollectSummary) -> Void)? = nil
  ) async throws -> CollectSummary {
    let store = self.store
    var summary = CollectSummary(node: source.node)
    var sampled: ClockOffset?
    let claim: CollectClaim?
    if claimsNodes {
      guard let claimed = try await store.claimCollect(node: source.node) else {
        // Another collect has the node: it pulls what this one would.
        summary.yieldedToOtherCollect = true
        return summary
      }
      claim = claimed
    } else {
      claim = nil
    }
    defer { claim?.release() }
    let start = try await store.ingestStart(node: source.node, source: source.sourceID)
    var cursor = start.cursor
    var parser = makeParser()
    // The loss accounting: the lines of each pull, then the counters read after them.
    var ledger = try await store.lossLedger(node: source.node) ?? LossLedger()
    ledger.resume(lastBatch: start.base.lastBatch)
    var idlePulls = 0
    // Each batch is correlated here, right after it is parsed, against the state the node's
    // previous batch left: the database writer, shared by every node, only writes. One commit
    // runs while the next chunk is pulled, parsed and correlated; the next commit starts only
    // when it is done, so batches commit in order and the stored cursor never passes
    // uncommitted data. `base` is `nil` once the store changed under this collect (another
    // writer): the commits then correlate in their transaction, against what is stored.
    var base: IngestBase? = start.base
    // The node's newest batch as this collect knows it: a commit uses its batch's correlation
    // only if the store still says so (no one else collected the node meanwhile).
    var lastBatch = start.base.lastBatch
    var batchesInRun = 0
    // The batches' raw text goes to segments this collect holds alone, written and flushed on
    // the writer's queue while the batch is correlated and the previous one commits.
    let staging = store.makeStaging()
    let collected: CollectSummary
    do {
      collected = try await withThrowingTaskGroup(of: (CollectedBatch, CommitResult).self) { group in
        func account(_ batch: CollectedBatch, _ committed: CommitResult) {
          lastBatch = committed.summary.batchID
          summary.batches += 1
          summary.bytes += batch.byteCount
          summary.transferredBytes += batch.transferredBytes
          summary.lines += batch.lineCount
          summary.skipped += batch.skippedCount
          summary.connections += committed.summary.connections
          summary.podUnknown += committed.summary.correlation.podUnknown
          summary.droppedPending += committed.summary.correlation.dropped
          if committed.reCorrelated { base = nil }
          progress?(summary)
        }
        func judge(_ chunk: SourceChunk) {
          guard let sample = chunk.counters else { return }
          summary.countersRead = true
          let update = ledger.add(
            sample, caughtUp: chunk.isCaughtUp, clock: chunk.clock ?? summary.clock ?? .zero, node: source.node,
            nowMicros: ClockOffset.wallClockMicros())
          summary.lossIntervals += update.intervals
          if let reason = update.newEpoch { summary.lossEpoch = reason }
        }
        var inFlight = false
        while true {
          try Task.checkCancellation()
          let chunk: SourceChunk
          do {
            chunk = try await source.pull(after: cursor, maxBytes: maxBytes)
          } catch {
            // Keep what is committing (a failed pull is no reason to roll it back).
            if inFlight, let (done, committed) = try await group.next() {
              account(done, committed)
            }
            throw error
          }
          summary.events += chunk.events
          if let sample = chunk.clock { sampled = sampled.map { $0.tighter(sample) } ?? sample }
          summary.clock = sampled ?? given
          if chunk.events.contains(where: Self.losesLines) { ledger.breakEpoch() }
          let isEmpty = chunk.data.isEmpty && chunk.connections.isEmpty
          if isEmpty, chunk.cursor == cursor {
            judge(chunk)
            break
          }
          // A source that keeps moving without data or restarts twice is confused: stop rather
          // than loop (the committed cursor stays valid).
          idlePulls = isEmpty ? idlePulls + 1 : 0
          let restarts = summary.events.filter { $0 == .cursorFileLost }.count
          guard idlePulls < 64, restarts < 2 else {
            throw CaptureError(
              host: source.node, operation: "collect \(source.sourceID)", cause: .noProgress,
              message: "the source made no progress (\(chunk.events.map(\.description).joined(separator: "; ")))")
          }
          let batch = CollectedBatch(
            chunk: chunk, node: source.node, sourceID: source.sourceID, parser: &parser, clock: summary.clock ?? .zero)
          ledger.add(lines: batch.lines)
          judge(chunk)
          // The state is stored with the run's last batch and every `stateInterval`th: a
          // collect interrupted in between is continued by replaying the few batches since.
          batchesInRun += 1
          let storesState = chunk.isCaughtUp || batchesInRun % Self.stateInterval == 0
          var prepared = store.prepare(
            batch, after: cursor, base: &base, storesState: storesState, staging: staging)
          if inFlight, let (done, committed) = try await group.next() {
            account(done, committed)
          }
          prepared.expectedLastBatch = lastBatch
          group.addTask { [prepared] in
            (prepared.batch, try await store.commit(prepared))
          }
          inFlight = true
          cursor = batch.cursor
          if chunk.isCaughtUp { break }
        }
        while let (done, committed) = try await group.next() {
          account(done, committed)
        }
        return summary
      }
      await staging?.close()
    } catch let error as StoreError where error.cause == .cursorMoved {
      // Another collect of the node committed past this run's cursor: it has the node. The
      // batches committed so far stay; the refused one stored nothing.
      await staging?.close()
      summary.yieldedToOtherCollect = true
      return summary
    } catch {
      // Cuts away the text of batches that did not commit.
      await staging?.close()
      throw error
    }
    // The ledger, saved with the node's newest batch: the next collect resumes it.
    var done = collected
    if done.countersRead {
      ledger.lastBatch = lastBatch
      done.unsettledPackets = ledger.unsettledPackets
      try await store.recordLoss(node: source.node, ledger: ledger, intervals: done.lossIntervals)
    }
    return done
  }
}
