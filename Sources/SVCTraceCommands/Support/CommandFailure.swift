/// A runtime failure of a command that names no host: a local tool that failed, a report that
/// could not be written.
///
/// Its description reads `Unable to <operation>: <reason>`. `svctrace` exits 1 for it; usage
/// errors (`ValidationError`) exit 2.
struct CommandFailure: Error, Equatable, CustomStringConvertible {
  /// What the command was doing, as a verb phrase (`write the report to out.html`).
  var operation: String
  /// Why it failed.
  var reason: String

  var description: String { "Unable to \(operation): \(reason)" }
}
