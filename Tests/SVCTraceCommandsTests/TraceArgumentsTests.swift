import ArgumentParser
import Fleet
import Foundation
import Ingest
import Logs
import SVCTraceCore
import Store
import Testing

@testable import SVCTraceCommands

@Suite struct DurationAndTimeTests {
  @Test(arguments: [
    ("10m", Int64(600_000_000)), ("2h", 7_200_000_000), ("7d", 604_800_000_000), ("30s", 30_000_000),
    ("500ms", 500_000), ("1.5h", 5_400_000_000), ("45", 45_000_000), ("1w", 604_800_000_000), ("250us", 250),
  ])
  func durations(text: String, micros: Int64) throws {
    #expect(try TraceArguments.duration(text) == micros)
  }

  @Test(arguments: ["", "m", "10x", "-5m", "ten minutes", "1e30d", "nan", "inf"])
  func badDurationsAreRejected(text: String) {
    #expect(throws: (any Error).self) { try TraceArguments.duration(text) }
  }

  @Test func absoluteTimesAreRFC3339() throws {
    #expect(try TraceArguments.time("2026-05-16T21:31:48.5Z", nowMicros: 0) == 1_778_967_108_500_000)
    #expect(try TraceArguments.time("2026-05-16 23:31:48+02:00", nowMicros: 0) == 1_778_967_108_000_000)
  }

  @Test(arguments: [
    "2026-13-01T00:00:00Z", "2026-05-16T25:00:00Z", "2026-05-16T21:31:48.Z", "2026-05-16T21:31:48+0200",
    "2026-05-16T21:31:48Zjunk", "2026/05/16", "16.05.2026", "2026-05-16T", "",
  ])
  func badTimesAreRejected(text: String) {
    #expect(throws: (any Error).self) { try TraceArguments.time(text, nowMicros: 1_000_000_000_000_000) }
  }

  @Test func relativeTimesCountBackFromNow() throws {
    let now: Int64 = 1_778_967_108_000_000
    #expect(try TraceArguments.time("10m", nowMicros: now) == now - 600_000_000)
    #expect(try TraceArguments.time("7d", nowMicros: now) == now - 7 * 86_400_000_000)
  }
}

@Suite struct FilterParsingTests {
  @Test func addressesPortsAndNames() throws {
    let v4 = try #require(IPAddress("10.96.0.10"))
    let loopback6 = try #require(IPAddress("::1"))
    let v6 = try #require(IPAddress("fd00:10:96::a"))
    #expect(try TraceArguments.target("10.96.0.10", option: "--service", allowName: true) == .address(v4, port: nil))
    #expect(try TraceArguments.target("10.96.0.10:53", option: "--service", allowName: true) == .address(v4, port: 53))
    #expect(
      try TraceArguments.target("[::1]:80", option: "--client", allowName: false) == .address(loopback6, port: 80))
    #expect(try TraceArguments.target("[::1]", option: "--client", allowName: false) == .address(loopback6, port: nil))
    #expect(try TraceArguments.target("fd00:10:96::a", option: "--service", allowName: true) == .address(v6, port: nil))
    #expect(try TraceArguments.target("default/web", option: "--service", allowName: true) == .name("default/web"))
  }

  @Test(arguments: [
    "default/web/extra", "/web", "default/", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:http", "[::1", "[::1]80",
    "300.1.1.1", "", "web", "default/we b",
  ])
  func badTargetsAreRejected(text: String) {
    #expect(throws: (any Error).self) { try TraceArguments.target(text, option: "--service", allowName: true) }
  }

  @Test func namesAreRefusedWhereOnlyAddressesMakeSense() {
    #expect(throws: (any Error).self) { try TraceArguments.target("default/web", option: "--client", allowName: false) }
    #expect(throws: (any Error).self) {
      try TraceArguments.target("10.0.0.1:80", option: "--pod", allowName: true, allowPort: false)
    }
  }

  @Test func traceFlagsBecomeTheStoreQuery() throws {
    let command = try SVCTrace.Trace.parse([
      "--client", "[fd00::5]:43122", "--service", "kube-system/kube-dns", "--pod", "10.244.1.7", "--node", "node2",
      "--proto", "UDP",
    ])
    let query = try command.query(nowMicros: 0)
    #expect(query.client == IPAddress("fd00::5"))
    #expect(query.clientPort == 43122)
    #expect(query.serviceName == "kube-system/kube-dns")
    #expect(query.service == nil)
    #expect(query.pod == IPAddress("10.244.1.7"))
    #expect(query.node?.name == "node2")
    #expect(query.proto == 17)
  }

  @Test func aroundAndWindowBracketTheTime() throws {
    let center = try #require(TimeFormat.rfc3339("2026-05-16T21:31:48.250Z"))
    let command = try SVCTrace.Trace.parse(["--around", "2026-05-16T21:31:48.250Z", "--window", "1500ms"])
    let query = try command.query(nowMicros: 0)
    #expect(query.sinceMicros == center - 1_500_000)
    // The upper bound is exclusive: a connection exactly at center + window is included.
    #expect(query.untilMicros == center + 1_500_001)
    let relative = try SVCTrace.Trace.parse(["--since", "10m", "--until", "5m"]).query(nowMicros: 3_600_000_000)
    #expect(relative.sinceMicros == 3_000_000_000)
    #expect(relative.untilMicros == 3_300_000_000)
  }

  @Test func conflictingOrBadTraceFlagsAreUsageErrors() {
    for arguments in [
      ["--around", "10m", "--since", "1h"], ["--since", "5m", "--until", "10m"], ["--proto", "icmp"],
      ["--client", "default/web"], ["--max", "0"], ["--for", "10m"], ["--window", "soon", "--around", "1m"],
    ] {
      #expect(throws: (any Error).self, "\(arguments)") { try SVCTrace.Trace.parse(arguments) }
    }
  }
}

