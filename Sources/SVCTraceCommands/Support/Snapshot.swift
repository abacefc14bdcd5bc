import Foundation
import SVCTraceCore
import Store
import Subprocess
import Synchronization

/// Kubernetes name snapshots: `kubectl get services,endpointslices,pods -A -o json`, stored with
/// the time they were taken so old connections resolve to the pod that had the IP then.
enum Snapshot {
  static let command = "kubectl get services,endpointslices,pods -A -o json"

  /// Runs kubectl on a control-plane node and stores the result, in one exchange. With
  /// `unlessDigest`, the node compares the SHA-256 of kubectl's output with it and sends the
  /// objects only when they changed (kubectl's multi-kind list carries no list resourceVersion,
  /// so identical output means no Service, EndpointSlice or Pod changed).
  /// - Returns: the report line and the digest of what the node saw.
  static func take(session: any RemoteSession, store: any TraceStoring, unlessDigest: String? = nil) async throws
    -> (message: String, digest: String?)
  {
    let operation = "snapshot names with kubectl"
    let taken = ClockOffset.wallClockMicros()
    var script = NodeReply.Script()
    script.prelude(
      command + " >\"$svct_r/snap\" 2>\"$svct_r/err\"; ks=$?\n"
        + "d=$(sha256sum <\"$svct_r/snap\" 2>/dev/null | cut -c1-64)", usesTemporaryDirectory: true)
    script.section("kubectl", "tail -c 2000 \"$svct_r/err\"; exit $ks")
    script.section("digest", "printf '%s' \"$d\"")
    // A digest is 64 hex digits; anything else never matches (and never reaches the shell).
    let previous = unlessDigest.flatMap { $0.count == 64 && $0.allSatisfy(\.isHexDigit) ? $0 : nil } ?? "none"
    script.binarySection("json", "[ -n \"$d\" ] && [ \"$d\" = \(previous) ] || cat \"$svct_r/snap\"")
    let (reply, _, _) = try await session.exchange(script, timeout: .seconds(120), operation: operation)
    guard let kubectl = reply.section("kubectl"), let json = reply.section("json") else {
      throw RemoteError(
        host: session.host, operation: operation, kind: .protocolError, message: "the reply lacks kubectl's output")
    }
    guard kubectl.status == 0 else {
      throw RemoteError(
        host: session.host, operation: operation, kind: .commandFailed,
        message: "exit status \(kubectl.status): \(kubectl.text.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    let digest = reply.section("digest").map(\.text).flatMap { $0.isEmpty ? nil : $0 }
    if json.body.isEmpty, digest != nil, digest == unlessDigest {
      return ("names unchanged", digest)
    }
    let summary = try await store.ingestSnapshot(
      json: Data(json.body), takenAtMicros: taken, source: "kubectl@\(session.host)")
    return ("snapshot: \(summary.services) services, \(summary.pods) pods, \(summary.endpoints) endpoints", digest)
  }
}

/// When `collect --every` and `trace --follow` take name snapshots: on one host, at most every
/// ``interval``, and the objects travel only when they changed (see ``Snapshot/take(session:store:unlessDigest:)``).
final class SnapshotSchedule: Sendable {
  let host: String
  let interval: Duration
  private let state = Mutex<(digest: String?, last: ContinuousClock.Instant?)>((nil, nil))

  init(host: String, interval: Duration = .seconds(30)) {
    self.host = host
    self.interval = interval
  }

  /// The digest to compare with when a snapshot is due on `host` now; `nil` when none is due.
  func due(on host: String) -> String?? {
    guard host == self.host else { return nil }
    return state.withLock { value -> String?? in
      if let last = value.last, ContinuousClock.now - last < interval { return nil }
      value.last = .now
      return .some(value.digest)
    }
  }

  func record(digest: String?) { state.withLock { $0.digest = digest } }
}

/// The same snapshot with a local kubectl (`--kubeconfig`), run through swift-subprocess.
enum LocalSnapshot {
  /// The most bytes of kubectl output accepted (a large cluster's snapshot is tens of MB).
  static let outputLimit = 1 << 30

  /// Runs the local kubectl and stores the result.
  ///
  /// kubectl's standard error goes to svctrace's, as before.
  /// - Throws: ``CommandFailure`` when kubectl cannot run, fails, or writes more than ``outputLimit`` bytes.
  static func take(store: any TraceStoring, kubeconfig: String) async throws {
    let operation = "snapshot names with the local kubectl"
    let taken = ClockOffset.wallClockMicros()
    let result: ExecutionResult<[UInt8], SequenceOutput, FileDescriptorOutput>
    do {
      result = try await Subprocess.run(
        .name("kubectl"),
        arguments: ["--kubeconfig", kubeconfig, "get", "services,endpointslices,pods", "-A", "-o", "json"],
        input: .none, output: .sequence, error: .currentStandardError
      ) { execution in
        var bytes: [UInt8] = []
        for try await buffer in execution.standardOutput {
          guard buffer.count <= outputLimit - bytes.count else {
            throw CommandFailure(operation: operation, reason: "its output is larger than \(outputLimit) bytes")
          }
          buffer.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return bytes
      }
    } catch let failure as CommandFailure {
      throw failure
    } catch {
      throw CommandFailure(operation: operation, reason: "cannot run kubectl: \(error)")
    }
    switch result.terminationStatus {
    case .exited(0): break
    case .exited(let status): throw CommandFailure(operation: operation, reason: "exit status \(status)")
    case .signaled(let signal): throw CommandFailure(operation: operation, reason: "killed by signal \(signal)")
    }
    try await store.ingestSnapshot(
      json: Data(result.closureResult), takenAtMicros: taken, source: "kubectl --kubeconfig \(kubeconfig)")
  }
}
