import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// Hardening issue #13 on real nodes: `collect` keeps every line exactly once across dateext
/// rotations (RHEL's global `dateext`), a collect that lands right after a rotation (an empty live
/// file), a second rotation with the first rotated file compressed, and two collects of the same
/// fleet into one store at once.
///
/// Correctness is a multiset comparison: every ground-truth connection (protocol, client, pod) of
/// every traffic round appears in the store exactly as often as the traffic made it — a line lost
/// drops one, a line read twice adds one.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct CollectEndToEndTests {
  let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]
  let log = "/var/log/iptables.log"

  /// Protocol, client and pod of a ground-truth line or a stored record.
  static func key(_ object: [String: Any]) -> String {
    ["proto", "client_ip", "client_port", "pod_ip", "pod_port"].map { "\(object[$0] ?? "")" }.joined(separator: "|")
  }

  /// Installs on every node, with empty logs and no earlier flows; returns a fresh store path.
  private func prepare() async throws -> String {
    try await Lab.svctrace(["remove"] + fleet)
    let install = try await Lab.svctrace(["install"] + fleet)
    try #require(install.status == 0, "install: \(install.stdout)\(install.stderr)")
    try await forEachNode(": > \(log); rm -f \(log).* \(log)-*; conntrack -F >/dev/null 2>&1 || true")
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-collect-e2e-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent("store.sqlite").path
  }

  private func forEachNode(_ command: String) async throws {
    for node in try Lab.cluster().nodes {
      let run = try await Lab.onNode(node.name, command)
      #expect(run.status == 0, "\(node.name): \(command): \(run.stderr)")
    }
  }

  /// One round of traffic of every kind; returns its ground truth. Flows of earlier rounds are
  /// forgotten first, so that a UDP 5-tuple reused by this round is a new connection.
  private func traffic(count: Int) async throws -> [[String: Any]] {
    try await forEachNode("conntrack -F >/dev/null 2>&1 || true")
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("svct-truth-\(UUID()).jsonl").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    let run = try await Lab.lab(["traffic", "--count", "\(count)", "--check", "--out", out])
    try #require(run.status == 0, "traffic: \(run.stdout)\(run.stderr)")
    try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously
    return try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  private func collect(_ store: String) async throws -> Lab.Run {
    let run = try await Lab.svctrace(["collect", "--store", store, "--no-snapshot"] + fleet)
    #expect(run.status == 0, "collect: \(run.stdout)\(run.stderr)")
    return run
  }

  /// Rotates every node's log the way logrotate does with `dateext` (create mode: rename, then
  /// rsyslog reopens), without its help: svctrace's own entry says `nodateext`.
  private func rotateDateext(_ stamp: String) async throws {
    try await forEachNode("mv \(log) \(log)-\(stamp) && : > \(log) && systemctl kill -s HUP rsyslog.service")
  }

  /// Every stored record against the ground truth, as multisets.
  private func expectExactlyOnce(_ truth: [[String: Any]], in store: String) async throws {
    let all = try await Lab.svctrace(["trace", "--store", store, "--format", "jsonl", "--max", "1000000"])
    #expect(all.status == 0, "\(all.stderr)")
    var stored: [String: Int] = [:]
    for line in all.stdout.split(separator: "\n") {
      let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      // A pre line without a post line (pod unknown) is no ground-truth connection.
      if record["method"] as? String == "pod-unknown" { continue }
      stored[Self.key(record), default: 0] += 1
    }
    var expected: [String: Int] = [:]
    for connection in truth { expected[Self.key(connection), default: 0] += 1 }
    let missing = expected.filter { stored[$0.key, default: 0] < $0.value }.map(\.key).sorted()
    let extra = stored.filter { expected[$0.key, default: 0] < $0.value }.map(\.key).sorted()
    #expect(missing.isEmpty, "\(missing.count) of \(truth.count) connections missing: \(missing.prefix(8))")
    #expect(extra.isEmpty, "\(extra.count) connections stored more often than made: \(extra.prefix(8))")
  }

  @Test func dateextRotationsAndACollectRightAfterOneKeepEveryLineOnce() async throws {
    let store = try await prepare()
    try await withCleanup {
      var truth = try await traffic(count: 20)
      _ = try await collect(store)  // part of round 1 read from the live file
      truth += try await traffic(count: 20)
      // Rotated with a dateext name, and collected at once: the live file is still empty.
      try await rotateDateext("20261207")
      _ = try await collect(store)
      truth += try await traffic(count: 20)
      // A second rotation, the first rotated file compressed meanwhile (delaycompress).
      try await rotateDateext("20261208")
      try await forEachNode("gzip -n \(log)-20261207")
      truth += try await traffic(count: 20)
      _ = try await collect(store)
      try await expectExactlyOnce(truth, in: store)
      // Nothing new: a further collect stores nothing.
      let again = try await Lab.svctrace(["collect", "--store", store, "--no-snapshot", "--json"] + fleet)
      #expect(again.status == 0)
      let counts = try NSRegularExpression(pattern: #""lines" ?: ?([0-9]+)"#)
        .matches(in: again.stdout, range: NSRange(again.stdout.startIndex..., in: again.stdout))
        .compactMap { Range($0.range(at: 1), in: again.stdout).flatMap { Int(again.stdout[$0]) } }
      #expect(counts.count == (try Lab.cluster().nodes.count) && counts.allSatisfy { $0 == 0 }, "\(again.stdout)")
      try await expectExactlyOnce(truth, in: store)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }

  @Test func twoCollectsOfTheSameFleetAtOnceStoreEachLineOnce() async throws {
    let store = try await prepare()
    try await withCleanup {
      var truth: [[String: Any]] = []
      for round in 0..<3 {
        truth += try await traffic(count: 20)
        // Two collectors started together on the same nodes and store (a cron collect beside
        // `trace --follow`): one collects each node, the other stops there or finds nothing new.
        async let first = Lab.svctrace(["collect", "--store", store, "--no-snapshot"] + fleet)
        async let second = Lab.svctrace(["collect", "--store", store, "--no-snapshot"] + fleet)
        let (a, b) = try await (first, second)
        #expect(a.status == 0 && b.status == 0, "round \(round): \(a.stdout)\(a.stderr)\(b.stdout)\(b.stderr)")
      }
      try await expectExactlyOnce(truth, in: store)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }

  /// Fleet scale (#14): `collect --every` logs in once per node, collects every round over the
  /// kept connections, and stops cleanly on SIGTERM (exit 0) with every line stored once.
  @Test func collectEveryKeepsOneConnectionPerNodeAndStopsCleanly() async throws {
    let store = try await prepare()
    try await withCleanup {
      let nodes = try Lab.cluster().nodes
      // The lab's sshd logs to /var/log/sshd.log; `Lab.onNode` enters the node without SSH.
      let logins = "grep -c 'Accepted publickey' /var/log/sshd.log || true"
      var before: [String: Int] = [:]
      for node in nodes {
        before[node.name] = Int(try await Lab.onNode(node.name, logins).stdout.filter(\.isNumber)) ?? 0
      }
      let every = try await BackgroundProcess.start(
        [Lab.binary, "collect", "--store", store, "--no-snapshot", "--every", "1s", "--json"] + fleet,
        collectOutput: true)
      var truth = try await traffic(count: 20)
      truth += try await traffic(count: 20)
      try await Task.sleep(for: .seconds(3))
      #expect(every.signal(SIGTERM))
      let result = try await every.wait()
      #expect(result.exitStatus == 0, "\(result.stdoutText)\(result.stderrText)")
      let rounds = result.stdoutText.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
      #expect(rounds.count >= 3, "\(result.stdoutText)")
      #expect(rounds.allSatisfy { ($0["failed"] as? Int) == 0 }, "\(result.stdoutText)")
      for node in nodes {
        let after = Int(try await Lab.onNode(node.name, logins).stdout.filter(\.isNumber)) ?? 0
        #expect(after - before[node.name, default: 0] == 1, "\(node.name): one login for all \(rounds.count) rounds")
      }
      try await expectExactlyOnce(truth, in: store)
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }
}
