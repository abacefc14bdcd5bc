import Foundation
import SVCTraceCommands

/// A figure's goal from issue #14: a ceiling on the ratio to the `ssh true` fan-out of the same run.
struct FleetGoal: Codable, Equatable, Sendable {
  /// The largest ratio that passes (e.g. 0.8 for "ping ≤ 0.8×").
  var maxRatio: Double

  /// `true` when `ratio` meets the goal.
  func passes(_ ratio: Double) -> Bool { ratio <= maxRatio }
}

/// One timed step of `bench fleet`: a command run once over the fleet.
struct FleetStep: Codable, Sendable {
  /// What ran, as shown in the table (`svctrace ping`, `ssh true, xargs -P 20`).
  var name: String
  var seconds: Double
  /// Exit status (128 + signal for a killed process).
  var status: Int32
  /// Peak RSS of the largest process of the step (`ru_maxrss` of the children), KiB.
  var peakRSSKiB: Int
  /// Goal on the ratio to the `ssh true` fan-out; nil when the issue sets none.
  var goal: FleetGoal?
  /// Whether the issue's controller-memory ceiling (200 MB) applies to this step.
  var memoryGoalApplies: Bool
  /// Where the step's output went.
  var log: String
}

/// The latency of `trace --follow`: from a connection's own timestamp to the moment its record
/// was printed.
struct FollowLatency: Codable, Sendable {
  var connections: Int
  var printed: Int
  var p50: Double?
  var p95: Double?
  var max: Double?
  /// Seconds between collects given to `--follow --interval`.
  var interval: Double
  /// Peak RSS of the `trace --follow` process (VmHWM), KiB; 0 when unknown.
  var peakRSSKiB: Int
  var goalSeconds: Double = 3
  /// The same delays measured from the record's own time — when the node's log got the line
  /// (rsyslog's receive time, clock-corrected) — instead of when the traffic made the
  /// connection: svctrace's share, without the node's kernel-to-file delay.
  var afterLogP50: Double?
  var afterLogP95: Double?

  /// Builds the summary from the delays of the printed connections and the number made.
  init(delays: [Double], connections: Int, interval: Double, peakRSSKiB: Int) {
    self.connections = connections
    self.printed = delays.count
    let sorted = delays.sorted()
    p50 = Percentile.nearestRank(sorted, 50)
    p95 = Percentile.nearestRank(sorted, 95)
    max = sorted.last
    self.interval = interval
    self.peakRSSKiB = peakRSSKiB
  }

  var neverPrinted: Int { connections - printed }

  /// PASS when every connection was printed and p95 is within the goal.
  var passes: Bool {
    guard connections > 0, neverPrinted == 0, let p95 else { return false }
    return p95 <= goalSeconds
  }
}

/// Nearest-rank percentiles.
enum Percentile {
  /// The `p`-th percentile (0 < p ≤ 100) of ascending `sorted` by the nearest-rank method:
  /// the smallest value with at least p % of the values at or below it. Nil for no values.
  static func nearestRank(_ sorted: [Double], _ p: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[Swift.max(1, Swift.min(sorted.count, rank)) - 1]
  }
}

/// `svctrace install` next to one OpenSSH shell script per node making the same edits.
struct FloorComparison: Codable, Sendable {
  var nodes: Int
  var svctrace: FleetStep
  var shellScripts: FleetStep
  /// Hosts for which `svctrace install --check` still saw changes after the scripts (empty: verified).
  var notVerified: [String]
  var goalRatio: Double = 2

  var ratio: Double { shellScripts.seconds > 0 ? svctrace.seconds / shellScripts.seconds : .infinity }
  var passes: Bool { ratio <= goalRatio }
}

/// Ground-truth connections against what `svctrace trace` answered.
struct Correctness: Codable, Sendable {
  var connections: Int
  var right: Int
  /// Per kind, how many were made.
  var kinds: [String: Int]
  /// Connections with no record or several (first few, then a count in ``missingCount``).
  var missing: [String]
  var missingCount: Int
  /// Connections answered with the wrong service, pod or node.
  var wrong: [String]
  var wrongCount: Int

