import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Generates realistic svctrace node logs, deterministically from a seed.
///
/// Each node's stream mixes: connections logged as a `SVCT:PRE ` line followed (a few lines later,
/// never earlier) by its `SVCT:POST ` line with the same SRC/SPT — pod→ClusterIP (some hairpin),
/// host→ClusterIP (OUTPUT, with UID/GID), external→NodePort (MARK=0x4000 after DNAT) and a
/// hostNetwork endpoint (POST in INPUT); TCP SYNs with random IP IDs, some UDP (DNS), a little
/// IPv6 (written in the kernel's full `%pI6` form); plus unrelated kernel lines (noise) and a few
/// garbled lines (cut before `PROTO=`, random bytes, broken timestamps), which a parser must skip.
/// Lines carry RFC 3339 µs timestamps as svctrace's rsyslog template writes them.
///
/// Every node has its own random stream derived from the seed, so a node's output depends only
/// on `seed`, its index and the counts requested.
public struct LogGenerator: Sendable {
  /// Shares of each kind of line (fractions of all lines written).
  public struct Options: Sendable {
    /// Share of connections that are UDP.
    public var udpShare: Double = 0.15
    /// Share of connections that are IPv6.
    public var ipv6Share: Double = 0.03
    /// Share of lines that are unrelated kernel messages.
    public var noiseShare: Double = 0.02
    /// Share of lines that are garbled.
    public var garbledShare: Double = 0.005
    /// Whether lines carry a `[12345.678901]` kernel timestamp after `kernel:`.
    public var kernelTimestamps = false
    /// The zone offset written in the RFC 3339 timestamps.
    public var utcOffsetSeconds: Int32 = 0
    /// Mean packet lines per second of log time.
    public var linesPerSecond = 2_000

    /// The default, realistic mix.
    public init() {}
  }

  /// What was written for one node: the numbers a parser must reproduce.
  public struct Summary: Sendable, Equatable, Codable {
    /// `SVCT:PRE ` lines written.
    public var preLines = 0
    /// `SVCT:POST ` lines written.
    public var postLines = 0
    /// Unrelated kernel lines written (never packet lines of svctrace).
    public var noiseLines = 0
    /// Garbled lines written (never parseable).
    public var garbledLines = 0
    /// Bytes written, newlines included.
    public var bytes = 0

    /// Packet lines (pre + post).
    public var packetLines: Int { preLines + postLines }
    /// Every line.
    public var totalLines: Int { packetLines + noiseLines + garbledLines }

    /// An empty summary.
    public init() {}
  }

  /// A file written by ``writeNodeFiles(directory:linesPerNode:)``.
  public struct NodeFile: Sendable {
    /// The node's host name (`node1` …).
    public var node: String
    /// Where its log was written.
    public var path: String
    /// What the file contains.
    public var summary: Summary
  }

  /// The seed every node's random stream derives from.
  public let seed: UInt64
  /// The mix of lines written.
  public let options: Options
  private var nodes: [NodeState]

  /// Creates a generator for `nodes` nodes (at least one) whose clocks start at `startMicros`.
  public init(seed: UInt64, nodes: Int, startMicros: Int64 = 1_778_967_108_000_000, options: Options = Options()) {
    self.seed = seed
    self.options = options
    let services = Self.makeServices(seed: seed, nodes: max(1, nodes))
    self.nodes = (0..<max(1, nodes)).map { index in
      NodeState(index: index, seed: seed, startMicros: startMicros, services: services)
    }
  }

  /// Host name of node `index` (`node1`, `node2`, …).
  public static func nodeName(_ index: Int) -> String { "node\(index + 1)" }

  /// Number of nodes.
  public var nodeCount: Int { nodes.count }

  /// What has been written for node `index` so far.
  public func summary(node index: Int) -> Summary { nodes[min(max(index, 0), nodes.count - 1)].summary }

  /// Appends the next `count` lines of node `node` (each ending in `\n`) to `buffer`.
  ///
  /// Every connection started within the call also gets its POST line within the call.
  public mutating func writeLines(count: Int, node: Int = 0, to buffer: inout [UInt8]) {
    let index = min(max(node, 0), nodes.count - 1)
    nodes[index].write(count: max(0, count), options: options, to: &buffer)
  }

