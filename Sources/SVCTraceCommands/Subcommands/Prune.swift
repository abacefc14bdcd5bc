import ArgumentParser
import Foundation
import SVCTraceCore
import Store

extension SVCTrace {
  /// `svctrace prune`: drop old records from the local store.
  struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Delete connections, raw lines, batches and name snapshots older than a given age.",
      discussion: """
        Keeps pending pre-DNAT lines (their post line may still arrive), the newest name snapshot, \
        and name rows still valid at the cutoff so newer connections keep resolving.

        Examples:
          svctrace prune --older-than 7d
          svctrace prune --older-than 2026-05-01T00:00:00Z --store /srv/svctrace.sqlite --json

        Exit status: 0 on success, 1 when the store cannot be changed, 2 on usage errors.
        """)

    @Option(
      help: ArgumentHelp("A duration (7d, 12h) or an RFC 3339 time: delete what is older.", valueName: "age|time"))
    var olderThan: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @OptionGroup(title: "Store") var storeOptions: StoreOptions

    func validate() throws {
      _ = try TraceArguments.time(olderThan, nowMicros: 0)
    }

    func run() async throws {
      let store = try await storeOptions.openExisting()
      let cutoff = try TraceArguments.time(olderThan, nowMicros: ClockOffset.wallClockMicros())
      let summary = try await store.prune(olderThan: cutoff)
      if json {
        print(
          try Output.json(
            PruneDocument(store: storeOptions.path, cutoff: TimeFormat.rfc3339(micros: cutoff), removed: summary)))
      } else {
        print("Pruned \(storeOptions.path) before \(TimeFormat.rfc3339(micros: cutoff)):")
        print("  \(summary.connections) connections, \(summary.lines) raw lines, \(summary.batches) batches,")
        print("  \(summary.snapshots) name snapshots, \(summary.names) name rows")
      }
    }
  }
}

/// `prune --json`.
struct PruneDocument: Encodable {
  var store: String
  var cutoff: String
  var removed: TraceStore.PruneSummary
}
