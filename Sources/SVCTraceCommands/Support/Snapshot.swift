import Foundation
import SVCTraceCore
import Store
import Subprocess

/// Kubernetes name snapshots: `kubectl get services,endpointslices,pods -A -o json`, stored with
/// the time they were taken so old connections resolve to the pod that had the IP then.
enum Snapshot {
  static let command = "kubectl get services,endpointslices,pods -A -o json"

  /// Runs kubectl on a control-plane node and stores the result.
  static func take(session: any RemoteSession, store: any TraceStoring) async throws -> String {
    let taken = ClockOffset.wallClockMicros()
    let result = try await session.check(command, timeout: .seconds(120), operation: "snapshot names with kubectl")
    let summary = try await store.ingestSnapshot(
      json: Data(result.stdout), takenAtMicros: taken, source: "kubectl@\(session.host)")
    return "snapshot: \(summary.services) services, \(summary.pods) pods, \(summary.endpoints) endpoints"
  }
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