  /// Writes `totalLines` lines spread over the nodes (the first `totalLines % nodeCount` nodes get
  /// one more) to `<directory>/<node>.log`, streaming in batches.
  /// - Throws: ``GeneratorError`` when a file cannot be created or written.
  public mutating func writeNodeFiles(directory: String, totalLines: Int) throws -> [NodeFile] {
    let total = max(0, totalLines)
    let counts = nodes.indices.map { total / nodes.count + ($0 < total % nodes.count ? 1 : 0) }
    return try writeNodeFiles(directory: directory, lineCounts: counts)
  }

  /// Writes `linesPerNode` lines per node to `<directory>/<node>.log`, streaming in batches.
  /// - Throws: ``GeneratorError`` when a file cannot be created or written.
  public mutating func writeNodeFiles(directory: String, linesPerNode: Int) throws -> [NodeFile] {
    try writeNodeFiles(directory: directory, lineCounts: Array(repeating: linesPerNode, count: nodes.count))
  }

  private mutating func writeNodeFiles(directory: String, lineCounts: [Int]) throws -> [NodeFile] {
    var files: [NodeFile] = []
    var buffer: [UInt8] = []
    buffer.reserveCapacity(4 << 20)
    for index in nodes.indices {
      let path = directory + "/" + Self.nodeName(index) + ".log"
      let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
      guard fd >= 0 else { throw GeneratorError(path: path, operation: "create", code: errno) }
      defer { close(fd) }
      var remaining = max(0, lineCounts[index])
      while remaining > 0 {
        let batch = min(remaining, 10_000)
        buffer.removeAll(keepingCapacity: true)
        writeLines(count: batch, node: index, to: &buffer)
        remaining -= batch
        try buffer.withUnsafeBytes { bytes in
          guard let base = bytes.baseAddress else { return }
          var offset = 0
          while offset < bytes.count {
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
              if errno == EINTR { continue }
              throw GeneratorError(path: path, operation: "write", code: errno)
            }
            offset += written
          }
        }
      }
      files.append(NodeFile(node: Self.nodeName(index), path: path, summary: nodes[index].summary))
    }
    return files
  }

  // MARK: - Cluster model

  /// A ClusterIP service with its endpoints.
  struct Service: Sendable {
    var vip4: UInt32
    var vip6Low: UInt16
    var port: UInt16
    var nodePort: UInt16
    var udp: Bool
    var endpoints: [(node: Int, host: UInt8, port: UInt16)]
  }

  private static func makeServices(seed: UInt64, nodes: Int) -> [Service] {
    var rng = SplitMix64(seed: seed ^ 0x5EED_5E55)
    var services: [Service] = []
    let ports: [UInt16] = [80, 443, 8080, 9090, 6379, 5432]
    for index in 0..<24 {
      let udp = index % 8 == 0
      let endpointCount = 1 + Int(rng.next() % 4)
      let target = udp ? UInt16(53) : UInt16(8000 + rng.next() % 1000)
      let endpoints = (0..<endpointCount).map { _ in
        (node: Int(rng.next() % UInt64(nodes)), host: UInt8(2 + rng.next() % 250), port: target)
      }
      services.append(
        Service(
          vip4: 0x0A60_0000 | UInt32(index / 200) << 8 | UInt32(10 + index % 200), vip6Low: UInt16(10 + index),
          port: udp ? 53 : ports[index % ports.count], nodePort: UInt16(30000 + rng.next() % 2768), udp: udp,
          endpoints: endpoints))
    }
    return services
  }
}

/// A failure to write a generated log file.
public struct GeneratorError: Error, CustomStringConvertible, Sendable {
  /// The file being written.
  public var path: String
  /// What was attempted (`create`, `write`).
  public var operation: String
  /// The `errno` value.
  public var code: Int32
  /// "Unable to <operation> <path>: <strerror> (errno n)".
  public var description: String {
    "Unable to \(operation) \(path): \(String(cString: strerror(code))) (errno \(code))"
  }
}

/// One node's generator state.
private struct NodeState: Sendable {
  /// A POST line owed to an earlier PRE line.
  struct PendingPost: Sendable {
    var dueAfter: Int
    var packet: GeneratedPacket
  }

