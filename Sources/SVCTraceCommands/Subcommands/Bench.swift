import ArgumentParser

extension SVCTrace {
  /// `svctrace bench …`: performance figures, each next to a baseline run in the same invocation.
  struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Measure svctrace against a baseline in the same run and print the figures.",
      discussion: """
        Each benchmark runs svctrace and a reference on the same input, in the \
        same invocation, and prints wall times, throughput, peak memory and the \
        ratio. Build in release mode for meaningful numbers:
          swift build -c release && .build/release/svctrace bench …

        Examples (LAB=/var/lib/svctrace-lab, the testbed's state directory):
          svctrace bench ping -i $LAB/inventory.ini --known-hosts $LAB/known_hosts
          svctrace bench install -i $LAB/inventory-sudo.ini --known-hosts $LAB/known_hosts
          svctrace bench ingest --lines 2000000
          svctrace bench trace --records 10000000
        """,
      subcommands: [BenchPing.self, BenchInstall.self, BenchIngest.self, BenchTrace.self])
  }
}
