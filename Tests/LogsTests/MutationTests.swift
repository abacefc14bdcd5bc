import Foundation
import LogGeneration
import Logs
import Testing

/// Memory laid out so that reading one byte before or after a line faults: the line sits against a
/// PROT_NONE guard page, at the end of its page (over-reads) or at the start (under-reads).
final class GuardedPage {
  let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
  let base: UnsafeMutableRawPointer

  init() throws {
    let mapping = mmap(nil, pageSize * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let mapping, mapping != MAP_FAILED else { throw CocoaError(.featureUnsupported) }
    base = mapping
    mprotect(base, pageSize, PROT_NONE)
    mprotect(base + 2 * pageSize, pageSize, PROT_NONE)
  }

  deinit { munmap(base, pageSize * 3) }

  /// Calls `body` with `bytes` placed flush against the upper guard page, then against the lower one.
  func withGuarded<R>(_ bytes: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> R) -> (R, R) {
    precondition(bytes.count <= pageSize)
    let page = (base + pageSize).assumingMemoryBound(to: UInt8.self)
    let high = page + (pageSize - bytes.count)
    bytes.withUnsafeBufferPointer { source in
      if let from = source.baseAddress { high.update(from: from, count: bytes.count) }
    }
    let first = body(UnsafeBufferPointer(start: high, count: bytes.count))
    bytes.withUnsafeBufferPointer { source in
      if let from = source.baseAddress { page.update(from: from, count: bytes.count) }
    }
    let second = body(UnsafeBufferPointer(start: page, count: bytes.count))
    return (first, second)
  }
}

/// Mutated, truncated, spliced and random lines: the parser must return a value or nil, never
/// crash or read outside the line, and be deterministic.
@Suite("Parser mutation")
struct MutationTests {
  let corpus: [[UInt8]]

  init() throws {
    corpus = Support.naiveLines(try Support.fixture("corpus.log")).filter { !$0.isEmpty }
  }

  /// Parses `line` at both guard positions with fresh parsers; both results must agree.
  func check(_ line: [UInt8], _ guardPage: GuardedPage, _ counts: inout (cases: Int, parsed: Int)) {
    let (a, b) = guardPage.withGuarded(line) { buffer -> PacketLine? in
      var parser = PacketLineParser(referenceMicros: Support.corpusReference)
      let result = parser.parse(buffer)
      #expect(parser.stats.parsed + parser.stats.skipped == 1)
      #expect((result != nil) == (parser.stats.parsed == 1))
      return result
    }
    #expect(a == b, "non-deterministic result for \(String(decoding: line, as: UTF8.self))")
    counts.cases += 1
    if a != nil { counts.parsed += 1 }
  }

  @Test("truncation at every position of every corpus line")
  func truncations() throws {
    let guardPage = try GuardedPage()
    var counts = (cases: 0, parsed: 0)
    for line in corpus {
      let protoAt = Array(line).firstRange(of: Array(" PROTO=".utf8))?.lowerBound ?? line.count
      for cut in 0...line.count {
        let truncated = Array(line[0..<cut])
        check(truncated, guardPage, &counts)
        if cut <= protoAt {
          var parser = PacketLineParser(referenceMicros: Support.corpusReference)
          #expect(truncated.withUnsafeBufferPointer { parser.parse($0) } == nil, "cut at \(cut) before PROTO parsed")
        }
      }
    }
    #expect(counts.cases > 5_000)
  }

  @Test("random byte edits, splices of two lines and random bytes (seeded)")
  func randomMutations() throws {
    let guardPage = try GuardedPage()
    var random = SplitMix64(seed: 0x5EC7_12AC_E000_0006)
    var counts = (cases: 0, parsed: 0)
    let alphabet = Array(" =[]:.0123456789abcdefxX-+TZ\r\t\u{0}\u{FF}SRCDSTPROTOIN".utf8)
    for _ in 0..<4_000 {
      var line = corpus[random.below(corpus.count)]
      for _ in 0..<(1 + random.below(6)) where !line.isEmpty {
        let position = random.below(line.count)
        switch random.below(4) {
        case 0: line[position] = alphabet[random.below(alphabet.count)]
        case 1: line[position] = UInt8(truncatingIfNeeded: random.next())
        case 2: line.remove(at: position)
        default: line.insert(alphabet[random.below(alphabet.count)], at: position)
        }
      }
      check(line, guardPage, &counts)
    }
    for _ in 0..<3_000 {
      let a = corpus[random.below(corpus.count)]
      let b = corpus[random.below(corpus.count)]
      let spliced = Array(a[0..<random.below(a.count + 1)]) + Array(b[random.below(b.count + 1)...])
      check(Array(spliced.prefix(4096)), guardPage, &counts)
    }
    for _ in 0..<2_000 {
      let length = random.below(400)
      let bytes = (0..<length).map { _ in
        random.below(3) == 0 ? alphabet[random.below(alphabet.count)] : UInt8(truncatingIfNeeded: random.next())
      }
      check(bytes, guardPage, &counts)
    }
    #expect(counts.cases == 9_000)
    // Light edits leave many lines valid, so both outcomes must occur.
    #expect(counts.parsed > 100 && counts.parsed < counts.cases)
  }
}