  let index: Int
  let name: [UInt8]
  let nodeIP: UInt32
  let services: [LogGenerator.Service]
  var rng: SplitMix64
  var clock: Int64
  let bootMicros: Int64
  var pending: [PendingPost] = []
  var summary = LogGenerator.Summary()
  /// The date of the last line's day, so the calendar is computed once per day of log time.
  var civilDay = CivilDay(days: 0)

  init(index: Int, seed: UInt64, startMicros: Int64, services: [LogGenerator.Service]) {
    self.index = index
    name = Array(LogGenerator.nodeName(index).utf8)
    nodeIP = 0xC0A8_3200 | UInt32(10 + index % 240)
    self.services = services
    rng = SplitMix64(seed: seed &+ 0x1000 &* UInt64(index + 1))
    clock = startMicros &+ Int64(index) &* 1_371
    bootMicros = startMicros &- 86_400_000_000 &- Int64(index) &* 3_600_000_000
  }

  mutating func write(count: Int, options: LogGenerator.Options, to buffer: inout [UInt8]) {
    let meanStep = max(1, 1_000_000 / max(1, options.linesPerSecond))
    var written = 0
    while written < count {
      clock &+= Int64(rng.below(UInt64(2 * meanStep)))
      let remaining = count - written
      for k in pending.indices { pending[k].dueAfter -= 1 }
      if let due = pending.firstIndex(where: { $0.dueAfter <= 0 }) ?? (remaining <= pending.count ? 0 : nil) {
        let post = pending.remove(at: due)
        render(post.packet, options: options, to: &buffer)
        summary.postLines += 1
      } else if remaining >= 2, pending.count + 2 <= remaining, !rng.chance(options.noiseShare + options.garbledShare) {
        let (pre, post) = makeConnection(options: options)
        render(pre, options: options, to: &buffer)
        summary.preLines += 1
        pending.append(PendingPost(dueAfter: 1 + Int(rng.below(4)), packet: post))
      } else if rng.chance(options.garbledShare / max(options.noiseShare + options.garbledShare, 1e-9)) {
        writeGarbled(options: options, to: &buffer)
        summary.garbledLines += 1
      } else {
        writeNoise(options: options, to: &buffer)
        summary.noiseLines += 1
      }
      written += 1
    }
  }

  // MARK: Connections

  private mutating func podIP(node: Int, host: UInt8) -> UInt32 { 0x0AF4_0000 | UInt32(node + 1) << 8 | UInt32(host) }

  private mutating func caliName() -> [UInt8] {
    var bytes = Array("cali".utf8)
    var value = rng.next()
    for _ in 0..<11 {
      bytes.append(Array("0123456789abcdef".utf8)[Int(value & 0xF)])
      value >>= 4
    }
    return bytes
  }

  private mutating func mac() -> [UInt8] {
    var bytes: [UInt8] = []
    let digits = Array("0123456789abcdef".utf8)
    for k in 0..<6 {
      let byte = k == 0 ? UInt8(truncatingIfNeeded: rng.next()) & 0xFE | 0x02 : UInt8(truncatingIfNeeded: rng.next())
      if k > 0 { bytes.append(UInt8(ascii: ":")) }
      bytes.append(digits[Int(byte >> 4)])
      bytes.append(digits[Int(byte & 0xF)])
    }
    return bytes
  }

