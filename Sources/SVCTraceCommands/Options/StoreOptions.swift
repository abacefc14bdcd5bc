import ArgumentParser
import Foundation
import Store

/// `--store PATH` for every command that reads or writes the local store.
struct StoreOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "The local store (SQLite). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.",
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
