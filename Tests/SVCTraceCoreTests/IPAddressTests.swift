import Foundation
import SVCTraceCore
import Testing

@Suite("IPAddress text")
struct IPAddressTests {
  @Test(
    "text round trips to the canonical form",
    arguments: [
      ("10.244.1.23", "10.244.1.23"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
      ("2001:db8::1", "2001:db8::1"), ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
      ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
      ("fd00:10:244:1:0:0:0:17", "fd00:10:244:1::17"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
      ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"), ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
      ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("::ffff:10.0.0.1", "10.0.0.1"), ("::FFFF:a00:1", "10.0.0.1"),
      ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"), ("FD00::ABCD", "fd00::abcd"),
    ])
  func roundTrip(text: String, canonical: String) throws {
    let address = try #require(IPAddress(text))
    #expect(address.description == canonical)
    #expect(IPAddress(address.description) == address)
  }

  @Test("IPv4 values, families and the mapped representation")
  func ipv4() throws {
    let address = try #require(IPAddress("10.0.0.1"))
    #expect(address == IPAddress(ipv4: 0x0A00_0001))
    #expect(address.isIPv4)
    #expect(address.ipv4 == 0x0A00_0001)
    #expect(address.family == .ipv4)
    #expect(address == IPAddress(high: 0, low: 0x0000_FFFF_0A00_0001))
    #expect(IPAddress("0:0:0:0:0:ffff:0a00:0001") == address)
    let v6 = try #require(IPAddress("2001:db8::1"))
    #expect(!v6.isIPv4)
    #expect(v6.ipv4 == nil)
    #expect(v6.family == .ipv6)
    #expect(v6 == IPAddress(high: 0x2001_0DB8_0000_0000, low: 1))
    // The layout the store's blobs and the correlator's state rely on: two 64-bit words.
    #expect(MemoryLayout<IPAddress>.size == 16)
  }

  @Test("order: IPv6 below the mapped block, then IPv4 by value, then the rest")
  func order() throws {
    let texts = ["::1", "10.0.0.1", "10.0.0.2", "192.168.0.1", "2001:db8::1", "fd00::1"]
    let addresses = try texts.map { try #require(IPAddress($0)) }
    #expect(addresses.sorted() == addresses)
  }

  @Test(
    "invalid text is rejected",
    arguments: [
      "", " ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.04", "01.2.3.4", "1.2.3.4 ", "1..2.3", ".1.2.3", "1.2.3.",
      "1.2.3.-4", "1234.1.1.1", "1::2::3", ":1", "1:", ":::", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8", "g::1", "::1.2.3", "::1.2.3.4.5", "1.2.3.4::", "::ffff:1.2.3.04", "fe80::1%eth0",
      "[::1]", "1:2:3:4:5:6:7:1.2.3.4", "::1:2:3:4:5:6:1.2.3.4",
    ])
  func invalid(text: String) {
    #expect(IPAddress(text) == nil)
  }

  @Test("the byte-level entry point reads exactly the given range")
  func byteRange() {
    let text = Array("SRC=10.244.1.23 DST=fd00::1 ".utf8)
    text.withUnsafeBufferPointer { buffer in
      let base = buffer.baseAddress!
      #expect(IPAddress.parse(base, 4, 15) == IPAddress("10.244.1.23"))
      #expect(IPAddress.parse(base, 20, 27) == IPAddress("fd00::1"))
      #expect(IPAddress.parse(base, 4, 16) == nil)  // the space
      #expect(IPAddress.parse(base, 4, 4) == nil)  // empty
    }
  }

  @Test("text agrees with inet_pton on seeded random input")
  func agreesWithInetPton() {
    var state: UInt64 = 0x1F2E_3D4C
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    let alphabet = Array("0123456789abcdefABCDEF::::....".utf8)
    var valid = 0
    for round in 0..<20_000 {
      var text: [UInt8]
      if round % 2 == 0 {
        text = (0..<(1 + next(24))).map { _ in alphabet[next(alphabet.count)] }
      } else {
        text = Array((0..<4).map { _ in String(next(300)) }.joined(separator: ".").utf8)
        if next(3) == 0 { text = Array("::ffff:".utf8) + text }
        if next(4) == 0 { text.insert(UInt8(ascii: "0"), at: next(text.count + 1)) }
      }
      let string = String(decoding: text, as: UTF8.self)
      let ours = IPAddress(string)
      let system = Self.inetPton(string)
      #expect(ours == system, "\(string)")
      if ours != nil { valid += 1 }
    }
    #expect(valid > 2_000)
  }

  /// The C library's reading of `text`, as an ``IPAddress``.
  private static func inetPton(_ text: String) -> IPAddress? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return IPAddress(ipv4: UInt32(bigEndian: v4.s_addr)) }
    var v6 = in6_addr()
    guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
    let bytes = withUnsafeBytes(of: &v6) { Array($0) }
    let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    return IPAddress(high: high, low: low)
  }
}

@Suite("CIDR")
struct CIDRTests {
  @Test(
    "parses, clears host bits and prints with the prefix",
    arguments: [
      ("10.96.0.0/12", "10.96.0.0/12"), ("10.96.0.1/12", "10.96.0.0/12"), ("10.111.255.255/12", "10.96.0.0/12"),
      ("192.168.1.7", "192.168.1.7/32"), ("0.0.0.0/1", "0.0.0.0/1"), ("255.255.255.255/1", "128.0.0.0/1"),
      ("fd00:10:96::/112", "fd00:10:96::/112"), ("fd00:10:96::1:2/112", "fd00:10:96::1:0/112"),
      ("2001:db8::1", "2001:db8::1/128"), ("ffff::/1", "8000::/1"),
      ("2001:db8:ffff:ffff::/63", "2001:db8:ffff:fffe::/63"),
      ("1:2:3:4:ffff:6:7:8/65", "1:2:3:4:8000::/65"), ("1:2:3:4:5:6:7:8/65", "1:2:3:4::/65"),
      ("64:ff9b::192.0.2.33/120", "64:ff9b::c000:200/120"),
    ])
  func parse(text: String, canonical: String) throws {
    let cidr = try CIDR(text)
    #expect(cidr.description == canonical)
    #expect(try CIDR(cidr.description) == cidr)
  }