@Suite struct OutputFormattingTests {
  @Test func csvFieldsAreQuotedOnlyWhenNeeded() {
    #expect(TraceArguments.csvField("plain") == "plain")
    #expect(TraceArguments.csvField("a,b") == "\"a,b\"")
    #expect(TraceArguments.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
    #expect(TraceArguments.csvField("two\nlines") == "\"two\nlines\"")
    #expect(TraceArguments.csvField("") == "")
  }

  /// A store holding one correlated connection, from a real pre/post pair of LOG lines.
  private func storeWithOneConnection() async throws -> (TraceStore, ConnectionRecord) {
    let lines = """
      2026-05-16T21:31:48.000478Z node1 kernel: SVCT:PRE IN=cali551182eca3a OUT= SRC=10.244.1.137 DST=10.96.0.33 \
      LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=50052 DF PROTO=TCP SPT=46403 DPT=5432 WINDOW=64240 RES=0x00 SYN URGP=0 
      2026-05-16T21:31:48.002064Z node1 kernel: SVCT:POST IN= OUT=vxlan.calico SRC=10.244.1.137 DST=10.244.2.22 \
      LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=50052 DF PROTO=TCP SPT=46403 DPT=8526 WINDOW=64240 RES=0x00 SYN URGP=0 

      """
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("svct-cli-\(UUID().uuidString).log").path
    try lines.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let store = try TraceStore.inMemory()
    _ = try await Ingestor(store: store).collect(
      from: LocalFileSource(node: .init("node1"), path: path), makeParser: { PacketLineParser(referenceMicros: 0) },
      clock: .zero)
    let records = try store.connections(matching: TraceQuery())
    try #require(records.count == 1)
    return (store, records[0])
  }

  @Test func csvRowsHaveOneFieldPerHeaderColumn() async throws {
    let (_, record) = try await storeWithOneConnection()
    let fields = parseCSV(TracePrinter.csvRow(record))
    let header = TracePrinter.csvHeader
    #expect(fields.count == header.count)
    func field(_ name: String) -> String? { header.firstIndex(of: name).map { fields[$0] } }
    #expect(field("time") == "2026-05-16T21:31:48.000478Z")
    #expect(field("node") == "node1")
    #expect(field("proto") == "tcp")
    #expect(field("client_ip") == "10.244.1.137")
    #expect(field("client_port") == "46403")
    #expect(field("service_ip") == "10.96.0.33")
    #expect(field("service_port") == "5432")
    #expect(field("pod_ip") == "10.244.2.22")
    #expect(field("pod_port") == "8526")
    #expect(field("service") == "")
  }

