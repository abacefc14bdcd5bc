import Foundation
import SVCTraceCore
import Testing

@Suite("IPProtocol")
struct IPProtocolTests {
  @Test(
    "numbers and names",
    arguments: [(UInt8(1), "icmp"), (6, "tcp"), (17, "udp"), (58, "icmpv6"), (132, "sctp"), (0, "0"), (51, "51")])
  func names(number: UInt8, name: String) {
    #expect(IPProtocol(number).name == name)
    #expect(IPProtocol(number).description == name)
    #expect(IPProtocol(name: name) == IPProtocol(number))
    #expect(IPProtocol(name: name.uppercased()) == IPProtocol(number))
  }

  @Test("parsing by name", arguments: ["", "tcp ", "tcpx", "256", "-1", "0x6", "icmp6"])
  func badNames(text: String) {
    #expect(IPProtocol(name: text) == nil)
  }

  @Test("service protocols: tcp, udp, sctp by their exact rule spelling, in rule order")
  func serviceProtocols() {
    #expect(IPProtocol.serviceProtocols == [.tcp, .udp, .sctp])
    #expect(IPProtocol.serviceProtocols.sorted() == IPProtocol.serviceProtocols)
    #expect(IPProtocol(serviceName: "udp") == .udp)
    #expect(IPProtocol(serviceName: "sctp") == .sctp)
    for text in ["TCP", "icmp", "6", "", "tcp "] {
      #expect(IPProtocol(serviceName: text) == nil, "\(text)")
    }
  }

  @Test("encodes as its name")
  func codable() throws {
    let data = try JSONEncoder().encode([IPProtocol.udp, IPProtocol(47)])
    #expect(String(decoding: data, as: UTF8.self) == #"["udp","47"]"#)
    #expect(try JSONDecoder().decode([IPProtocol].self, from: data) == [.udp, IPProtocol(47)])
    #expect(throws: (any Error).self) { try JSONDecoder().decode([IPProtocol].self, from: Data(#"["tcpx"]"#.utf8)) }
  }
}