  private mutating func makeConnection(options: LogGenerator.Options) -> (GeneratedPacket, GeneratedPacket) {
    let service = services[Int(rng.below(UInt64(services.count)))]
    let endpoint = service.endpoints[Int(rng.below(UInt64(service.endpoints.count)))]
    let udp = service.udp || rng.chance(options.udpShare * 0.5)
    let ipv6 = rng.chance(options.ipv6Share)
    let roll = rng.below(100)
    var pre = GeneratedPacket()
    pre.stagePre = true
    pre.udp = udp
    pre.ipv6 = ipv6
    pre.ipID =
      udp ? (rng.chance(0.5) ? 0 : UInt16(truncatingIfNeeded: rng.next())) : UInt16(truncatingIfNeeded: rng.next())
    pre.sourcePort = UInt16(32768 + rng.below(28232))
    pre.length = udp ? UInt16(40 + rng.below(60)) : 60
    pre.ttl = 64
    let podOnThisNode = podIP(node: index, host: UInt8(2 + rng.below(250)))
    let endpointIP = podIP(node: endpoint.node, host: endpoint.host)
    var post: GeneratedPacket
    switch roll {
    case 0..<62:  // pod → ClusterIP (hairpin now and then)
      let hairpin = roll < 3 && endpoint.node == index
      pre.source = hairpin ? endpointIP : podOnThisNode
      pre.destination = service.vip4
      pre.destinationPort = service.port
      pre.inInterface = caliName()
      pre.mac = mac() + [UInt8(ascii: ":")] + mac() + Array(":08:00".utf8)
      post = pre
      post.stagePre = false
      post.mac = []
      post.inInterface = []
      post.outInterface = endpoint.node == index ? caliName() : Array("vxlan.calico".utf8)
      post.ttl = 63
      post.mark = hairpin ? 0x4000 : 0
    case 62..<78:  // host → ClusterIP (OUTPUT), logged with the socket's owner
      pre.source = nodeIP
      pre.destination = service.vip4
      pre.destinationPort = service.port
      pre.outInterface = Array("eth0".utf8)
      pre.uid = rng.chance(0.5) ? 0 : 1000
      post = pre
      post.stagePre = false
      post.outInterface = endpoint.node == index ? caliName() : Array("vxlan.calico".utf8)
      post.mark = 0x4000
    case 78..<94:  // external client → NodePort
      pre.source = 0xC0A8_6400 | UInt32(2 + rng.below(250))
      pre.destination = nodeIP
      pre.destinationPort = service.nodePort
      pre.inInterface = Array("eth0".utf8)
      pre.mac = mac() + [UInt8(ascii: ":")] + mac() + Array(":08:00".utf8)
      pre.ttl = 63
      post = pre
      post.stagePre = false
      post.mac = []
      post.inInterface = []
      post.outInterface = endpoint.node == index ? caliName() : Array("vxlan.calico".utf8)
      post.ttl = 62
      post.mark = 0x4000
    default:  // pod → service whose endpoint is hostNetwork on this node (POST seen in INPUT)
      pre.source = podOnThisNode
      pre.destination = service.vip4
      pre.destinationPort = service.port
      pre.inInterface = caliName()
      pre.mac = mac() + [UInt8(ascii: ":")] + mac() + Array(":08:00".utf8)
      post = pre
      post.stagePre = false
      post.destination = nodeIP
      post.destinationPort = 10_250
      return (pre, post)
    }
    post.destination = endpointIP
    post.destinationPort = endpoint.port
    return (pre, post)
  }

  // MARK: Rendering

  private mutating func render(_ packet: GeneratedPacket, options: LogGenerator.Options, to buffer: inout [UInt8]) {
    let start = buffer.count
    writeHeader(options: options, to: &buffer)
    buffer.append(contentsOf: packet.stagePre ? Array("SVCT:PRE ".utf8) : Array("SVCT:POST ".utf8))
    packet.renderFields(to: &buffer, flowLabel: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFF)
    buffer.append(UInt8(ascii: "\n"))
    summary.bytes += buffer.count - start
  }

  private mutating func writeHeader(options: LogGenerator.Options, to buffer: inout [UInt8]) {
    Text.appendRFC3339(clock, offsetSeconds: options.utcOffsetSeconds, day: &civilDay, to: &buffer)
    buffer.append(UInt8(ascii: " "))
    buffer.append(contentsOf: name)
    buffer.append(contentsOf: Array(" kernel: ".utf8))
    if options.kernelTimestamps {
      let sinceBoot = max(0, clock - bootMicros)
      buffer.append(UInt8(ascii: "["))
      Text.appendDecimal(UInt64(sinceBoot / 1_000_000), width: 5, pad: UInt8(ascii: " "), to: &buffer)
      buffer.append(UInt8(ascii: "."))
      Text.appendDecimal(UInt64(sinceBoot % 1_000_000), width: 6, pad: UInt8(ascii: "0"), to: &buffer)
      buffer.append(contentsOf: Array("] ".utf8))
    }
  }

