public import Foundation
public import GRDB
public import Logs
public import SVCTraceCore

/// What ``TraceStoring/checkLoss(node:atMicros:)`` found: the node's losses settled since the
/// previous check.
public struct LossCheck: Sendable, Equatable {
  /// When the node was checked last (`nil`: never).
  public var previousCheckMicros: Int64?
  /// Intervals with lines lost, recorded since the previous check, oldest first.
  public var intervals: [LossInterval]
  /// Whether the node's loss is accounted at all (a collect read its counters).
  public var accounted: Bool

  public init(previousCheckMicros: Int64?, intervals: [LossInterval], accounted: Bool) {
    self.previousCheckMicros = previousCheckMicros
    self.intervals = intervals
    self.accounted = accounted
  }

  /// Lines lost in ``intervals``.
  public var lost: Int64 { intervals.reduce(0) { $0 + $1.lost } }
}

extension LossLedger {
  /// The stored form (JSON).
  package func encoded() throws -> Data { try JSONEncoder().encode(self) }

  /// Reads the stored form; `nil` for one this build cannot read (a new ledger starts then).
  package static func decoded(_ data: Data) -> LossLedger? { try? JSONDecoder().decode(LossLedger.self, from: data) }
}

extension TraceStore {
  /// The schema of the loss accounting (migration `line-loss`, after `v1`).
  static let lossSchema = """
    -- Lines lost per node and settled collect interval (LossLedger): packets the LOG rules
    -- counted, lines of them that reached the file, lines lost; times on the collector's clock.
    CREATE TABLE loss_intervals (
      id INTEGER PRIMARY KEY,
      node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
      from_time INTEGER NOT NULL,
      until_time INTEGER NOT NULL,
      packets INTEGER NOT NULL,
      lines INTEGER NOT NULL,
      lost INTEGER NOT NULL,
      rsyslog_running INTEGER NOT NULL,
      recorded_at INTEGER NOT NULL
    );
    CREATE INDEX loss_intervals_by_time ON loss_intervals(until_time);
    CREATE INDEX loss_intervals_by_node ON loss_intervals(node_id, recorded_at);
    -- Each node's LossLedger (JSON) between collects, and when verify last checked its loss.
    CREATE TABLE loss_ledgers (
      node_id INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
      ledger BLOB,
      checked_at INTEGER
    );
    """

  public func lossLedger(node: HostID) async throws -> LossLedger? {
    let data: Data? = try await reading("read the loss ledger of \(node)") { db in
      try Data.fetchOne(
        db,
        sql: "SELECT l.ledger FROM loss_ledgers l JOIN nodes n ON n.id = l.node_id WHERE n.name = ?",
        arguments: [node.name])
    }
    return data.flatMap(LossLedger.decoded)
  }

  public func recordLoss(node: HostID, ledger: LossLedger, intervals: [LossInterval]) async throws {
    let data = try ledger.encoded()
    try await writing("record the loss of \(node)") { db in
      let id = try Self.nodeID(db, node)
      try db.execute(
        sql: """
          INSERT INTO loss_ledgers (node_id, ledger) VALUES (?, ?)
          ON CONFLICT (node_id) DO UPDATE SET ledger = excluded.ledger
          """, arguments: [id, data])
      for interval in intervals {
        try Self.insert(interval, nodeID: id, db)
      }
    }
  }

  static func insert(_ interval: LossInterval, nodeID id: Int64, _ db: Database) throws {
    try db.execute(
      sql: """
        INSERT INTO loss_intervals (node_id, from_time, until_time, packets, lines, lost, rsyslog_running, recorded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: [
        id, interval.fromMicros, interval.untilMicros, interval.packets, interval.lines, interval.lost,
        interval.rsyslogRunning, interval.recordedAtMicros,
      ])
  }

  static let intervalColumns = """
    n.name, i.from_time, i.until_time, i.packets, i.lines, i.lost, i.rsyslog_running, i.recorded_at
    FROM loss_intervals i JOIN nodes n ON n.id = i.node_id
    """

  static func interval(_ row: Row) -> LossInterval {
    LossInterval(
      node: row[0], fromMicros: row[1], untilMicros: row[2], packets: row[3], lines: row[4], lost: row[5],
      rsyslogRunning: row[6], recordedAtMicros: row[7])
  }

  public func lossIntervals(sinceMicros: Int64?, untilMicros: Int64?) async throws -> [LossInterval] {
    try await reading("read the loss intervals") { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT \(Self.intervalColumns)
          WHERE i.until_time >= ? AND i.from_time <= ?
          ORDER BY n.name, i.from_time, i.id
          """, arguments: [sinceMicros ?? Int64.min, untilMicros ?? Int64.max]
      ).map(Self.interval)
    }
  }

  public func checkLoss(node: HostID, atMicros: Int64) async throws -> LossCheck {
    try await writing("check the loss of \(node)") { db in
      let id = try Self.nodeID(db, node)
      let row = try Row.fetchOne(
        db, sql: "SELECT ledger IS NOT NULL, checked_at FROM loss_ledgers WHERE node_id = ?", arguments: [id])
      let accounted: Bool = row?[0] ?? false
      let previous: Int64? = row.flatMap { $0[1] as Int64? }
      let intervals = try Row.fetchAll(
        db,
        sql: """
          SELECT \(Self.intervalColumns)
          WHERE i.node_id = ? AND i.lost > 0 AND i.recorded_at > ? AND i.recorded_at <= ?
          ORDER BY i.from_time, i.id
          """, arguments: [id, previous ?? Int64.min, atMicros]
      ).map(Self.interval)
      try db.execute(
        sql: """
          INSERT INTO loss_ledgers (node_id, checked_at) VALUES (?, ?)
          ON CONFLICT (node_id) DO UPDATE SET checked_at = excluded.checked_at
          """, arguments: [id, atMicros])
      return LossCheck(previousCheckMicros: previous, intervals: intervals, accounted: accounted)
    }
  }
}