  var passes: Bool { connections > 0 && right == connections }
}

/// The whole result of one `bench fleet` run.
struct FleetReport: Codable, Sendable {
  var nodes: Int
  var forks: Int
  /// Connections the traffic generator made before the first collect.
  var trafficConnections: Int
  /// The baseline: `ssh -o BatchMode=yes node true` over the same hosts with `xargs -P FORKS`.
  var baseline: FleetStep
  var steps: [FleetStep]
  var correctness: Correctness?
  var follow: FollowLatency?
  var floor: FloorComparison?
  var memoryLimitMB: Int = 200
  var notes: [String] = []

  /// `step.seconds / baseline.seconds`.
  func ratio(_ step: FleetStep) -> Double {
    baseline.seconds > 0 ? step.seconds / baseline.seconds : .infinity
  }

  /// PASS/MISS for the step's ratio goal and exit status; "—" when the issue sets no goal.
  func verdict(_ step: FleetStep) -> String {
    guard let goal = step.goal else { return step.status == 0 ? "—" : "MISS (exit \(step.status))" }
    let ratioOK = goal.passes(ratio(step))
    let label = "≤ \(Output.decimal(goal.maxRatio))×"
    if step.status != 0 { return "\(label) MISS (exit \(step.status))" }
    return "\(label) " + (ratioOK ? "PASS" : "MISS")
  }

  /// PASS/MISS of the memory ceiling, "—" where it does not apply.
  func memoryVerdict(_ step: FleetStep) -> String {
    guard step.memoryGoalApplies else { return "—" }
    return step.peakRSSKiB <= memoryLimitMB * 1024 ? "PASS" : "MISS"
  }

  /// The table, one line per step, then the follow latency, the floor and correctness.
  func render() -> String {
    var rows: [[String]] = [
      ["step", "time", "per node", "ratio", "exit", "peak RSS", "goal", "mem < \(memoryLimitMB) MB"]
    ]
    func megabytes(_ kib: Int) -> String { Output.decimal(Double(kib) / 1024) + " MB" }
    rows.append([
      baseline.name, Output.decimal(baseline.seconds) + " s", perNode(baseline.seconds), "1.00×", "\(baseline.status)",
      megabytes(baseline.peakRSSKiB), "(baseline)", "—",
    ])
    for step in steps {
      rows.append([
        step.name, Output.decimal(step.seconds) + " s", perNode(step.seconds), Self.ratioText(ratio(step)),
        "\(step.status)", megabytes(step.peakRSSKiB), verdict(step), memoryVerdict(step),
      ])
    }
    var text =
      "bench fleet: \(nodes) nodes, forks \(forks), \(trafficConnections) connections of traffic before collect\n"
    text += Self.table(rows)
    if let follow {
      text += "\ntrace --follow (--interval \(Output.decimal(follow.interval)) s): \(follow.connections) connections, "
      if let p50 = follow.p50, let p95 = follow.p95, let max = follow.max {
        text +=
          "p50 \(Output.decimal(p50)) s, p95 \(Output.decimal(p95)) s, max \(Output.decimal(max)) s, "
      }
      text += "\(follow.neverPrinted) never printed"
      if follow.peakRSSKiB > 0 { text += ", peak RSS \(megabytes(follow.peakRSSKiB))" }
      text += "; goal p95 ≤ \(Output.decimal(follow.goalSeconds)) s: " + (follow.passes ? "PASS" : "MISS") + "\n"
      if let p50 = follow.afterLogP50, let p95 = follow.afterLogP95 {
        text +=
          "  from the line's own logged time (the node's kernel → log file delay left out): "
          + "p50 \(Output.decimal(p50)) s, p95 \(Output.decimal(p95)) s\n"
      }
    }
    if let floor {
      text += "\ninstall on \(floor.nodes) nodes vs. one OpenSSH shell script per node (xargs -P \(forks)):\n"
      text += Self.table([
        ["side", "time", "per node", "exit", "peak RSS"],
        [
          floor.svctrace.name, Output.decimal(floor.svctrace.seconds) + " s",
          perNode(floor.svctrace.seconds, floor.nodes),
          "\(floor.svctrace.status)", megabytes(floor.svctrace.peakRSSKiB),
        ],
        [
          floor.shellScripts.name, Output.decimal(floor.shellScripts.seconds) + " s",
          perNode(floor.shellScripts.seconds, floor.nodes), "\(floor.shellScripts.status)",
          megabytes(floor.shellScripts.peakRSSKiB),
        ],
      ])
      text +=
        "  ratio svctrace/scripts \(Self.ratioText(floor.ratio)); goal ≤ \(Output.decimal(floor.goalRatio))×: "
        + (floor.passes ? "PASS" : "MISS") + "\n"
      text +=
        floor.notVerified.isEmpty
        ? "  scripts' result verified: svctrace install --check reports 0 changes on \(floor.nodes) nodes\n"
        : "  scripts' result NOT verified: " + floor.notVerified.prefix(5).joined(separator: "; ") + "\n"
    }
    if let correctness {
      let kinds = correctness.kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
      text += "\ncorrectness: \(correctness.right) of \(correctness.connections) traced right (\(kinds))"
      text += correctness.passes ? ": PASS\n" : ": MISS\n"
      if correctness.missingCount > 0 {
        text +=
          "  \(correctness.missingCount) missing or ambiguous: " + correctness.missing.joined(separator: "; ") + "\n"
      }
      if correctness.wrongCount > 0 {
        text += "  \(correctness.wrongCount) wrong: " + correctness.wrong.joined(separator: "; ") + "\n"
      }
    }
    for note in notes { text += "note: \(note)\n" }
    return text
  }

