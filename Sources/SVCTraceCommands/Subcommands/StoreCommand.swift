import ArgumentParser
import Fleet
import Foundation
import Logs
import PostgresStore
import Store

extension SVCTrace {
  /// `svctrace store`: whole-store operations.
  struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "store", abstract: "Whole-store operations: copy a local store into a team store and back.",
      subcommands: [Copy.self])
  }
}

extension SVCTrace.StoreCommand {
  /// `svctrace store copy --from A --to B`.
  struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Copy every node's batches, lines, connections and name snapshots from one store into another.",
      discussion: """
        Either store is a SQLite path or a postgres:// URL (password from PGPASSWORD or \
        ~/.pgpass). Copying again copies nothing twice: node sources already copied are \
        skipped, an interrupted copy goes on where it stopped, and a source the destination \
        collected itself is reported and left alone (exit status 1).

        Examples:
          svctrace store copy --from ~/.local/share/svctrace/svctrace.sqlite \\
            --to 'postgres://collector@db.example:5432/svctrace?sslmode=verify-full'
          svctrace store copy --from postgres://reader@db/svctrace --to /tmp/incident.sqlite --json

        Exit status: 0 when everything is in the destination, 1 on a failure or a conflicting \
        source, 2 on usage errors.
        """)

    @Option(help: ArgumentHelp("The store to read: a SQLite path or a postgres:// URL.", valueName: "path|url"))
    var from: String

    @Option(help: ArgumentHelp("The store to write (created if needed).", valueName: "path|url"))
    var to: String

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
      guard from != to else { throw ValidationError("--from and --to name the same store.") }
    }

    func run() async throws {
      if !PostgresStoreLocation.isPostgresURL(from), !FileManager.default.fileExists(atPath: from) {
        throw StoreError(operation: "open the store \(from)", message: "there is no store there")
      }
      guard let origin = try await StoreOptions.open(from) as? any StoreExporting,
        let destination = try await StoreOptions.open(to) as? any StoreExporting
      else {
        throw StoreError(operation: "copy \(from) to \(to)", message: "one of the stores cannot be copied")
      }
      let terminal = Terminal.current(environment: ProcessInfo.processInfo.environment)
      let showProgress = terminal.stderrIsTTY && !json
      let summary = try await StoreCopier.copy(
        from: origin, to: destination,
        progress: { running in
          if showProgress {
            Terminal.writeError(
              "\r\u{1B}[Kcopying: \(running.batches) batches, \(running.lines) lines, \(running.connections) connections, \(running.snapshots) snapshots"
            )
          }
        })
      if showProgress { Terminal.writeError("\r\u{1B}[K") }
      if json {
        print(try Output.json(StoreCopyDocument(from: from, to: to, copied: summary)))
      } else {
        print(
          "Copied \(from) to \(to): \(summary.copiedSources) node sources (\(summary.batches) batches, \(summary.lines) lines, \(summary.connections) connections), \(summary.snapshots) snapshots, \(summary.lossIntervals) loss intervals; \(summary.upToDateSources) already there."
        )
        for conflict in summary.conflictingSources {
          Terminal.writeError("\(conflict): the destination has other data for it; not copied.\n")
        }
      }
      if !summary.conflictingSources.isEmpty { throw ExitCode.failure }
    }
  }
}

/// `store copy --json`.
struct StoreCopyDocument: Encodable {
  var from: String
  var to: String
  var copied: StoreCopySummary
}
