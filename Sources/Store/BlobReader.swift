import GRDB
import GRDBSQLite

/// Reads byte ranges of one row's BLOB columns with SQLite's incremental blob I/O, so a line of
/// a multi-megabyte line block costs a few page reads rather than loading the whole value.
struct BlobReader {
  let db: Database
  let table: String
  let row: Int64

  init(_ db: Database, table: String, row: Int64) {
    self.db = db
    self.table = table
    self.row = row
  }

  /// `range` of `column`'s value.
  ///
  /// - Throws: `StoreError` when the row, the column or the range is not there.
  func bytes(column: String, range: Range<Int>) throws -> [UInt8] {
    var handle: OpaquePointer?
    defer { sqlite3_blob_close(handle) }
    let opened = sqlite3_blob_open(db.sqliteConnection, "main", table, column, row, 0, &handle)
    guard opened == SQLITE_OK, let handle else {
      throw StoreError(
        operation: "read \(table).\(column) of row \(row)", message: db.lastErrorMessage ?? "code \(opened)")
    }
    guard range.lowerBound >= 0, range.upperBound <= Int(sqlite3_blob_bytes(handle)) else {
      throw StoreError(operation: "read \(table).\(column) of row \(row)", message: "range \(range) out of bounds")
    }
    var bytes = [UInt8](repeating: 0, count: range.count)
    guard !bytes.isEmpty else { return bytes }
    let read = bytes.withUnsafeMutableBytes {
      sqlite3_blob_read(handle, $0.baseAddress, Int32(range.count), Int32(range.lowerBound))
    }
    guard read == SQLITE_OK else {
      throw StoreError(operation: "read \(table).\(column) of row \(row)", message: "code \(read)")
    }
    return bytes
  }

  /// The fixed-width integer stored at byte `offset` of `column` (in the host's byte order).
  func integer<T: FixedWidthInteger>(_: T.Type, column: String, at offset: Int) throws -> T {
    let bytes = try self.bytes(column: column, range: offset..<(offset + MemoryLayout<T>.size))
    return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
  }
}