  private func perNode(_ seconds: Double, _ count: Int? = nil) -> String {
    let count = count ?? nodes
    return count > 0 ? Output.decimal(seconds / Double(count)) + " s" : "—"
  }

  static func ratioText(_ ratio: Double) -> String {
    ratio.isFinite ? Output.decimal(ratio) + "×" : "—"
  }

  /// Left-aligned columns, two spaces apart, the header underlined.
  static func table(_ rows: [[String]]) -> String {
    let columns = rows.map(\.count).max() ?? 0
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    var text = ""
    for (number, row) in rows.enumerated() {
      let cells = row.enumerated().map { index, cell in
        index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
      }
      text += "  " + cells.joined(separator: "  ") + "\n"
      if number == 0 {
        text += "  " + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
      }
    }
    return text
  }
}

/// Ground truth of `testbed/traffic.py` compared with `svctrace trace` records, as the end-to-end
/// tests do: one record per (protocol, client ip:port), with the ground truth's service, pod and
/// DNAT node.
enum GroundTruth {
  /// How a connection or a record is matched: protocol and client ip:port.
  static func key(_ object: [String: Any]) -> String {
    "\(object["proto"] ?? "")|\(object["client_ip"] ?? ""):\(object["client_port"] ?? "")"
  }

  /// Parses JSON lines (blank lines skipped).
  /// - Throws: a `BenchmarkFailure` naming the line that is not a JSON object.
  static func objects(jsonLines text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").enumerated().compactMap { number, line in
      guard !line.allSatisfy(\.isWhitespace) else { return nil }
      guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw BenchmarkFailure("line \(number + 1) is not a JSON object: \(line.prefix(200))")
      }
      return object
    }
  }

  /// What is wrong with `record` as the answer for `connection` (nil when right). A NodePort
  /// connection's service address is the node's own IP (`nodeIPs`: node name → IP).
  static func mismatch(_ record: [String: Any], _ connection: [String: Any], nodeIPs: [String: String]) -> String? {
    let kind = connection["kind"] as? String ?? "?"
    let node = connection["dnat_node"] as? String ?? "?"
    var serviceIP = "\(connection["service_ip"] ?? "")"
    var problems: [String] = []
    if kind == "nodeport" {
      serviceIP = nodeIPs[node] ?? "?"
    } else if "\(record["service_port"] ?? "")" != "\(connection["service_port"] ?? "")" {
      problems.append("service_port \(record["service_port"] ?? "nil")")
    }
    if "\(record["service_ip"] ?? "")" != serviceIP { problems.append("service_ip \(record["service_ip"] ?? "nil")") }
    for field in ["pod_ip", "pod_port"] where "\(record[field] ?? "")" != "\(connection[field] ?? "")" {
      problems.append("\(field) \(record[field] ?? "nil")")
    }
    if record["node"] as? String != node { problems.append("node \(record["node"] ?? "nil") instead of \(node)") }
    return problems.isEmpty ? nil : "\(kind) \(key(connection)): " + problems.joined(separator: ", ")
  }

  /// Every connection of `truth` must have exactly one record, and it must be right. Where several
  /// records share a connection's protocol and client ip:port (separate generator runs reuse client
  /// ports), only those within `timeWindow` seconds of its timestamp count.
  static func compare(
    truth: [[String: Any]], records: [[String: Any]], nodeIPs: [String: String], timeWindow: Double = 2,
    show: Int = 10
  ) -> Correctness {
    var byClient: [String: [[String: Any]]] = [:]
    // A pre-DNAT line without a post-DNAT line (method `pod-unknown`, no pod) answers no
    // ground-truth connection: the generator's truth holds only connections a pod answered.
    for record in records where record["method"] as? String != "pod-unknown" {
      byClient[key(record), default: []].append(record)
    }
    var missing: [String] = []
    var wrong: [String] = []
    var kinds: [String: Int] = [:]
    for connection in truth {
      kinds[connection["kind"] as? String ?? "?", default: 0] += 1
      var found = byClient[key(connection)] ?? []
      if found.count > 1, let made = epochSeconds(connection["time"] as? String ?? "") {
        // Two generator runs may both have used this client ip:port; their records are told apart by time.
        found = found.filter { record in
          epochSeconds(record["time"] as? String ?? "").map { abs($0 - made) <= timeWindow } ?? false
        }
      }
      guard found.count == 1 else {
        missing.append("\(connection["kind"] ?? "?") \(key(connection)): \(found.count) records")
        continue
      }
      if let problem = mismatch(found[0], connection, nodeIPs: nodeIPs) { wrong.append(problem) }
    }
    return Correctness(
      connections: truth.count, right: truth.count - missing.count - wrong.count, kinds: kinds,
      missing: Array(missing.prefix(show)), missingCount: missing.count, wrong: Array(wrong.prefix(show)),
      wrongCount: wrong.count)
  }

  /// Seconds since 1970 of an RFC 3339 UTC time with up to 9 fraction digits
  /// (`2026-11-27T13:00:00.123456Z`, the traffic generator's `time`); nil when malformed.
  static func epochSeconds(_ text: String) -> Double? {
    guard text.hasSuffix("Z"), text.count >= 20 else { return nil }
    let body = text.dropLast()
    let whole: Substring
    var fraction = 0.0
    if let dot = body.firstIndex(of: ".") {
      whole = body[..<dot]
      let digits = body[body.index(after: dot)...]
      guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
        let value = Double("0." + digits)
      else { return nil }
      fraction = value
    } else {
      whole = body
    }
    let parts = whole.split(whereSeparator: { "-T:".contains($0) }).map { Int($0) }
    guard whole.count == 19, parts.count == 6, parts.allSatisfy({ $0 != nil }) else { return nil }
    var components = DateComponents()
    components.calendar = Calendar(identifier: .gregorian)
    components.timeZone = TimeZone(identifier: "UTC")
    (components.year, components.month, components.day) = (parts[0], parts[1], parts[2])
    (components.hour, components.minute, components.second) = (parts[3], parts[4], parts[5])
    guard components.isValidDate, let date = components.date else { return nil }
    return date.timeIntervalSince1970 + fraction
  }
}
