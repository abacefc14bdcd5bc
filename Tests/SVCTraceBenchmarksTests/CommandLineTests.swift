import ArgumentParser
import SVCTraceBenchmarks
import SVCTraceCommands
import Testing

/// The benchmarks are svctrace-bench's subcommands, and none of svctrace's.
@Suite("svctrace-bench command line")
struct CommandLineTests {
  @Test func svctraceListsNoBenchmark() {
    let help = SVCTrace.helpMessage(columns: 200)
    #expect(help.contains("collect") && help.contains("trace"))
    #expect(!help.lowercased().contains("bench"))
    #expect(throws: (any Error).self) { try SVCTrace.parseAsRoot(["bench", "ingest"]) }
  }

  @Test func benchListsItsBenchmarks() throws {
    let help = SVCTraceBench.helpMessage(columns: 200)
    for name in ["ping", "install", "fleet", "ingest", "trace", "refresh"] { #expect(help.contains("  \(name) ")) }
    #expect(!help.contains("run-measured"), "the helper is hidden")
    _ = try SVCTraceBench.parseAsRoot(["ingest", "--lines", "20000", "--runs", "1"])
    _ = try SVCTraceBench.parseAsRoot(["trace", "--records", "20000", "--json"])
    _ = try SVCTraceBench.parseAsRoot(["refresh", "--services", "100", "--rounds", "1", "--backend", "iptables-legacy"])
  }

  @Test func usageErrorsAreValidationErrors() {
    for arguments in [
      ["trace", "--records", "10"], ["ingest", "--runs", "0"], ["install", "--rounds", "0"],
      ["refresh", "--services", "0"], ["refresh", "--services", "50001"], ["refresh", "--backend", "nftables"],
    ] {
      #expect(
        SVCTraceBench.exitCode(for: catchError { try SVCTraceBench.parseAsRoot(arguments) }) == .validationFailure)
    }
  }

  private func catchError(_ body: () throws -> Any) -> any Error {
    do {
      _ = try body()
      return CancellationError()
    } catch {
      return error
    }
  }
}
