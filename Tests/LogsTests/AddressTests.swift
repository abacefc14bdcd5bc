import LogGeneration
import Logs
import SVCTraceCore
import Testing

/// InterfaceName round trips, and the parser's address reading against `IPAddress.parse` (the
/// address type's own tests are in SVCTraceCoreTests).
@Suite("Addresses and interface names")
struct AddressTests {
  @Test("InterfaceName keeps up to 16 bytes and round trips")
  func interfaceNames() {
    #expect(InterfaceName("cali3f2a9b1c0d4").description == "cali3f2a9b1c0d4")
    #expect(InterfaceName("eth0") == InterfaceName(bytes: Array("eth0".utf8)))
    #expect(InterfaceName("").isEmpty)
    #expect(InterfaceName("").description == "")
    #expect(InterfaceName("vxlan.calico").count == 12)
    #expect(InterfaceName("abcdefghijklmnopqrstuvwxyz").description == "abcdefghijklmnop")
    #expect(InterfaceName("eth0") != InterfaceName("eth1"))
    // The parser's buffer path builds the same names as the generic one, at every length.
    let text = Array("abcdefghijklmnopqrstu".utf8)
    for length in 0...text.count {
      let bytes = Array(text.prefix(length))
      let fromBuffer = bytes.withUnsafeBufferPointer { InterfaceName(bytes: $0) }
      #expect(fromBuffer == InterfaceName(bytes: bytes[...]), "length \(length)")
      #expect(fromBuffer.description == String(decoding: bytes.prefix(16), as: UTF8.self))
    }
  }

  @Test("the parser reads SRC/DST exactly as IPAddress.parse does (seeded random text)")
  func parserAgreesWithIPAddress() {
    var random = SplitMix64(seed: 0xADD2)
    let alphabet = Array("0123456789abcdefABCDEF:::..".utf8)
    var agreedValid = 0
    for round in 0..<6_000 {
      var text: [UInt8]
      switch round % 3 {
      case 0:  // random IPv6-ish text
        text = (0..<(1 + random.below(40))).map { _ in alphabet[random.below(alphabet.count)] }
      case 1:  // a valid address with one edit
        let groups = (0..<8).map { _ in String(random.below(0x10000), radix: 16) }
        text = Array(groups.joined(separator: ":").utf8)
        if random.below(2) == 0 {
          let start = random.below(4)
          let length = 2 + random.below(4)
          text =
            Array(groups[..<start].joined(separator: ":").utf8) + Array("::".utf8)
            + Array(groups[min(8, start + length)...].joined(separator: ":").utf8)
        }
        if random.below(3) == 0, !text.isEmpty {
          text[random.below(text.count)] = alphabet[random.below(alphabet.count)]
        }
      default:  // dotted quads, some out of range
        text = Array((0..<4).map { _ in String(random.below(300)) }.joined(separator: ".").utf8)
      }
      let string = String(decoding: text, as: UTF8.self)
      let line =
        "2026-05-16T12:00:00Z node1 kernel: SVCT:PRE IN=eth0 OUT= SRC=\(string) DST=10.96.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 "
      let viaParser = Support.parse(line)?.source
      let viaIPAddress = text.withUnsafeBufferPointer { IPAddress.parse($0) }
      #expect(viaParser == viaIPAddress, "\(string)")
      if viaIPAddress != nil { agreedValid += 1 }
    }
    #expect(agreedValid > 1_000)
  }
}
