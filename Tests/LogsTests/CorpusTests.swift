import Foundation
import Logs
import SVCTraceCore
import Testing

/// The hand-written fixture corpus against its hand-written expectations.
@Suite("Fixture corpus")
struct CorpusTests {
  struct Entry: Decodable {
    var line: Int
    var note: String
    var expect: Expected?
  }

  struct Expected: Decodable {
    var time: Int64
    var stage: String
    var origin: String
    var src: String
    var dst: String
    var proto: UInt8
    var spt: UInt16
    var dpt: UInt16
    var inIf: String
    var outIf: String
    var id: UInt32?
    var len: UInt16
    var mark: UInt32
    var flags: UInt8
    var kernel: Int64?

    /// The PacketLine these values describe.
    func packetLine() throws -> PacketLine {
      PacketLine(
        timeMicros: time, kernelMicros: kernel, stage: stage == "pre" ? .pre : .post,
        origin: origin == "legacy" ? .legacy : .svctrace, inInterface: InterfaceName(inIf),
        outInterface: InterfaceName(outIf), source: try #require(IPAddress(src)),
        destination: try #require(IPAddress(dst)), proto: proto, sourcePort: spt, destinationPort: dpt,
        ipID: id, length: len, mark: mark, tcpFlags: flags)
    }
  }

  @Test("every corpus line parses to exactly its expected fields, or is skipped")
  func corpusMatchesExpectations() throws {
    let bytes = try Support.fixture("corpus.log")
    let entries = try JSONDecoder().decode([Entry].self, from: Data(try Support.fixture("corpus-expectations.json")))
    var lines: [[UInt8]] = []
    var splitter = LineSplitter()
    bytes.withUnsafeBufferPointer { buffer in
      splitter.feed(buffer) { lines.append(Array($0)) }
    }
    splitter.finish { lines.append(Array($0)) }
    try #require(lines.count == entries.count, "corpus has \(lines.count) lines, expectations \(entries.count)")

    var parser = PacketLineParser(referenceMicros: Support.corpusReference)
    for (line, entry) in zip(lines, entries) {
      let parsed = line.withUnsafeBufferPointer { parser.parse($0) }
      if let expected = entry.expect {
        let want = try expected.packetLine()
        #expect(parsed == want, "line \(entry.line) (\(entry.note)): got \(String(describing: parsed))")
      } else {
        #expect(
          parsed == nil, "line \(entry.line) (\(entry.note)) should be skipped, got \(String(describing: parsed))")
      }
    }
    let packets = entries.filter { $0.expect != nil }.count
    #expect(parser.stats == ParseStats(parsed: packets, skipped: entries.count - packets))
  }

  @Test("the corpus covers every protocol, both stages and both origins")
  func corpusCoverage() throws {
    let entries = try JSONDecoder().decode([Entry].self, from: Data(try Support.fixture("corpus-expectations.json")))
    let expected = entries.compactMap(\.expect)
    #expect(Set(expected.map(\.proto)).isSuperset(of: [1, 6, 17, 58, 132, 136]))
    #expect(Set(expected.map(\.stage)) == ["pre", "post"])
    #expect(Set(expected.map(\.origin)) == ["svctrace", "legacy"])
    #expect(expected.contains { $0.kernel != nil })
    #expect(expected.contains { $0.src.contains(":") })
    #expect(entries.filter { $0.expect == nil }.count >= 10)
  }
}
