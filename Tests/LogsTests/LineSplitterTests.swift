import LogGeneration
import Logs
import Testing

/// LineSplitter across chunk boundaries.
@Suite("LineSplitter")
struct LineSplitterTests {
  /// Splits `bytes` fed in chunks of the sizes `sizes` yields (cycled), collecting the lines.
  static func split(_ bytes: [UInt8], chunkSizes: () -> Int, maxLineLength: Int = 1 << 20) -> (
    lines: [[UInt8]], splitter: LineSplitter
  ) {
    var splitter = LineSplitter(maxLineLength: maxLineLength)
    var lines: [[UInt8]] = []
    var offset = 0
    bytes.withUnsafeBufferPointer { buffer in
      while offset < bytes.count {
        let size = min(max(1, chunkSizes()), bytes.count - offset)
        splitter.feed(UnsafeBufferPointer(rebasing: buffer[offset..<(offset + size)])) { lines.append(Array($0)) }
        offset += size
      }
    }
    splitter.finish { lines.append(Array($0)) }
    return (lines, splitter)
  }

  @Test("the corpus fed in random chunk sizes yields exactly the one-shot lines")
  func randomChunks() throws {
    var corpus = try Support.fixture("corpus.log")
    corpus += Array("tail without newline\r".utf8)
    let expected = Support.naiveLines(corpus)
    let oneShot = Self.split(corpus, chunkSizes: { corpus.count }).lines
    #expect(oneShot == expected)
    var random = SplitMix64(seed: 7)
    for round in 0..<300 {
      let limit = [1, 2, 3, 7, 64, 300, 4096][round % 7]
      let chunked = Self.split(corpus, chunkSizes: { 1 + random.below(limit) }).lines
      #expect(chunked == expected, "round \(round)")
    }
  }

  @Test("CRLF split between chunks, empty lines, final line only on finish")
  func boundaries() {
    var splitter = LineSplitter()
    var lines: [String] = []
    func feed(_ text: String) {
      Array(text.utf8).withUnsafeBufferPointer { buffer in
        splitter.feed(buffer) { lines.append(String(decoding: $0, as: UTF8.self)) }
      }
    }
    feed("one\r")
    #expect(lines.isEmpty)
    #expect(splitter.pendingByteCount == 4)
    feed("\n\ntwo")
    #expect(lines == ["one", ""])
    #expect(splitter.pendingByteCount == 3)
    splitter.finish { lines.append(String(decoding: $0, as: UTF8.self)) }
    #expect(lines == ["one", "", "two"])
    #expect(splitter.pendingByteCount == 0)
  }

  @Test("an over-long line is cut to maxLineLength and the next line is intact")
  func overlong() {
    let long = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
    let bytes = long + [UInt8(ascii: "\n")] + Array("next\n".utf8)
    for chunk in [1, 10, 2000] {
      let (lines, splitter) = Self.split(bytes, chunkSizes: { chunk }, maxLineLength: 100)
      #expect(lines == [Array(long.prefix(100)), Array("next".utf8)], "chunk \(chunk)")
      #expect(splitter.truncatedLineCount == 1)
      #expect(splitter.pendingByteCount == 0)
    }
  }
}