  @Test(
    "rejects bad networks with the reason",
    arguments: [
      ("", CIDR.ParseError.invalidAddress), ("10.96.0.0/12/3", .invalidAddress), ("10.96.0/12", .invalidAddress),
      ("::ffff:10.96.0.0/108", .invalidAddress), ("::ffff:a60:0", .invalidAddress),
      ("10.96.0.0/0", .invalidPrefixLength(maximum: 32)), ("10.96.0.0/33", .invalidPrefixLength(maximum: 32)),
      ("10.96.0.0/", .invalidPrefixLength(maximum: 32)), ("10.96.0.0/+8", .invalidPrefixLength(maximum: 32)),
      ("10.96.0.0/ 8", .invalidPrefixLength(maximum: 32)), ("fd00::/129", .invalidPrefixLength(maximum: 128)),
    ])
  func invalid(text: String, error: CIDR.ParseError) {
    #expect(throws: error) { try CIDR(text) }
  }

  @Test("containment respects the prefix and the family")
  func containment() throws {
    let services = try CIDR("10.96.0.0/12")
    #expect(services.family == .ipv4)
    #expect(!services.isHost)
    #expect(services.contains(IPAddress("10.96.0.1")!))
    #expect(services.contains(IPAddress("10.111.255.255")!))
    #expect(!services.contains(IPAddress("10.112.0.0")!))
    #expect(!services.contains(IPAddress("10.95.255.255")!))
    // An IPv4 network never holds an IPv6 address, even one with matching low bits.
    #expect(!services.contains(IPAddress("::a60:1")!))
    let v6 = try CIDR("fd00:10:96::/112")
    #expect(v6.family == .ipv6)
    #expect(v6.contains(IPAddress("fd00:10:96::ffff")!))
    #expect(!v6.contains(IPAddress("fd00:10:96::1:0")!))
    #expect(!v6.contains(IPAddress("10.96.0.1")!))
    let wide = try CIDR("8000::/1")
    #expect(wide.contains(IPAddress("ffff::1")!))
    #expect(!wide.contains(IPAddress("::1")!))
    #expect(!wide.contains(IPAddress("10.0.0.1")!))
    let host = CIDR(host: IPAddress("10.96.0.10")!)
    #expect(host.isHost)
    #expect(host.description == "10.96.0.10/32")
    #expect(host.contains(IPAddress("10.96.0.10")!))
    #expect(!host.contains(IPAddress("10.96.0.11")!))
    #expect(CIDR(host: IPAddress("fd00::a")!).description == "fd00::a/128")
    #expect(CIDR(address: IPAddress("10.1.2.3")!, prefixLength: 99).description == "10.1.2.3/32")
  }

  @Test("encodes as its text")
  func codable() throws {
    let cidr = try CIDR("10.96.0.0/12")
    let data = try JSONEncoder().encode([cidr])
    #expect(String(decoding: data, as: UTF8.self) == #"["10.96.0.0\/12"]"#)
    #expect(try JSONDecoder().decode([CIDR].self, from: data) == [cidr])
    #expect(throws: (any Error).self) { try JSONDecoder().decode([CIDR].self, from: Data(#"["10.96.0.0/40"]"#.utf8)) }
  }
}
