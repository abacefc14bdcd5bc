import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import StoreTestSupport
import Testing

/// The team store on the lab (issue 16): the traffic of the trace test collected into PostgreSQL
/// (a throwaway cluster on loopback, or `SVCTRACE_TEST_POSTGRES_URL`), by one collector, by two
/// collectors on disjoint `--limit`s at once, and by two collectors on the same nodes at once;
/// every ground-truth connection must trace right each time, stored once.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct PostgresEndToEndTests {
  /// The ground truth of one traffic run and the three stores collected from it.
  struct Capture: @unchecked Sendable {
    var truth: [[String: Any]]
    var nodeIPs: [String: String]
    /// One collector of every node.
    var single: String
    /// Two collectors at once, on disjoint `--limit`s.
    var disjoint: String
    /// Two collectors at once, on every node each.
    var overlapping: String
  }

  private static let capturing = Task { try await makeCapture() }

  static func capture() async throws -> Capture { try await capturing.value }

  private static let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]

  private static func makeCapture() async throws -> Capture {
    let cluster = try Lab.cluster()
    try #require(cluster.nodes.count >= 2, "the lab has \(cluster.nodes.count) nodes; two collectors need two")
    try await Lab.installFresh()
    return try await withCleanup {
      let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "svct-pg-e2e-\(UUID().uuidString)"
      ).path
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let truthFile = directory + "/truth.jsonl"
      let traffic = try await Lab.lab(["traffic", "--count", "60", "--burst", "120", "--check", "--out", truthFile])
      try #require(traffic.status == 0, "traffic: \(traffic.stdout)\(traffic.stderr)")
      try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously
      let truth = try String(contentsOfFile: truthFile, encoding: .utf8).split(separator: "\n").compactMap {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }

      // One collector.
      let single = try await TestPostgres.makeDatabase()
      let collect = try await Lab.svctrace(["collect", "--store", single, "--json"] + fleet)
      try #require(collect.status == 0, "collect: \(collect.stdout)\(collect.stderr)")

      // Two collectors at once on disjoint --limits: the first node, and every other one.
      let disjoint = try await TestPostgres.makeDatabase()
      let first = cluster.nodes[0].name
      async let left = Lab.svctrace(["collect", "--store", disjoint, "--limit", first] + fleet)
      async let right = Lab.svctrace(["collect", "--store", disjoint, "--limit", "all:!\(first)"] + fleet)
      let (one, two) = try await (left, right)
      try #require(one.status == 0 && two.status == 0, "collects: \(one.stderr)\(two.stderr)")

      // Two collectors at once on the same nodes: each node is stored by whichever claims it (or
      // commits first); the other yields.
      let overlapping = try await TestPostgres.makeDatabase()
      async let a = Lab.svctrace(["collect", "--store", overlapping] + fleet)
      async let b = Lab.svctrace(["collect", "--store", overlapping] + fleet)
      let (ra, rb) = try await (a, b)
      try #require(ra.status == 0 && rb.status == 0, "collects: \(ra.stderr)\(rb.stderr)")

      return Capture(
        truth: truth, nodeIPs: Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0.name, $0.ip) }),
        single: single, disjoint: disjoint, overlapping: overlapping)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }

  /// What is wrong with `record` as the answer for `connection` (nil when right), as in
  /// TraceEndToEndTests.
  private static func mismatch(_ record: [String: Any], _ connection: [String: Any], _ capture: Capture) -> String? {
    let kind = connection["kind"] as? String ?? "?"
    let node = connection["dnat_node"] as? String ?? "?"
    var serviceIP = "\(connection["service_ip"] ?? "")"
    var problems: [String] = []
    if kind == "nodeport" {
      serviceIP = capture.nodeIPs[node] ?? "?"
    } else if "\(record["service_port"] ?? "")" != "\(connection["service_port"] ?? "")" {
      problems.append("service_port \(record["service_port"] ?? "nil")")
    }
    if "\(record["service_ip"] ?? "")" != serviceIP { problems.append("service_ip \(record["service_ip"] ?? "nil")") }
    for field in ["pod_ip", "pod_port"] where "\(record[field] ?? "")" != "\(connection[field] ?? "")" {
      problems.append("\(field) \(record[field] ?? "nil")")
    }
    if record["node"] as? String != node { problems.append("node \(record["node"] ?? "nil") instead of \(node)") }
    return problems.isEmpty ? nil : "\(kind) \(GroundTruth.key(connection)): " + problems.joined(separator: ", ")
  }

  /// Checks that every ground-truth connection is stored once in `store` and traced right.
  private static func expectEveryConnectionTracedOnce(_ store: String, _ capture: Capture, _ label: String)
    async throws
  {
    #expect(capture.truth.count >= 400, "only \(capture.truth.count) ground-truth connections")
    let byClient = try await GroundTruth.tracedByClient(store: store)
    let outcome = GroundTruth.compare(capture.truth, with: byClient) { mismatch($0, $1, capture) }
    let (missing, wrong) = (outcome.missing, outcome.wrong)
    #expect(
      missing.isEmpty, "\(label): \(missing.count) of \(capture.truth.count) missing or twice: \(missing.prefix(10))")
    #expect(wrong.isEmpty, "\(label): \(wrong.count) of \(capture.truth.count) wrong: \(wrong.prefix(10))")
  }

  /// The lines stored in `store`, and how many distinct raw lines that is.
  private static func storedLines(_ store: String) async throws -> (lines: Int, batches: Int) {
    let lines = try await TestPostgres.query(store, "SELECT COALESCE(SUM(count), 0) FROM line_blocks")
    let batches = try await TestPostgres.query(store, "SELECT COUNT(*) FROM batches WHERE lines > 0")
    return (Int(lines) ?? -1, Int(batches) ?? -1)
  }

  @Test func oneCollectorIntoPostgresTracesEveryGroundTruthConnection() async throws {
    let capture = try await Self.capture()
    try await Self.expectEveryConnectionTracedOnce(capture.single, capture, "one collector")
    // --explain reads the raw lines out of the database.
    let connection = try #require(capture.truth.first { $0["kind"] as? String == "pod-clusterip" })
    let client = "\(connection["client_ip"] ?? ""):\(connection["client_port"] ?? "")"
    let explained = try await Lab.svctrace([
      "trace", "--store", capture.single, "--client", client, "--explain", "--format", "json",
    ])
    #expect(explained.status == 0, "\(explained.stderr)")
    let records = try JSONSerialization.jsonObject(with: Data(explained.stdout.utf8)) as? [[String: Any]] ?? []
    let lines = records.first?["explain"] as? [[String: Any]] ?? []
    #expect(lines.count == 2, "\(explained.stdout)")
    #expect(lines.allSatisfy { ($0["raw"] as? String)?.isEmpty == false }, "\(explained.stdout)")
  }

  @Test func twoCollectorsOnDisjointLimitsAtOnceStoreEverything() async throws {
    let capture = try await Self.capture()
    try await Self.expectEveryConnectionTracedOnce(capture.disjoint, capture, "disjoint --limit collectors")
    #expect(try await Self.storedLines(capture.disjoint).lines == (try await Self.storedLines(capture.single).lines))
  }

  @Test func twoCollectorsOnTheSameNodesAtOnceStoreNothingTwice() async throws {
    let capture = try await Self.capture()
    try await Self.expectEveryConnectionTracedOnce(capture.overlapping, capture, "overlapping collectors")
    // Every line once: as many as the single collector stored.
    #expect(try await Self.storedLines(capture.overlapping).lines == (try await Self.storedLines(capture.single).lines))
    // As many connection records as the single collector's store holds.
    func records(_ store: String) async throws -> Int {
      let run = try await Lab.svctrace(["trace", "--store", store, "--format", "jsonl", "--max", "1000000"])
      return run.stdout.split(separator: "\n").count
    }
    #expect(try await records(capture.overlapping) == (try await records(capture.single)))
  }
}
