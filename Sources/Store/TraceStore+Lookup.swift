import Foundation
import GRDB
import Logs
import SVCTraceCore

extension TraceStore {
  /// Connections matching `query`, oldest first, with names resolved at each connection's time.
  ///
  /// - Throws: ``StoreError`` when a `namespace/name` is unknown to every snapshot,
  ///   or the database fails.
  public func connections(matching query: TraceQuery) throws -> [ConnectionRecord] {
    try reading("look up connections") { db in
      var scan = try BlockScan(query, db)
      var resolver = NameResolver()
      var records = try scan.run(db)
      for index in records.indices { try resolver.resolve(&records[index], db) }
      return records
    }
  }

  /// The raw log lines behind a connection (`trace --explain`): its pre-DNAT and post-DNAT line.
  ///
  /// Retransmitted lines folded into the connection are stored with outcome `duplicate` but
  /// not linked to it.
  public func explain(_ record: ConnectionRecord) throws -> [StoredLine] {
    try lines(ids: [record.preLineID, record.postLineID].compactMap { $0 })
  }

  /// Stored raw lines by id, in id order.
  public func lines(ids: [Int64]) throws -> [StoredLine] {
    guard !ids.isEmpty else { return [] }
    return try reading("read stored lines") { db in
      var found: [StoredLine] = []
      for id in Set(ids) {
        if let line = try Self.blockLine(id, raw: rawSegments, db) { found.append(line) }
      }
      return found.sorted { $0.id < $1.id }
    }
  }

  /// Every stored line of `node` (or of all nodes), in id order: a full read, for checks and tests.
  package func storedLines(node: String? = nil) throws -> [StoredLine] {
    try dbWriter.read { db in
      let filter = node == nil ? "" : "WHERE n.name = ?"
      let arguments: StatementArguments = node.map { [$0] } ?? []
      var lines: [StoredLine] = []
      let blocks = try Row.fetchAll(
        db,
        sql: """
          SELECT b.first_id, n.name, b.times, b.flags, b.ends, b.raw, r.segment, r.offset
          FROM line_blocks b JOIN nodes n ON n.id = b.node_id LEFT JOIN line_raw r ON r.first_id = b.first_id
          \(filter) ORDER BY b.first_id
          """, arguments: arguments)
      for block in blocks {
        let first: Int64 = block[0]
        let times = [UInt8](block[2] as Data)
        let flags = [UInt8](block[3] as Data)
        let ends = [UInt8](block[4] as Data)
        let segment: Int64? = block[6]
        let raw =
          try segment.map { segment in
            try Self.segments(rawSegments).read(
              segment: segment, offset: block[7], length: Int(ends.isEmpty ? 0 : Self.uint32(ends, at: flags.count - 1))
            )
          } ?? [UInt8](block[5] as Data)
        var start = 0
        for entry in flags.indices {
          let time = times.withUnsafeBytes {
            Int64(littleEndian: $0.loadUnaligned(fromByteOffset: entry * 8, as: Int64.self))
          }
          let end = Int(
            ends.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: entry * 4, as: UInt32.self)) })
          let text = raw.withUnsafeBytes { CollectedBatch.lineText(in: $0, from: start, to: end) }
          lines.append(
            StoredLine(
              id: first + Int64(entry), node: block[1], timeMicros: time, stage: Int(flags[entry] >> 4),
              outcome: Int(flags[entry] & 0x0F), raw: text))
          start = end
        }
      }
      return lines
    }
  }

  /// Line `id` from its line block, reading only its own bytes of the block's blobs.
  static func blockLine(_ id: Int64, raw segments: RawSegments?, _ db: Database) throws -> StoredLine? {
    guard
      let row = try Row.fetchOne(
        db,
        sql: """
          SELECT b.first_id, b.count, n.name, r.segment, r.offset
          FROM line_blocks b JOIN nodes n ON n.id = b.node_id LEFT JOIN line_raw r ON r.first_id = b.first_id
          WHERE b.first_id <= ? ORDER BY b.first_id DESC LIMIT 1
          """, arguments: [id])
    else { return nil }
    let first: Int64 = row[0]
    let count: Int64 = row[1]
    guard id < first + count else { return nil }
    let entry = Int(id - first)
    let blob = BlobReader(db, table: "line_blocks", row: first)
    let time = Int64(littleEndian: try blob.integer(Int64.self, column: "times", at: entry * 8))
    let flags = try blob.integer(UInt8.self, column: "flags", at: entry)
    let start =
      entry == 0 ? 0 : Int(UInt32(littleEndian: try blob.integer(UInt32.self, column: "ends", at: (entry - 1) * 4)))
    let end = Int(UInt32(littleEndian: try blob.integer(UInt32.self, column: "ends", at: entry * 4)))
    // The line is the last one of its range (lines the parser skipped may come before it).
    let range = start..<max(start, end)
    let raw: [UInt8]
    if let segment = row[3] as Int64? {
      raw = try Self.segments(segments).read(
        segment: segment, offset: (row[4] as Int64) + Int64(range.lowerBound), length: range.count)
    } else {
      raw = try blob.bytes(column: "raw", range: range)
    }
    let text = raw.withUnsafeBytes { CollectedBatch.lineText(in: $0, from: 0, to: $0.count) }
    return StoredLine(
      id: id, node: row[2], timeMicros: time, stage: Int(flags >> 4), outcome: Int(flags & 0x0F), raw: text)
  }

  /// The raw segments of a store whose blocks refer to some.
  static func segments(_ segments: RawSegments?) throws -> RawSegments {
    guard let segments else {
      throw StoreError(
        operation: "read raw lines",
        message: "the store refers to raw segment files but was opened without its directory")
    }
    return segments
  }

  /// The little-endian UInt32 at `index` of `bytes`.
  package static func uint32(_ bytes: [UInt8], at index: Int) -> UInt32 {
    bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)) }
  }

  /// Splits `namespace/name`.
  package static func splitName(_ text: String, what: String) throws -> (String, String) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
      throw StoreError(operation: "look up \(what) '\(text)'", message: "expected NAMESPACE/NAME")
    }
    return (String(parts[0]), String(parts[1]))
  }
}