  private mutating func writeNoise(options: LogGenerator.Options, to buffer: inout [UInt8]) {
    let start = buffer.count
    writeHeader(options: options, to: &buffer)
    switch rng.below(5) {
    case 0:
      buffer.append(
        contentsOf: Array("IPv6: ADDRCONF(NETDEV_CHANGE): ".utf8) + caliName() + Array(": link becomes ready".utf8))
    case 1:
      buffer.append(contentsOf: Array("nf_conntrack: nf_conntrack: table full, dropping packet".utf8))
    case 2:
      buffer.append(
        contentsOf: Array("cni0: port 3(veth".utf8) + caliName().suffix(8) + Array(") entered forwarding state".utf8))
    case 3:  // another firewall's LOG line: a packet line, but not ours
      var packet = GeneratedPacket()
      packet.source = 0xC0A8_6400 | UInt32(2 + rng.below(250))
      packet.destination = nodeIP
      packet.sourcePort = UInt16(1024 + rng.below(60000))
      packet.destinationPort = 22
      packet.inInterface = Array("eth0".utf8)
      packet.mac = mac() + [UInt8(ascii: ":")] + mac() + Array(":08:00".utf8)
      packet.ipID = UInt16(truncatingIfNeeded: rng.next())
      packet.length = 60
      packet.ttl = 52
      buffer.append(contentsOf: Array("[UFW BLOCK] ".utf8))
      packet.renderFields(to: &buffer, flowLabel: 0)
    default:
      buffer.append(contentsOf: Array("audit: type=1400 audit(".utf8))
      Text.appendDecimal(UInt64(max(0, clock / 1_000_000)), width: 1, pad: 0, to: &buffer)
      buffer.append(contentsOf: Array(".123:456): apparmor=\"DENIED\" operation=\"open\"".utf8))
    }
    buffer.append(UInt8(ascii: "\n"))
    summary.bytes += buffer.count - start
  }

  private mutating func writeGarbled(options: LogGenerator.Options, to buffer: inout [UInt8]) {
    let start = buffer.count
    switch rng.below(3) {
    case 0:  // a packet line cut before PROTO= (e.g. a torn write)
      let (pre, _) = makeConnection(options: options)
      var line: [UInt8] = []
      writeHeader(options: options, to: &line)
      line.append(contentsOf: Array("SVCT:PRE ".utf8))
      pre.renderFields(to: &line, flowLabel: 0)
      let protoAt = Text.find(Array(" PROTO=".utf8), in: line) ?? line.count
      buffer.append(contentsOf: line[0..<Int(rng.below(UInt64(max(1, protoAt))))])
    case 1:  // random printable bytes
      for _ in 0..<(20 + rng.below(180)) { buffer.append(UInt8(33 + rng.below(94))) }
    default:  // a packet line whose timestamp was overwritten
      let (pre, _) = makeConnection(options: options)
      writeHeader(options: options, to: &buffer)
      buffer.append(contentsOf: Array("SVCT:PRE ".utf8))
      pre.renderFields(to: &buffer, flowLabel: 0)
      buffer[start] = UInt8(ascii: "#")
    }
    buffer.append(UInt8(ascii: "\n"))
    summary.bytes += buffer.count - start
  }
}

/// The fields of one generated packet line.
private struct GeneratedPacket: Sendable {
  var stagePre = true
  var udp = false
  var ipv6 = false
  var inInterface: [UInt8] = []
  var outInterface: [UInt8] = []
  var mac: [UInt8] = []
  var source: UInt32 = 0
  var destination: UInt32 = 0
  var sourcePort: UInt16 = 0
  var destinationPort: UInt16 = 0
  var ipID: UInt16 = 0
  var length: UInt16 = 60
  var ttl: UInt8 = 64
  var mark: UInt32 = 0
  var uid: UInt32? = nil

