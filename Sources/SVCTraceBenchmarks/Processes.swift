import ArgumentParser
import Foundation
import SVCTraceCore
import Subprocess
import SystemPackage

/// The `svctrace` executable the fleet benchmarks time: the one built next to `svctrace-bench`.
enum SVCTraceExecutable {
  /// This executable's path (`/proc/self/exe`).
  /// - Throws: `CocoaError` where `/proc` is not mounted.
  static func benchPath() throws -> String {
    try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
  }

  /// `svctrace` in the directory of `svctrace-bench` (SwiftPM builds both into `.build/<config>/`).
  /// - Throws: ``BenchmarkFailure`` when it is not there.
  static func path() throws -> String {
    let bench = try benchPath()
    let path = URL(fileURLWithPath: bench).deletingLastPathComponent().appendingPathComponent("svctrace").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw BenchmarkFailure(
        "No svctrace executable next to \(bench); build it first (swift build -c release --product svctrace).")
    }
    return path
  }
}

/// A finished child process: wall time, exit status, peak memory and where its output went.
struct SpawnResult: Codable {
  var seconds: Double
  /// The exit code, or 128 + the signal number for a process killed by a signal.
  var status: Int32
  /// `ru_maxrss` of the child: the largest resident set of it or any of its waited-for descendants.
  var maxRSSKilobytes: Int
  var log: String

  /// The last lines of the log, for error messages.
  var tail: String {
    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(15).joined(separator: "\n")
  }
}

/// Runs a timed side of a benchmark and reports its own peak memory.
///
/// A process learns the peak memory of its children only as the largest over all the children it
/// waited for (`RUSAGE_CHILDREN`), so each side runs under a fresh `svctrace-bench run-measured`
/// whose only child it is; that process times the child and reports the figures.
enum Spawn {
  /// Runs `executable` with stdin from /dev/null and stdout+stderr into `log`; waits for it
  /// without blocking a thread.
  /// - Throws: ``BenchmarkFailure`` when the process cannot be started.
  static func run(_ executable: String, _ arguments: [String], log: String, environment: [String: String] = [:])
    async throws -> SpawnResult
  {
    let bench = try SVCTraceExecutable.benchPath()
    var updates: [Environment.Key: String?] = [:]
    for (name, value) in environment {
      guard let key = Environment.Key(rawValue: name) else { throw BenchmarkFailure("Bad environment name \(name).") }
      updates[key] = value
    }
    let result = try await Subprocess.run(
      .path(FilePath(bench)), arguments: Arguments(["run-measured", "--log", log, "--", executable] + arguments),
      environment: .inherit.updating(updates), output: .string(limit: 1 << 16), error: .string(limit: 1 << 16))
    guard result.terminationStatus.isSuccess,
      let measured = try? JSONDecoder().decode(SpawnResult.self, from: Data(result.standardOutput.utf8))
    else {
      throw BenchmarkFailure(
        "Cannot run \(executable) (\(result.terminationStatus)): \(result.standardError)")
    }
    return measured
  }
}

/// `svctrace-bench run-measured --log FILE -- EXECUTABLE [ARGUMENT…]` (hidden): runs one command
/// with stdin from /dev/null and stdout+stderr into FILE, then prints its wall time, exit status
/// and peak memory as one JSON object. ``Spawn`` runs each timed side under it.
struct RunMeasured: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run-measured",
    abstract: "Run one command and print its wall time, exit status and peak memory as JSON.",
    shouldDisplay: false)

  @Option(help: ArgumentHelp("Where the command's stdout and stderr go.", valueName: "file"))
  var log: String

  @Argument(parsing: .postTerminator, help: "The executable (a path) and its arguments.")
  var command: [String]

  func validate() throws {
    guard let executable = command.first, executable.hasPrefix("/") else {
      throw ValidationError("Give the command after --, starting with an absolute path.")
    }
  }

  func run() async throws {
    let output: FileDescriptor
    do {
      output = try FileDescriptor.open(
        FilePath(log), .writeOnly, options: [.create, .truncate],
        permissions: [.ownerReadWrite, .groupRead, .otherRead])
    } catch {
      throw BenchmarkFailure("Cannot create \(log): \(error)")
    }
    let clock = ContinuousClock()
    let start = clock.now
    let result = try await Subprocess.run(
      .path(FilePath(command[0])), arguments: Arguments(Array(command.dropFirst())), input: .none,
      output: .fileDescriptor(output, closeAfterSpawningProcess: true), error: .combinedWithOutput)
    let seconds = (clock.now - start).seconds
    let status: Int32
    switch result.terminationStatus {
    case .exited(let code): status = code
    case .signaled(let signal): status = 128 + signal
    }
    let measured = SpawnResult(
      seconds: seconds, status: status, maxRSSKilobytes: ResourceUsage.childrenPeakRSSKiB(), log: log)
    print(String(decoding: try JSONEncoder().encode(measured), as: UTF8.self))
  }
}
