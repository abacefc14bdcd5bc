import ArgumentParser
import Foundation
import SVCTraceCore
import Store

/// Kubernetes name snapshots: `kubectl get services,endpointslices,pods -A -o json`, stored with
/// the time they were taken so old connections resolve to the pod that had the IP then.
enum Snapshot {
  static let command = "kubectl get services,endpointslices,pods -A -o json"

  /// Runs kubectl on a control-plane node and stores the result.
  static func take(session: any RemoteSession, store: TraceStore) async throws -> String {
    let taken = ClockOffset.wallClockMicros()
    let result = try await session.check(command, timeout: .seconds(120), operation: "snapshot names with kubectl")
    let summary = try store.ingestSnapshot(
      json: Data(result.stdout), takenAtMicros: taken, source: "kubectl@\(session.host)")
    return "snapshot: \(summary.services) services, \(summary.pods) pods, \(summary.endpoints) endpoints"
  }
}

/// The same snapshot with a local kubectl (`--kubeconfig`).
enum LocalSnapshot {
  static func take(store: TraceStore, kubeconfig: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "kubectl", "--kubeconfig", kubeconfig, "get", "services,endpointslices,pods", "-A", "-o", "json",
    ]
    let output = Pipe()
    process.standardOutput = output
    let taken = ClockOffset.wallClockMicros()
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw ValidationError("Unable to snapshot names with the local kubectl: exit status \(process.terminationStatus)")
    }
    try store.ingestSnapshot(json: data, takenAtMicros: taken, source: "kubectl --kubeconfig \(kubeconfig)")
  }
}
