import GRDB

extension TraceStore {
  /// The id of the newest stored connection, `nil` for an empty store: where `trace --follow`
  /// starts (``TraceQuery/afterID``).
  /// - Throws: ``StoreError``.
  public func latestConnectionID() throws -> Int64? {
    try reading("read the newest connection id") { db in
      try Int64.fetchOne(db, sql: "SELECT id << 24 | max_slot FROM connection_blocks ORDER BY id DESC LIMIT 1")
    }
  }
}
