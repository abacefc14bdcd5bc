import Foundation
public import Logs
import NIOCore
import PostgresNIO
public import SVCTraceCore
public import Store

extension PostgresTraceStore {
  /// The loss accounting's tables (migration `line-loss`; see `TraceStore.lossSchema`).
  static let lossSchema = [
    """
    CREATE TABLE loss_intervals (
      id bigserial PRIMARY KEY, node_id bigint NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
      from_time bigint NOT NULL, until_time bigint NOT NULL, packets bigint NOT NULL, lines bigint NOT NULL,
      lost bigint NOT NULL, rsyslog_running boolean NOT NULL, recorded_at bigint NOT NULL)
    """,
    "CREATE INDEX loss_intervals_by_time ON loss_intervals(until_time)",
    "CREATE INDEX loss_intervals_by_node ON loss_intervals(node_id, recorded_at)",
    """
    CREATE TABLE loss_ledgers (
      node_id bigint PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE, ledger bytea, checked_at bigint)
    """,
  ]

  public func lossLedger(node: HostID) async throws -> LossLedger? {
    let data: [UInt8]? = try await reading("read the loss ledger of \(node)") { db in
      try await db.rows(
        """
        SELECT l.ledger FROM loss_ledgers l JOIN nodes n ON n.id = l.node_id
        WHERE n.name = \(node.name) AND l.ledger IS NOT NULL
        """, logger
      ).decode(ByteBuffer.self).array().first?.bytes
    }
    return data.flatMap { LossLedger.decoded(Data($0)) }
  }

  public func recordLoss(node: HostID, ledger: LossLedger, intervals: [LossInterval]) async throws {
    let data = try ledger.encoded()
    try await run("record the loss of \(node)") {
      try await client.withTransaction(logger: logger) { db in
        let id = try await Self.nodeID(db, inserting: node, logger)
        try await db.rows(
          """
          INSERT INTO loss_ledgers (node_id, ledger) VALUES (\(id), \(data.buffer))
          ON CONFLICT (node_id) DO UPDATE SET ledger = excluded.ledger
          """, logger
        ).array()
        for interval in intervals {
          try await db.rows(
            """
            INSERT INTO loss_intervals (node_id, from_time, until_time, packets, lines, lost, rsyslog_running,
              recorded_at)
            VALUES (\(id), \(interval.fromMicros), \(interval.untilMicros), \(interval.packets), \(interval.lines),
              \(interval.lost), \(interval.rsyslogRunning), \(interval.recordedAtMicros))
            """, logger
          ).array()
        }
      }
    }
  }

  private typealias IntervalRow = (String, Int64, Int64, Int64, Int64, Int64, Bool, Int64)

  private static func interval(_ row: IntervalRow) -> LossInterval {
    LossInterval(
      node: row.0, fromMicros: row.1, untilMicros: row.2, packets: row.3, lines: row.4, lost: row.5,
      rsyslogRunning: row.6, recordedAtMicros: row.7)
  }

  public func lossIntervals(sinceMicros: Int64?, untilMicros: Int64?) async throws -> [LossInterval] {
    let since = sinceMicros ?? Int64.min
    let until = untilMicros ?? Int64.max
    return try await reading("read the loss intervals") { db in
      try await db.rows(
        """
        SELECT n.name, i.from_time, i.until_time, i.packets, i.lines, i.lost, i.rsyslog_running, i.recorded_at
        FROM loss_intervals i JOIN nodes n ON n.id = i.node_id
        WHERE i.until_time >= \(since) AND i.from_time <= \(until)
        ORDER BY n.name, i.from_time, i.id
        """, logger
      ).decode(IntervalRow.self).array().map(Self.interval)
    }
  }

  public func checkLoss(node: HostID, atMicros: Int64) async throws -> LossCheck {
    try await run("check the loss of \(node)") {
      try await client.withTransaction(logger: logger) { db in
        let id = try await Self.nodeID(db, inserting: node, logger)
        let row = try await db.rows(
          "SELECT ledger IS NOT NULL, checked_at FROM loss_ledgers WHERE node_id = \(id) FOR UPDATE", logger
        ).decode((Bool, Int64?).self).array().first
        let previous = row?.1
        let intervals = try await db.rows(
          """
          SELECT n.name, i.from_time, i.until_time, i.packets, i.lines, i.lost, i.rsyslog_running, i.recorded_at
          FROM loss_intervals i JOIN nodes n ON n.id = i.node_id
          WHERE i.node_id = \(id) AND i.lost > 0 AND i.recorded_at > \(previous ?? Int64.min)
            AND i.recorded_at <= \(atMicros)
          ORDER BY i.from_time, i.id
          """, logger
        ).decode(IntervalRow.self).array().map(Self.interval)
        try await db.rows(
          """
          INSERT INTO loss_ledgers (node_id, checked_at) VALUES (\(id), \(atMicros))
          ON CONFLICT (node_id) DO UPDATE SET checked_at = excluded.checked_at
          """, logger
        ).array()
        return LossCheck(previousCheckMicros: previous, intervals: intervals, accounted: row?.0 ?? false)
      }
    }
  }
}
