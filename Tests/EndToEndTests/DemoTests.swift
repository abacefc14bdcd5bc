import Foundation
import Testing

/// Runs the README's first quick-start command, `scripts/demo`, end to end.
///
/// The demo brings its own lab up and down, so this runs only when no lab is up: `scripts/test`
/// runs it as its last step, after taking its own lab down, with `SVCTRACE_DEMO_TEST=1`.
@Suite(
  .serialized,
  .enabled(
    if: ProcessInfo.processInfo.environment["SVCTRACE_DEMO_TEST"] == "1",
    "runs the whole demo with its own lab; scripts/test enables it (SVCTRACE_DEMO_TEST=1) once its lab is down"))
struct DemoTests {
  /// Whether the binary has `svctrace <name>` (the demo skips steps for subcommands not yet built).
  ///
  /// A `--help` without its SUBCOMMANDS list is a failure, not "no such subcommand": otherwise a
  /// change in the help's shape would silently skip every trace check below. In CI every
  /// subcommand the demo uses must exist.
  private func has(_ subcommand: String) async throws -> Bool {
    // `svctrace help X` exits 0 for an unknown X too, so read the SUBCOMMANDS list (the overview
    // above it names commands as well).
    let help = try await Lab.run(Lab.binary, ["--help"]).stdout
    guard let list = help.range(of: "\nSUBCOMMANDS:") else {
      Issue.record("`svctrace --help` has no SUBCOMMANDS list; cannot tell which demo steps must run:\n\(help)")
      return true
    }
    let present = help[list.upperBound...].split(separator: "\n").contains { $0.hasPrefix("  \(subcommand) ") }
    if Lab.environment["CI"] != nil {
      #expect(present, "CI is set but `svctrace --help` lists no `\(subcommand)` subcommand")
    }
    return present
  }

  @Test func demoRunsEveryStepAndEveryTraceMatchesItsGroundTruth() async throws {
    #expect(!Lab.isUp, "a lab is up in \(Lab.directory); the demo needs to bring up its own")
    let run = try await Lab.run(Lab.repository + "/scripts/demo", ["--no-build", "--binary", Lab.binary])
    let output = run.stdout
    print(output)
    #expect(run.status == 0, "scripts/demo exited \(run.status)\n\(run.stderr)")

    for headline in [
      "Ping every node", "Plan the rollout", "Install", "Send Service traffic", "Collect the node logs",
      "Remove svctrace from every node", "Take the lab down",
    ] {
      #expect(output.contains(headline), "no step '\(headline)' in the demo's output")
    }
    #expect(output.contains("demo finished in"), "the demo did not report success")
    #expect(!output.contains("✗"), "a check failed:\n\(output)")

    // Every step whose subcommand this build has must have run, not been skipped.
    for subcommand in ["verify", "trace", "stats"] {
      let present = try await has(subcommand)
      #expect(
        !present || !output.contains("SKIPPED: `svctrace \(subcommand)`"),
        "\(subcommand) exists but its step was skipped")
    }
    if try await has("trace") {
      for kind in ["pod-clusterip", "nodeport", "hairpin", "udp"] {
        #expect(output.contains("✓ \(kind): "), "no matching trace for the \(kind) connection")
      }
    }

    // The demo took its lab down again.
    #expect(!FileManager.default.fileExists(atPath: Lab.directory + "/cluster.json"), "the demo left its lab up")
    let namespaces = try await Lab.run("/usr/sbin/ip", ["netns", "list"]).stdout
    #expect(!namespaces.contains("svtlab-"), "lab namespaces left behind:\n\(namespaces)")
  }
}
