public import GRDB

/// Where collection stands for one node and source (`svctrace collect` summary, `status`).
public struct CollectStatus: Sendable, Equatable, Codable, FetchableRecord {
  public var node: String
  public var source: String
  /// The kind of source (``SourceCursor/kind``); its position is the source's own.
  public var kind: String
  /// Local time of the last committed batch, µs since the epoch.
  public var lastCollectedAt: Int64?
  /// Totals over all stored batches.
  public var batches: Int
  public var lines: Int
  public var skipped: Int
  public var connections: Int
  /// Pre lines still waiting for their post line.
  public var pending: Int
  /// The clock offset and bound measured by the last batch, µs.
  public var clockOffset: Int64?
  public var clockBound: Int64?

  package init(
    node: String, source: String, kind: String, lastCollectedAt: Int64?, batches: Int, lines: Int, skipped: Int,
    connections: Int, pending: Int, clockOffset: Int64?, clockBound: Int64?
  ) {
    self.node = node
    self.source = source
    self.kind = kind
    self.lastCollectedAt = lastCollectedAt
    self.batches = batches
    self.lines = lines
    self.skipped = skipped
    self.connections = connections
    self.pending = pending
    self.clockOffset = clockOffset
    self.clockBound = clockBound
  }
}

extension TraceStore {
  /// One row per node and source that was ever collected, sorted by node.
  ///
  /// - Throws: ``StoreError``.
  public func collectStatus() throws -> [CollectStatus] {
    try reading("read the collect status") { db in
      try CollectStatus.fetchAll(
        db,
        sql: """
          SELECT n.name AS node, c.source AS source, c.kind AS kind,
            (SELECT MAX(collected_at) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source)
              AS lastCollectedAt,
            (SELECT COUNT(*) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source) AS batches,
            (SELECT IFNULL(SUM(lines), 0) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source)
              AS lines,
            (SELECT IFNULL(SUM(skipped), 0) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source)
              AS skipped,
            (SELECT IFNULL(SUM(connections), 0) FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source)
              AS connections,
            (SELECT IFNULL(SUM(pending), 0) FROM line_blocks b WHERE b.node_id = c.node_id) AS pending,
            (SELECT clock_offset_us FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source
              ORDER BY id DESC LIMIT 1) AS clockOffset,
            (SELECT clock_bound_us FROM batches b WHERE b.node_id = c.node_id AND b.source = c.source
              ORDER BY id DESC LIMIT 1) AS clockBound
          FROM cursors c JOIN nodes n ON n.id = c.node_id
          ORDER BY n.name, c.source
          """)
    }
  }
}
