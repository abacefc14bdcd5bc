import SVCTraceCore
import Testing

@testable import Logs

@Suite("FileCursor")
struct FileCursorTests {
  @Test func roundTripsThroughTheOpaqueCursor() throws {
    let position = FileCursor(inode: 1 << 40 | 7, fingerprint: Array(0..<200), size: 1 << 33, offset: 123_456_789)
    #expect(position.fingerprint.count == FileCursor.fingerprintLength)
    let cursor = position.sourceCursor
    #expect(cursor.kind == FileCursor.kind)
    #expect(FileCursor(cursor) == position)
    #expect(FileCursor(FileCursor(inode: 0, fingerprint: [], size: 0, offset: 0).sourceCursor)?.offset == 0)
  }

  @Test func readsTheFirstEncodingStoresHold() throws {
    // Version 1: version, inode, size, offset (UInt64 little-endian), fingerprint; no flags.
    var state: [UInt8] = [1]
    for value: UInt64 in [0x0102_0304, 500, 300] {
      for byte in 0..<8 { state.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte)))) }
    }
    state += Array("seq 1\n".utf8)
    let old = try #require(FileCursor(SourceCursor(kind: FileCursor.kind, state: state)))
    #expect(old.inode == 0x0102_0304 && old.size == 500 && old.offset == 300)
    #expect(old.fingerprint == Array("seq 1\n".utf8) && !old.isComplete)
    // Written again in the current encoding, with the complete flag kept.
    var complete = old
    complete.isComplete = true
    complete.mtime = 1_796_600_000
    #expect(complete.sourceCursor.state.first == 2)
    #expect(FileCursor(complete.sourceCursor)?.isComplete == true)
    #expect(FileCursor(complete.sourceCursor)?.sourceCursor == complete.sourceCursor)
    #expect(FileCursor(complete.sourceCursor)?.mtime == 1_796_600_000)
    // An empty fingerprint of version 1 named an empty file by inode; version 2 means "fresh".
    let legacyEmpty = try #require(FileCursor(SourceCursor(kind: FileCursor.kind, state: Array(state.prefix(25)))))
    #expect(!legacyEmpty.isFresh)
    #expect(FileCursor(FileCursor(inode: 1, fingerprint: [], size: 0, offset: 0).sourceCursor)?.isFresh == true)
  }

  @Test func refusesAnotherKindOrEncoding() {
    let state = FileCursor(inode: 1, fingerprint: [1], size: 2, offset: 2).sourceCursor.state
    #expect(FileCursor(SourceCursor(kind: "conntrack", state: state)) == nil)
    #expect(FileCursor(SourceCursor(kind: FileCursor.kind, state: Array(state.prefix(10)))) == nil)
    #expect(FileCursor(SourceCursor(kind: FileCursor.kind, state: [3] + state.dropFirst())) == nil)
  }

  @Test func aLocalFileSourceRefusesACursorOfAnotherKind() async throws {
    let source = LocalFileSource(node: .init("node1"), path: "/dev/null")
    let error = try await #require(throws: CaptureError.self) {
      try await source.pull(after: SourceCursor(kind: "conntrack", state: [1]), maxBytes: 4096)
    }
    #expect(error.cause == .invalidData)
    #expect(
      error.description
        == "Unable to resume /dev/null on node1: the stored cursor is a 'conntrack' cursor, not a log file's")
  }
}