  @Test func explainAddsTheRawLinesToTheJSONRecord() async throws {
    let (store, record) = try await storeWithOneConnection()
    let data = try JSONEncoder().encode(ExplainedRecord(record: record, lines: try store.explain(record)))
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(object["client_port"] as? Int == 46403)
    #expect(object["pod_ip"] as? String == "10.244.2.22")
    let explain = try #require(object["explain"] as? [[String: Any]])
    #expect(explain.map { $0["stage"] as? String } == ["pre", "post"])
    #expect((explain.first?["raw"] as? String)?.contains("DST=10.96.0.33") == true)
    #expect((explain.last?["raw"] as? String)?.contains("DST=10.244.2.22") == true)
    let plain = try JSONEncoder().encode(ExplainedRecord(record: record, lines: nil))
    let plainObject = try JSONSerialization.jsonObject(with: plain) as? [String: Any]
    #expect(plainObject?["explain"] == nil)
  }

  @Test func statsHTMLEscapesNamesAndHasOneRowPerEndpoint() throws {
    // ServiceStats has no public initializer: build it the way `stats --format json` prints it.
    let json = """
      {"service": "ns/<script>", "connections": 3, "podUnknown": 0, "skew": 1, "chiSquare": 3, "degreesOfFreedom": 1,
       "endpoints": [
         {"endpoint": "10.244.1.5:80", "pod": "ns/a&b", "node": "node1", "connections": 3, "share": 1, "expectedShare": 0.5},
         {"endpoint": "10.244.2.5:80", "pod": "ns/c", "node": "node2", "connections": 0, "share": 0, "expectedShare": 0.5}]}
      """
    let stats = try JSONDecoder().decode(ServiceStats.self, from: Data(json.utf8))
    let html = StatsReport.renderHTML(stats, period: "all")
    #expect(!html.contains("<script>"))
    #expect(html.contains("ns/&lt;script&gt;"))
    #expect(html.contains("ns/a&amp;b"))
    #expect(html.components(separatedBy: "<tr class=").count - 1 == 2)
    #expect(html.contains("id=\"idle\""))
    let table = StatsReport.renderTable(
      stats, period: "all", terminal: .init(stdoutIsTTY: false, stderrIsTTY: false, color: false))
    #expect(table.contains("No traffic: 10.244.2.5:80 ns/c@node2"))
    #expect(!table.contains("\u{1B}["))
  }

  @Test func utcOffsetsOfTraditionalTimestamps() {
    #expect(TraceArguments.utcOffset("+08:00") == Int32(8 * 3600))
    #expect(TraceArguments.utcOffset("-05:30") == Int32(-(5 * 3600 + 30 * 60)))
    #expect(TraceArguments.utcOffset("+0800") == Int32(8 * 3600))
    #expect(TraceArguments.utcOffset("+09") == Int32(9 * 3600))
    #expect(TraceArguments.utcOffset("Z") == 0 && TraceArguments.utcOffset("utc") == 0)
    for bad in ["08:00", "+8:00", "+08:60", "+15:00", "+08:0", "+0:800", "+08::00", "", "+", "+٠٨:٠٠"] {
      #expect(TraceArguments.utcOffset(bad) == nil, "\(bad)")
    }
  }

  @Test func barsUseEighthBlocks() {
    #expect(StatsReport.bar(1, width: 4) == "████")
    #expect(StatsReport.bar(0.5, width: 4) == "██")
    #expect(StatsReport.bar(1.0 / 32, width: 4) == "▏")
    #expect(StatsReport.bar(0, width: 4) == "")
  }

  /// A minimal RFC 4180 reader for one row.
  private func parseCSV(_ line: String) -> [String] {
    var fields: [String] = []
    var current = ""
    var quoted = false
    var characters = Array(line)[...]
    while let character = characters.popFirst() {
      if quoted {
        if character == "\"" {
          if characters.first == "\"" {
            current.append("\"")
            characters.removeFirst()
          } else {
            quoted = false
          }
        } else {
          current.append(character)
        }
      } else if character == "\"" {
        quoted = true
      } else if character == "," {
        fields.append(current)
        current = ""
      } else {
        current.append(character)
      }
    }
    fields.append(current)
    return fields
  }
}

@Suite("collect pull size")
struct CollectPullSizeTests {
  @Test func pullsShrinkWithForksSoBatchesInMemoryStayBounded() {
    #expect(CollectOperation.pullBytes(forks: 1) == 16 << 20)
    #expect(CollectOperation.pullBytes(forks: 16) == 16 << 20)
    #expect(CollectOperation.pullBytes(forks: 64) == 4 << 20)
    #expect(CollectOperation.pullBytes(forks: 10_000) == 1 << 20, "never below 1 MiB")
    for forks in [17, 20, 50, 100, 256] {
      #expect(forks * CollectOperation.pullBytes(forks: forks) <= 256 << 20)
    }
  }
}
