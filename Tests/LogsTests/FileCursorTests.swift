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
