import ArgumentParser
import Fleet
import Foundation
import SVCTraceCore
import Synchronization

/// Printing results: a recap for people, one JSON document for scripts, and exit codes.
package enum Output {
  /// Encodes `value` as pretty, key-sorted JSON with ISO 8601 dates.
  package static func json<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }

  /// Encodes `value` as one line of key-sorted JSON, newline included (JSON lines).
  package static func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
  }

  /// `value` with three decimals below 10 and one from 10 on (`0.042`, `12.5`): seconds,
  /// milliseconds and ratios in one-line reports.
  package static func decimal(_ value: Double) -> String {
    String(format: value < 10 ? "%.3f" : "%.1f", value)
  }

  /// Prints per-host results (recap or JSON) and turns failures into the exit code.
  ///
  /// Exit codes: 0 every host ok/changed; 1 any host failed, unreachable or skipped; 130 interrupted.
  ///
  /// - Parameter summary: a last line for people after the recap, and lines lost for the JSON
  ///   document (`collect`'s loss summary).
  static func finish<P: Encodable & Sendable>(
    _ results: [HostResult<P>], json: Bool, terminal: Terminal, command: String, interrupted: Bool = false,
    summary: (([HostResult<P>]) -> FleetSummary?)? = nil
  ) throws {
    let recap = Recap(results: results, terminal: terminal)
    let extra = summary?(results)
    if json {
      let totals = Dictionary(uniqueKeysWithValues: recap.totals.map { ($0.key.rawValue, $0.value) })
      print(
        try Output.json(
          FleetDocument(
            command: command, ok: recap.allSucceeded, totals: totals, linesLost: extra?.linesLost, hosts: results)))
    } else {
      print(recap.render())
      if let extra { print(terminal.paint(extra.text, extra.alarming ? .bold : .dim)) }
    }
    if interrupted { throw ExitCode(130) }
    if !recap.allSucceeded { throw ExitCode.failure }
  }
}

/// The `--json` document of a fleet command.
struct FleetDocument<P: Encodable & Sendable>: Encodable {
  var command: String
  var ok: Bool
  var totals: [String: Int]
  /// `collect`: lines lost on all nodes in the intervals this run settled (absent elsewhere).
  var linesLost: Int64?
  var hosts: [HostResult<P>]
}

/// A fleet command's closing line (`collect`: the lines lost).
struct FleetSummary {
  var text: String
  /// Printed in bold (something was lost) rather than dim.
  var alarming: Bool
  var linesLost: Int64?
}

/// Runs a fan-out under Ctrl-C handling and prints its results; the shared tail of every fleet command.
func runFleet<P: Encodable & Sendable>(
  _ context: FleetContext, json: Bool, command: String,
  summary: (([HostResult<P>]) -> FleetSummary?)? = nil,
  _ operation: @escaping @Sendable (any RemoteSession, FleetHost) async throws -> HostOutcome<P>
) async throws {
  let runner = context.runner
  let hosts = context.hosts
  let connector = context.connector
  do {
    let results = try await withInterruptCancellation {
      await runner.run(hosts, connector: connector, operation: operation)
    }
    try Output.finish(results, json: json, terminal: context.terminal, command: command, summary: summary)
  } catch let interrupted as InterruptedExit<[HostResult<P>]> {
    let results = interrupted.value
    try Output.finish(
      results, json: json, terminal: context.terminal, command: command, interrupted: true, summary: summary)
  }
}

/// Serializes whole blocks of standard output across concurrent host tasks (exec, install).
enum OutputLock {
  private static let lock = Mutex(())
  static func print(_ text: String) { lock.withLock { _ in Swift.print(text, terminator: "") } }
}
