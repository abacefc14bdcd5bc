import ArgumentParser
import Fleet
import Foundation
import Store
import Testing

@testable import SVCTraceCommands

/// `svctrace` exits 2 for usage errors, 1 for runtime failures, 130 when interrupted.
@Suite struct ExitStatusTests {
  @Test func usageErrorsExit2() throws {
    #expect(Main.exitStatus(for: ValidationError("bad flag")) == 2)
    // An unknown option, and a value `validate()` rejects, both as the command line is parsed.
    let unknown = #expect(throws: (any Error).self) { try SVCTrace.parseAsRoot(["trace", "--no-such-flag"]) }
    #expect(unknown.map(Main.exitStatus(for:)) == 2)
    let rejected = #expect(throws: (any Error).self) { try SVCTrace.parseAsRoot(["trace", "--max", "0"]) }
    #expect(rejected.map(Main.exitStatus(for:)) == 2)
  }

  @Test func missingInventoryFileExits2() throws {
    let options = try FleetOptions.parse(["-i", "/nonexistent/svctrace-inventory-\(UUID().uuidString).ini"])
    let error = #expect(throws: (any Error).self) {
      _ = try FleetContext.make(options, label: "test", environment: [:])
    }
    #expect(error.map(Main.exitStatus(for:)) == 2)
  }

  @Test func runtimeFailuresExit1() async throws {
    #expect(Main.exitStatus(for: CommandFailure(operation: "write the report to x", reason: "disk full")) == 1)
    #expect(Main.exitStatus(for: ExitCode.failure) == 1)
    // A store that is not there is a runtime failure, not a usage error.
    let options = try StoreOptions.parse(["--store", "/nonexistent/svctrace-\(UUID().uuidString).sqlite"])
    let error = await #expect(throws: StoreError.self) { _ = try await options.openExisting() }
    #expect(error.map(Main.exitStatus(for:)) == 1)
  }

  @Test func failingLocalKubectlIsARuntimeFailure() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-exit-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try TraceStore(path: directory.appendingPathComponent("store.sqlite").path)
    // A kubeconfig that does not exist: kubectl fails (or is not installed) before any network use.
    let missing = directory.appendingPathComponent("no-such-kubeconfig").path
    let error = await #expect(throws: CommandFailure.self) {
      try await LocalSnapshot.take(store: store, kubeconfig: missing)
    }
    #expect(error?.operation == "snapshot names with the local kubectl")
    #expect(error.map(Main.exitStatus(for:)) == 1)
  }

  @Test func interruptedRunsExit130() {
    #expect(Main.exitStatus(for: InterruptedExit(value: 3)) == 130)
    #expect(Main.exitStatus(for: InterruptedExit(value: ["a"])) == 130)
    #expect(Main.exitStatus(for: ExitCode(130)) == 130)
  }

  @Test func cleanExitsExit0() {
    // What `--version` throws.
    #expect(Main.exitStatus(for: CleanExit.message("0.1.0")) == 0)
  }

  @Test func maxFlagKeepsItsName() throws {
    let command = try SVCTrace.parseAsRoot(["trace", "--max", "5"])
    let trace = try #require(command as? SVCTrace.Trace)
    #expect(trace.maxConnections == 5)
  }
}
