import Foundation
package import Ingest
package import Logs
package import SVCTraceCore
import SVCTraceTestSupport
package import Store

/// A parser for the tests' own line format, so these tests do not depend on the kernel LOG
/// parser: `T=<µs> <PRE|POST> P=<proto> <src> <sport> <dst> <dport> ID=<id|-> LEN=<n>`, or
/// `seq <n>` (a PRE line with time n, for capture tests). Anything else is skipped.
package struct FakeParser: LineParsing {
  package var stats = ParseStats()

  package init() {}

  package mutating func parse(_ line: UnsafeBufferPointer<UInt8>) -> PacketLine? {
    let text = String(decoding: line, as: UTF8.self)
    let result = Self.parse(text)
    if result == nil { stats.skipped += 1 } else { stats.parsed += 1 }
    return result
  }

  package static func parse(_ text: String) -> PacketLine? {
    let fields = text.split(separator: " ").map(String.init)
    if fields.count == 2, fields[0] == "seq", let n = Int64(fields[1]) {
      return PacketLine(
        timeMicros: n, stage: .pre, source: IPAddress("10.1.0.1")!, destination: IPAddress("10.96.0.1")!, proto: 6,
        sourcePort: UInt16(truncatingIfNeeded: n), destinationPort: 80)
    }
    guard fields.count == 9, fields[0].hasPrefix("T="), let time = Int64(fields[0].dropFirst(2)),
      let proto = UInt8(fields[2].dropFirst(2)), let source = IPAddress(fields[3]), let sport = UInt16(fields[4]),
      let destination = IPAddress(fields[5]), let dport = UInt16(fields[6]),
      let length = UInt16(fields[8].dropFirst(4))
    else { return nil }
    let stage: PacketLine.Stage
    switch fields[1] {
    case "PRE": stage = .pre
    case "POST": stage = .post
    default: return nil
    }
    let idText = fields[7].dropFirst(3)
    return PacketLine(
      timeMicros: time, stage: stage, source: source, destination: destination, proto: proto, sourcePort: sport,
      destinationPort: dport, ipID: idText == "-" ? nil : UInt32(idText), length: length)
  }
}

/// Builds a line of ``FakeParser``'s format.
package func fakeLine(
  _ time: Int64, _ stage: PacketLine.Stage, proto: UInt8 = 6, _ source: String, _ sport: UInt16,
  _ destination: String, _ dport: UInt16, id: UInt32? = nil, length: UInt16 = 60
) -> String {
  let idText = id.map { String($0) } ?? "-"
  return
    "T=\(time) \(stage == .pre ? "PRE" : "POST") P=\(proto) \(source) \(sport) \(destination) \(dport) ID=\(idText) LEN=\(length)"
}