  /// Appends `IN=… OUT=… … PROTO=… …` exactly as the kernel prints it (trailing space included).
  func renderFields(to buffer: inout [UInt8], flowLabel: UInt32) {
    buffer.append(contentsOf: Array("IN=".utf8))
    buffer.append(contentsOf: inInterface)
    buffer.append(contentsOf: Array(" OUT=".utf8))
    buffer.append(contentsOf: outInterface)
    buffer.append(UInt8(ascii: " "))
    if !inInterface.isEmpty {
      buffer.append(contentsOf: Array("MAC=".utf8))
      if ipv6, mac.count >= 5 {  // EtherType 86dd instead of 0800
        buffer.append(contentsOf: mac.dropLast(5))
        buffer.append(contentsOf: Array("86:dd".utf8))
      } else {
        buffer.append(contentsOf: mac)
      }
      buffer.append(UInt8(ascii: " "))
    }
    buffer.append(contentsOf: Array("SRC=".utf8))
    appendAddress(source, to: &buffer)
    buffer.append(contentsOf: Array(" DST=".utf8))
    appendAddress(destination, to: &buffer)
    buffer.append(contentsOf: Array(" LEN=".utf8))
    Text.appendDecimal(UInt64(ipv6 ? length &+ 20 : length), width: 1, pad: 0, to: &buffer)
    if ipv6 {
      buffer.append(contentsOf: Array(" TC=0 HOPLIMIT=".utf8))
      Text.appendDecimal(UInt64(ttl), width: 1, pad: 0, to: &buffer)
      buffer.append(contentsOf: Array(" FLOWLBL=".utf8))
      Text.appendDecimal(UInt64(flowLabel), width: 1, pad: 0, to: &buffer)
    } else {
      buffer.append(contentsOf: Array(" TOS=0x00 PREC=0x00 TTL=".utf8))
      Text.appendDecimal(UInt64(ttl), width: 1, pad: 0, to: &buffer)
      buffer.append(contentsOf: Array(" ID=".utf8))
      Text.appendDecimal(UInt64(ipID), width: 1, pad: 0, to: &buffer)
      if !udp || ipID == 0 { buffer.append(contentsOf: Array(" DF".utf8)) }
    }
    buffer.append(contentsOf: Array(udp ? " PROTO=UDP SPT=".utf8 : " PROTO=TCP SPT=".utf8))
    Text.appendDecimal(UInt64(sourcePort), width: 1, pad: 0, to: &buffer)
    buffer.append(contentsOf: Array(" DPT=".utf8))
    Text.appendDecimal(UInt64(destinationPort), width: 1, pad: 0, to: &buffer)
    if udp {
      buffer.append(contentsOf: Array(" LEN=".utf8))
      Text.appendDecimal(UInt64(length &- 20), width: 1, pad: 0, to: &buffer)
      buffer.append(UInt8(ascii: " "))
    } else {
      buffer.append(contentsOf: Array(" WINDOW=64240 RES=0x00 SYN URGP=0 ".utf8))
    }
    if let uid {
      buffer.append(contentsOf: Array("UID=".utf8))
      Text.appendDecimal(UInt64(uid), width: 1, pad: 0, to: &buffer)
      buffer.append(contentsOf: Array(" GID=".utf8))
      Text.appendDecimal(UInt64(uid), width: 1, pad: 0, to: &buffer)
      buffer.append(UInt8(ascii: " "))
    }
    if mark != 0 {
      buffer.append(contentsOf: Array("MARK=0x".utf8))
      Text.appendHex(UInt64(mark), to: &buffer)
      buffer.append(UInt8(ascii: " "))
    }
  }

  /// IPv4 dotted quad, or for IPv6 lines the address mapped into `fd00:10:…` in full `%pI6` form.
  private func appendAddress(_ value: UInt32, to buffer: inout [UInt8]) {
    if ipv6 {
      // fd00:0010:<a>:<b>:0000:0000:<c>:<d> — 8 groups of 4 hex digits, as the kernel prints.
      let groups: [UInt64] = [
        0xFD00, 0x0010, UInt64(value >> 24), UInt64(value >> 16 & 0xFF), 0, 0, UInt64(value >> 8 & 0xFF),
        UInt64(value & 0xFF),
      ]
      for (k, group) in groups.enumerated() {
        if k > 0 { buffer.append(UInt8(ascii: ":")) }
        Text.appendHex(group, width: 4, to: &buffer)
      }
    } else {
      for shift in stride(from: 24, through: 0, by: -8) {
        Text.appendDecimal(UInt64(value >> UInt32(shift) & 0xFF), width: 1, pad: 0, to: &buffer)
        if shift > 0 { buffer.append(UInt8(ascii: ".")) }
      }
    }
  }
}

