import ArgumentParser
import Foundation
import Store

/// `--store PATH` for every command that reads or writes the local store.
struct StoreOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "The local store (SQLite, raw log lines in PATH.raw/ beside it). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.",
      valueName: "path"))
  var store: String?

  /// The store path in effect.
  var path: String {
    store ?? TraceStore.defaultPath(environment: ProcessInfo.processInfo.environment)
  }

  /// Opens (creating and migrating if needed) the store.
  func open() throws -> TraceStore {
    try TraceStore(path: path)
  }
}

extension StoreOptions {
  /// Opens a store that must already exist (read commands: `trace`, `stats`, `prune`).
  /// - Throws: ``StoreError`` naming the path when there is no store there yet (exit status 1).
  func openExisting() throws -> TraceStore {
    guard FileManager.default.fileExists(atPath: path) else {
      throw StoreError(
        operation: "open the store \(path)",
        message: "there is no store there; run `svctrace collect` first, or give --store PATH / SVCTRACE_STORE")
    }
    return try open()
  }
}