/// A temporary directory removed at deinit.
package final class TempDirectory: @unchecked Sendable {
  package let path: String

  package init() throws {
    path = FileManager.default.temporaryDirectory.appendingPathComponent("svctrace-store-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  package func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
}

/// Runs a local shell command and expects it to succeed.
package func shell(_ command: String) async throws {
  let result = try await LocalProcess.shell(command)
  guard result.exitStatus == 0 else {
    throw ShellFailure(command: command, status: result.exitStatus, stderr: result.stderrText)
  }
}

/// A ``shell(_:)`` command that exited non-zero.
package struct ShellFailure: Error, CustomStringConvertible {
  package var command: String
  package var status: Int32
  package var stderr: String
  package var description: String { "'\(command)' exited with \(status): \(stderr)" }
}

/// The error the tests inject into a commit.
package struct InjectedFault: Error {
  package init() {}
}

/// A log file the tests append to and rotate the way logrotate does.
package struct FakeLog {
  package let path: String
  package private(set) var next = 1

  package init(path: String) {
    self.path = path
    _ = FileManager.default.createFile(atPath: path, contents: nil)
  }

  /// Appends `count` numbered lines (`seq N`), returns their numbers.
  @discardableResult
  package mutating func append(_ count: Int) throws -> [Int] {
    let numbers = Array(next..<(next + count))
    next += count
    try appendRaw(numbers.map { "seq \($0)\n" }.joined())
    return numbers
  }

  /// Appends text as is (e.g. a partial line).
  package func appendRaw(_ text: String) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(text.utf8))
    try handle.close()
  }

  private var quoted: String { get throws { try ShellQuote.quote(path) } }

  /// Shifts path.N(.gz) to path.N+1(.gz), oldest first.
  private func shiftRotated() async throws {
    try await shell(
      """
      for n in 9 8 7 6 5 4 3 2 1; do
        m=$((n+1))
        if [ -f \(quoted).$n.gz ]; then mv \(quoted).$n.gz \(quoted).$m.gz; fi
        if [ -f \(quoted).$n ]; then mv \(quoted).$n \(quoted).$m; fi
      done; true
      """)
  }

  /// Compresses every plain rotated file numbered `start` or more (logrotate `delaycompress`
  /// uses 2, plain `compress` 1).
  private func compress(from start: Int?) async throws {
    guard let start else { return }
    try await shell("for n in $(seq \(start) 10); do if [ -f \(quoted).$n ]; then gzip -n \(quoted).$n; fi; done; true")
  }

  /// logrotate create mode: live → .1 (same inode), older shift up, a new empty live file.
  package func rotateCreate(compressFrom: Int? = 2) async throws {
    try await shiftRotated()
    try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
    try await compress(from: compressFrom)
    _ = FileManager.default.createFile(atPath: path, contents: nil)
  }

  /// logrotate copytruncate: copy live to .1, truncate the live file in place (same inode).
  package func rotateCopyTruncate(compressFrom: Int? = 2) async throws {
    try await shiftRotated()
    try await shell("cp \(quoted) \(quoted).1 && : > \(quoted)")
    try await compress(from: compressFrom)
  }

  /// logrotate create mode with `dateext`: live → `path<stamp>` (same inode), a new empty live
  /// file. `compress` gzips the rotated file at once; `delaycompress` gzips the earlier
  /// uncompressed dated files instead. The rotated file's mtime is set to `age` (seconds since
  /// the epoch) when given, as logrotate keeps it (and gzip keeps it on the `.gz`).
  package func rotateDateext(
    stamp: String, compress: Bool = false, delaycompress: Bool = false, mtime age: Int? = nil
  ) async throws {
    let rotated = try ShellQuote.quote(path + stamp)
    if compress, delaycompress {
      try await shell(
        "for f in \(quoted)-[0-9]*; do case \"$f\" in *.gz) ;; *) [ -f \"$f\" ] && gzip -n \"$f\" ;; esac; done; true")
    }
    try FileManager.default.moveItem(atPath: path, toPath: path + stamp)
    if let age { try await shell("touch -d @\(age) \(rotated)") }
    if compress, !delaycompress { try await shell("gzip -n \(rotated)") }
    _ = FileManager.default.createFile(atPath: path, contents: nil)
  }

  /// Truncates the live file in place without keeping a copy.
  package func truncate() async throws {
    try await shell(": > \(quoted)")
  }
}

/// The `seq N` numbers stored for `node`, in storage order.
package func storedSequence(_ store: TraceStore, node: String = "node-test") throws -> [Int] {
  try store.storedLines(node: node).map(\.raw).compactMap { $0.hasPrefix("seq ") ? Int($0.dropFirst(4)) : nil }
}

extension TraceStore {
  /// The ingest pipeline over this store (what `svctrace collect` runs).
  package func collect<Parser: LineParsing>(
    from source: some CaptureSource, makeParser: () -> Parser, clock: ClockOffset? = nil, maxBytes: Int = 16 << 20
  ) async throws -> CollectSummary {
    try await Ingestor(store: self).collect(from: source, makeParser: makeParser, clock: clock, maxBytes: maxBytes)
  }
}

extension TraceStore {
  /// Commits `batch` on its own, maybe calling `faultInjection` in the transaction before the
  /// cursor is written.
  @discardableResult
  package func commit(_ batch: CollectedBatch, faultInjection: (@Sendable () throws -> Void)? = nil) async throws
    -> CommitSummary
  {
    try await commit(PreparedBatch(batch), faultInjection: faultInjection).summary
  }
}