/// The calendar date of one day since the epoch (UTC).
struct CivilDay: Sendable {
  var days: Int64
  var year: Int
  var month: Int
  var day: Int

  /// The date of day `days` (0: 1970-01-01), from `gmtime_r`.
  init(days: Int64) {
    self.days = days
    var seconds = time_t(days * 86_400)
    var parts = tm()
    _ = gmtime_r(&seconds, &parts)
    year = Int(parts.tm_year) + 1900
    month = Int(parts.tm_mon) + 1
    day = Int(parts.tm_mday)
  }
}

/// Small text-building helpers for the generator.
enum Text {
  /// Appends `value` in decimal, left-padded with `pad` to at least `width` digits.
  static func appendDecimal(_ value: UInt64, width: Int, pad: UInt8, to buffer: inout [UInt8]) {
    var digits:
      (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
      ) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    var v = value
    withUnsafeMutableBytes(of: &digits) { raw in
      repeat {
        raw[count] = UInt8(ascii: "0") + UInt8(v % 10)
        v /= 10
        count += 1
      } while v > 0
      var padding = width - count
      while padding > 0 {
        buffer.append(pad)
        padding -= 1
      }
      while count > 0 {
        count -= 1
        buffer.append(raw[count])
      }
    }
  }

  /// Appends `value` in lowercase hex, zero-padded to `width` digits.
  static func appendHex(_ value: UInt64, width: Int = 1, to buffer: inout [UInt8]) {
    var nibbles = 1
    while nibbles < 16, value >> (4 * UInt64(nibbles)) != 0 { nibbles += 1 }
    let total = max(nibbles, width)
    for k in stride(from: total - 1, through: 0, by: -1) {
      let nibble = k < 16 ? Int(value >> (4 * UInt64(k)) & 0xF) : 0
      buffer.append(nibble < 10 ? UInt8(48 + nibble) : UInt8(87 + nibble))
    }
  }

  /// Appends µs since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM` (or `Z` for offset 0).
  ///
  /// The calendar date comes from the C library's `gmtime_r`, asked once per day of log time
  /// (`day` caches it).
  static func appendRFC3339(_ micros: Int64, offsetSeconds: Int32, day cache: inout CivilDay, to buffer: inout [UInt8])
  {
    let microsPerDay: Int64 = 86_400_000_000
    let local = micros + Int64(offsetSeconds) * 1_000_000
    let days = local >= 0 ? local / microsPerDay : (local + 1) / microsPerDay - 1
    let inDay = local - days * microsPerDay
    if cache.days != days { cache = CivilDay(days: days) }
    let (year, month, day) = (cache.year, cache.month, cache.day)
    appendDecimal(UInt64(max(0, year)), width: 4, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: "-"))
    appendDecimal(UInt64(month), width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: "-"))
    appendDecimal(UInt64(day), width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: "T"))
    let seconds = inDay / 1_000_000
    appendDecimal(UInt64(seconds / 3600), width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: ":"))
    appendDecimal(UInt64(seconds / 60 % 60), width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: ":"))
    appendDecimal(UInt64(seconds % 60), width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    buffer.append(UInt8(ascii: "."))
    appendDecimal(UInt64(inDay % 1_000_000), width: 6, pad: UInt8(ascii: "0"), to: &buffer)
    if offsetSeconds == 0 {
      buffer.append(UInt8(ascii: "Z"))
    } else {
      buffer.append(offsetSeconds < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
      let magnitude = UInt64(abs(Int64(offsetSeconds)))
      appendDecimal(magnitude / 3600, width: 2, pad: UInt8(ascii: "0"), to: &buffer)
      buffer.append(UInt8(ascii: ":"))
      appendDecimal(magnitude / 60 % 60, width: 2, pad: UInt8(ascii: "0"), to: &buffer)
    }
  }

  /// Index of the first occurrence of `needle` in `haystack`.
  static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
      if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
    }
    return nil
  }
}