/// A name-table row with its validity interval.
package struct NameRow {
  package var values: [String]
  package var validFrom: Int64
  package var validTo: Int64?

  package init(values: [String], validFrom: Int64, validTo: Int64?) {
    self.values = values
    self.validFrom = validFrom
    self.validTo = validTo
  }

  package func isValid(at time: Int64) -> Bool {
    validFrom <= time && (validTo.map { time < $0 } ?? true)
  }

  /// Distance from `time` to the validity interval (0 inside).
  package func distance(to time: Int64) -> Int64 {
    if time < validFrom { return validFrom - time }
    if let end = validTo, time >= end { return time - end + 1 }
    return 0
  }
}

/// Picks the rows valid at `time`; if none, those of the interval nearest to it (a connection
/// older than the first snapshot resolves with the first snapshot).
package func rows(_ rows: [NameRow], at time: Int64) -> [NameRow] {
  let valid = rows.filter { $0.isValid(at: time) }
  if !valid.isEmpty || rows.isEmpty { return valid }
  let nearest = rows.map { $0.distance(to: time) }.min() ?? 0
  return rows.filter { $0.distance(to: time) == nearest }
}

/// Resolves addresses to names through the snapshot tables, caching rows per address.
package struct NameResolver {
  private var serviceCache: [String: [NameRow]] = [:]
  private var endpointCache: [Data: [NameRow]] = [:]
  private var podCache: [Data: [NameRow]] = [:]

  /// Fills the name fields of `record` as of its time.
  mutating func resolve(_ record: inout ConnectionRecord, _ db: Database) throws {
    let services = try serviceRows(record.service, record.servicePort, record.proto, db)
    guard let pod = record.pod else {
      try Self.resolve(&record, services: services, endpoints: []) { [] }
      return
    }
    let endpoints = try endpointRows(pod, db)
    try Self.resolve(&record, services: services, endpoints: endpoints) { try podRows(pod, db) }
  }

  /// Fills the name fields of `record` as of its time from the name rows of its addresses:
  /// `services` (values: `namespace/name`, "1" for its exact address or "0" for a NodePort row),
  /// `endpoints` of its pod address (values: service, port, proto, pod, node) and, read only when
  /// no endpoint row names the pod, `pods` (values: pod, node, hostNetwork).
  package static func resolve(
    _ record: inout ConnectionRecord, services: [NameRow], endpoints: [NameRow], pods: () throws -> [NameRow]
  ) rethrows {
    let time = record.timeMicros
    let candidates = rows(services, at: time)
    record.serviceName = (candidates.first { $0.values[1] == "1" } ?? candidates.first)?.values[0]
    let atTime = rows(endpoints, at: time)
    guard record.pod != nil else { return }
    // values: service, port, proto, pod, node
    if let exact = atTime.first(where: { $0.values[1] == record.podPort.map(String.init) }) {
      record.podName = exact.values[3]
      record.podNode = exact.values[4]
    } else {
      let pods = rows(try pods(), at: time)
      // values: pod, node, hostNetwork
      if let pod = pods.first(where: { $0.values[2] == "0" }) ?? pods.first {
        record.podName = pod.values[0]
        record.podNode = pod.values[1]
      }
    }
    let services = atTime.filter { record.podName == nil || $0.values[3] == record.podName }.map { $0.values[0] }
    record.podServices = Array(Set(services)).sorted()
  }

  private mutating func serviceRows(_ ip: IPAddress, _ port: UInt16, _ proto: UInt8, _ db: Database) throws
    -> [NameRow]
  {
    let key = "\(ip)|\(port)|\(proto)"
    if serviceCache[key] == nil {
      serviceCache[key] = try Row.fetchAll(
        db,
        sql: """
          SELECT namespace || '/' || name, ip = ?, valid_from, valid_to FROM service_names
          WHERE ip IN (?, ?) AND port = ? AND proto = ?
          """, arguments: [ip.blob, ip.blob, IPAddress.any.blob, Int(port), Int(proto)]
      ).map { row in
        let exact: Bool = row[1]
        return NameRow(values: [row[0], exact ? "1" : "0"], validFrom: row[2], validTo: row[3])
      }
    }
    return serviceCache[key] ?? []
  }

  private mutating func endpointRows(_ ip: IPAddress, _ db: Database) throws -> [NameRow] {
    let key = ip.blob
    if let cached = endpointCache[key] { return cached }
    let rows = try Row.fetchAll(
      db,
      sql: """
        SELECT service_namespace || '/' || service_name, port, proto, pod_namespace || '/' || pod_name, node,
          valid_from, valid_to FROM endpoint_names WHERE ip = ?
        """, arguments: [key]
    ).map { row in
      let port: Int = row[1]
      let proto: Int = row[2]
      return NameRow(values: [row[0], String(port), String(proto), row[3], row[4]], validFrom: row[5], validTo: row[6])
    }
    endpointCache[key] = rows
    return rows
  }

  private mutating func podRows(_ ip: IPAddress, _ db: Database) throws -> [NameRow] {
    let key = ip.blob
    if let cached = podCache[key] { return cached }
    let rows = try Row.fetchAll(
      db,
      sql: """
        SELECT namespace || '/' || name, node, host_network, valid_from, valid_to FROM pod_names WHERE ip = ?
        """, arguments: [key]
    ).map { row in
      let host: Int = row[2]
      return NameRow(values: [row[0], row[1], String(host)], validFrom: row[3], validTo: row[4])
    }
    podCache[key] = rows
    return rows
  }
}
