import Foundation
import Testing

/// The ground truth `lab traffic --out` writes (one JSON object per connection the generator made,
/// from the answering pod) matched against the records `svctrace trace` returns, by protocol and
/// client address and port. Each suite says itself what "right" means for a record (`mismatch`).
enum GroundTruth {
  /// The match key of a ground-truth connection or a trace record: `proto|client_ip:client_port`.
  static func key(_ object: [String: Any]) -> String {
    "\(object["proto"] ?? "")|\(object["client_ip"] ?? ""):\(object["client_port"] ?? "")"
  }

  /// The JSON objects of a JSON-lines file (`--out`, `--drops-out`).
  static func lines(_ path: String) throws -> [[String: Any]] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  /// Every connection `store` holds, by ``key(_:)``. Pod-unknown records (a pre-DNAT line without
  /// a post-DNAT line: a connection kube-proxy dropped, or one the generator did not complete)
  /// answer no ground-truth connection and are left out unless `podUnknown`.
  static func tracedByClient(store: String, podUnknown: Bool = false) async throws -> [String: [[String: Any]]] {
    let all = try await Lab.svctrace(["trace", "--store", store, "--format", "jsonl", "--max", "1000000"])
    #expect(all.status == 0, "trace: \(all.stderr)")
    var byClient: [String: [[String: Any]]] = [:]
    for line in all.stdout.split(separator: "\n") {
      let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      if !podUnknown && record["method"] as? String == "pod-unknown" { continue }
      byClient[key(record), default: []].append(record)
    }
    return byClient
  }

  /// How `connections` fared: traced right (exactly one record, and `mismatch` finds nothing),
  /// missing or ambiguous (no record, or several), wrong (one record, `mismatch`'s complaint).
  struct Outcome {
    var right = 0
    var missing: [String] = []
    var wrong: [String] = []
  }

  static func compare(
    _ connections: [[String: Any]], with byClient: [String: [[String: Any]]],
    mismatch: ([String: Any], [String: Any]) -> String?
  ) -> Outcome {
    var outcome = Outcome()
    for connection in connections {
      let records = byClient[key(connection)] ?? []
      guard records.count == 1, let record = records.first else {
        outcome.missing.append("\(connection["kind"] ?? "?") \(key(connection)): \(records.count) records")
        continue
      }
      if let problem = mismatch(record, connection) { outcome.wrong.append(problem) } else { outcome.right += 1 }
    }
    return outcome
  }
}
