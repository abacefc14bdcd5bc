import Foundation
import Logs
import SVCTraceCore

/// What `svctrace store copy` did.
public struct StoreCopySummary: Sendable, Equatable, Codable {
  /// Node sources copied (wholly or the rest of an interrupted copy), already there, or refused
  /// because the destination has other data for them.
  public var copiedSources = 0
  public var upToDateSources = 0
  public var conflictingSources: [String] = []
  public var batches = 0
  public var lines = 0
  public var connections = 0
  public var snapshots = 0
  /// Settled loss intervals (``LossInterval``) the destination did not have.
  public var lossIntervals = 0

  public init() {}
}

/// Copies a whole store into another (`svctrace store copy`, SQLite ⇄ PostgreSQL), idempotently:
/// each node source goes over batch by batch, committed in the destination as a collect commits
/// (correlated there again, so the connections come out the same); snapshots newer than the
/// destination's newest follow, and the settled loss intervals the destination lacks (each
/// node's loss ledger stays the destination's own: a collect into it starts a new epoch).
///
/// Every batch but a source's last carries a copy cursor (the source's kind, state
/// `svctrace-copy:` and the batch's id in the origin); the last carries the source's own cursor.
/// So a source whose destination cursor is the origin's is skipped, an interrupted copy goes on
/// after the batch it stopped at, and a destination with other data for the source (its own
/// collect) is reported and left alone. The destination node is claimed meanwhile, and each
/// commit compares and swaps its cursor.
package enum StoreCopier {
  /// The origin batches read at a time.
  static let page = 64

  /// The copy cursor after the origin's batch `id`.
  static func copyCursor(kind: String, after id: Int64) -> SourceCursor {
    SourceCursor(kind: kind, state: Array("svctrace-copy:\(id)".utf8))
  }

  /// The origin batch id a copy cursor follows; `nil` for another cursor.
  static func copiedUpTo(_ cursor: SourceCursor) -> Int64? {
    let text = String(decoding: cursor.state, as: UTF8.self)
    guard text.hasPrefix("svctrace-copy:") else { return nil }
    return Int64(text.dropFirst("svctrace-copy:".count))
  }

  /// Copies `origin` into `destination`; `progress` hears the running totals after each batch.
  /// `parser` parses the stored lines again (for their kind of source).
  ///
  /// - Throws: ``StoreError`` from either store.
  package static func copy(
    from origin: any StoreExporting, to destination: any StoreExporting,
    parser makeParser: @escaping TraceStore.ReplayParsers = TraceStore.kernelLogParser,
    progress: (StoreCopySummary) -> Void = { _ in }
  ) async throws -> StoreCopySummary {
    var summary = StoreCopySummary()
    for status in try await origin.collectStatus() {
      let node = HostID(status.node)
      guard let final = try await origin.exportCursor(node: node, source: status.source) else { continue }
      var stored = try await destination.exportCursor(node: node, source: status.source)
      if stored == final {
        summary.upToDateSources += 1
        continue
      }
      var after: Int64 = 0
      if let stored {
        guard let copied = copiedUpTo(stored) else {
          summary.conflictingSources.append("\(status.node) \(status.source)")
          continue
        }
        after = copied
      }
      guard let claim = try await destination.claimCollect(node: node) else {
        summary.conflictingSources.append("\(status.node) \(status.source) (a collect holds it)")
        continue
      }
      defer { claim.release() }
      var parsers: [String: any LineParsing] = [:]
      while true {
        // One more than a page: the origin's last batch is known as such when it comes.
        var batches = try await origin.exportBatches(
          node: node, source: status.source, afterID: after, limit: page + 1)
        let more = batches.count > page
        if more { batches.removeLast() }
        for (index, exported) in batches.enumerated() {
          let last = !more && index == batches.count - 1
          var parser = parsers.removeValue(forKey: exported.kind) ?? makeParser(exported.kind)
          defer { parsers[exported.kind] = parser }
          let cursor = last ? final : copyCursor(kind: exported.kind, after: exported.id)
          var prepared = PreparedBatch(try exported.collected(cursor: cursor, parser: &parser))
          prepared.precondition = .continues(from: stored)
          let committed = try await destination.commit(prepared)
          stored = cursor
          after = exported.id
          summary.batches += 1
          summary.lines += exported.lineCount
          summary.connections += committed.summary.connections
          progress(summary)
        }
        if !more { break }
      }
      summary.copiedSources += 1
    }
    let newest = try await destination.exportSnapshots().map(\.takenAtMicros).max()
    for snapshot in try await origin.exportSnapshots() where newest.map({ snapshot.takenAtMicros > $0 }) ?? true {
      try await destination.ingestSnapshot(
        json: Data(snapshot.json.utf8), takenAtMicros: snapshot.takenAtMicros, source: snapshot.source)
      summary.snapshots += 1
      progress(summary)
    }
    func key(_ interval: LossInterval) -> String {
      "\(interval.node) \(interval.fromMicros) \(interval.untilMicros) \(interval.recordedAtMicros)"
    }
    let present = Set(try await destination.lossIntervals(sinceMicros: nil, untilMicros: nil).map(key))
    let missing = try await origin.lossIntervals(sinceMicros: nil, untilMicros: nil).filter {
      !present.contains(key($0))
    }
    for (node, intervals) in Dictionary(grouping: missing, by: \.node).sorted(by: { $0.key < $1.key }) {
      let host = HostID(node)
      let ledger = try await destination.lossLedger(node: host) ?? LossLedger()
      try await destination.recordLoss(node: host, ledger: ledger, intervals: intervals)
      summary.lossIntervals += intervals.count
      progress(summary)
    }
    return summary
  }
}
