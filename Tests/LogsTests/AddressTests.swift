import LogGeneration
import Logs
import Testing

/// IPAddress and InterfaceName text round trips, and the parser's address reading against
/// `IPAddress.parse`.
@Suite("Addresses and interface names")
struct AddressTests {
  @Test(
    "text round trips",
    arguments: [
      ("10.244.1.23", "10.244.1.23"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
      ("2001:db8::1", "2001:db8::1"), ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
      ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
      ("fd00:10:244:1:0:0:0:17", "fd00:10:244:1::17"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
      ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("::ffff:10.0.0.1", "10.0.0.1"), ("::FFFF:a00:1", "10.0.0.1"),
      ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
  func roundTrip(text: String, canonical: String) throws {
    let address = try #require(IPAddress(text))
    #expect(address.description == canonical)
    #expect(IPAddress(address.description) == address)
  }

  @Test("v4-mapped addresses are IPv4", arguments: ["10.0.0.1", "::ffff:10.0.0.1", "0:0:0:0:0:ffff:0a00:0001"])
  func mapped(text: String) throws {
    let address = try #require(IPAddress(text))
    #expect(address.isIPv4)
    #expect(address.ipv4 == 0x0A00_0001)
  }

  @Test(
    "invalid text is rejected",
    arguments: [
      "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1::2::3", ":1", "1:", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
      "g::1", "::1.2.3",
    ])
  func invalid(text: String) {
    #expect(IPAddress(text) == nil)
  }

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
