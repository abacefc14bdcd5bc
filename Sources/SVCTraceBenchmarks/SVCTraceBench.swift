public import ArgumentParser
import SVCTraceCommands

/// `svctrace-bench …`: performance figures, each next to a baseline run in the same invocation.
public struct SVCTraceBench: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "svctrace-bench",
    abstract: "Measure svctrace against a baseline in the same run and print the figures.",
    discussion: """
      Each benchmark runs svctrace and a reference on the same input, in the \
      same invocation, and prints wall times, throughput, peak memory and the \
      ratio. ping and install run the svctrace executable next to this one. \
      Build both in release mode for meaningful numbers:
        swift build -c release && .build/release/svctrace-bench …

      Examples (LAB=/var/lib/svctrace-lab, the testbed's state directory):
        svctrace-bench ping -i $LAB/inventory.ini --known-hosts $LAB/known_hosts
        svctrace-bench install -i $LAB/inventory-sudo.ini --known-hosts $LAB/known_hosts
        svctrace-bench fleet -i $LAB/inventory.ini --known-hosts $LAB/known_hosts   # testbed/lab up 100
        svctrace-bench ingest --lines 2000000
        svctrace-bench trace --records 10000000
        sudo svctrace-bench refresh --services 5000      # root: a scratch network namespace

      Exit status: 0 success, 1 a run or a check failed, 2 usage error.
      """,
    version: "0.1.0",
    subcommands: [
      BenchPing.self, BenchInstall.self, BenchFleet.self, BenchIngest.self, BenchTrace.self, BenchRefresh.self,
      RunMeasured.self,
    ])

  public init() {}
}

/// What the `svctrace-bench` executable calls.
public enum BenchMain {
  /// Parses, runs, and exits with svctrace's exit codes (usage errors exit 2).
  public static func run() async {
    await Main.run(SVCTraceBench.self)
  }
}

/// A benchmark that could not complete: a side failed, a tool could not be set up.
struct BenchmarkFailure: Error, CustomStringConvertible {
  /// What failed, and where to look.
  var description: String

  init(_ description: String) { self.description = description }
}
