import ArgumentParser
import Fleet
import Foundation
import PostgresStore
import Store

/// `--store PATH|URL` for every command that reads or writes the store: a local SQLite file, or
/// a team store on PostgreSQL (`postgres://user@host:port/db?sslmode=…`).
struct StoreOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.",
      valueName: "path|url"))
  var store: String?

  /// The store path or URL in effect (a URL holds no password: one is refused).
  var path: String {
    store ?? TraceStore.defaultPath(environment: ProcessInfo.processInfo.environment)
  }

  /// Whether the store in effect is a PostgreSQL team store.
  var isPostgres: Bool { PostgresStoreLocation.isPostgresURL(path) }

  /// Opens (creating and migrating if needed) the store.
  /// - Throws: ``StoreError`` naming the store (never its password).
  func open() async throws -> any TraceStoring {
    try await Self.open(path)
  }

  /// Opens the store at `path` (a SQLite path or a `postgres://` URL).
  static func open(_ path: String) async throws -> any TraceStoring {
    guard PostgresStoreLocation.isPostgresURL(path) else { return try TraceStore(path: path) }
    let location = try PostgresStoreLocation(url: path)
    let password = PostgresPassword.resolve(for: location) { warning in
      Terminal.writeError("svctrace: warning: \(warning)\n")
    }
    return try await PostgresTraceStore.open(location, password: password)
  }
}

extension StoreOptions {
  /// Opens a store that must already exist (read commands: `trace`, `stats`, `prune`). A team
  /// store is opened as it is (its database exists; an empty one gets the schema).
  /// - Throws: ``StoreError`` naming the path when there is no store there yet (exit status 1).
  func openExisting() async throws -> any TraceStoring {
    guard isPostgres || FileManager.default.fileExists(atPath: path) else {
      throw StoreError(
        operation: "open the store \(path)",
        message: "there is no store there; run `svctrace collect` first, or give --store PATH / SVCTRACE_STORE")
    }
    return try await open()
  }
}
