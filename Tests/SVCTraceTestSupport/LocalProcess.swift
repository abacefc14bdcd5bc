import Foundation
public import SVCTraceCore
import Subprocess
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Local processes for tests, run through swift-subprocess: asynchronous, so no thread of the
/// cooperative pool blocks in `waitpid`, and the child starts with a clean signal mask and
/// default signal dispositions (the test runner blocks signals in its threads). Standard input
/// comes from an unlinked temporary file, not a pipe: writing into a pipe whose reader exited
/// would kill the test process with SIGPIPE.
public enum LocalProcess {
  /// Why a process could not be run, or produced more output than allowed.
  public struct Failure: Error, CustomStringConvertible {
    public var command: [String]
    public var message: String
    public var description: String { "Unable to run \(command.joined(separator: " ")): \(message)" }
  }

  /// The default bound on each of stdout and stderr.
  public static let defaultOutputLimit = 256 << 20

  /// Runs `arguments` (the first one looked up in `PATH`, or a path) and collects its output.
  ///
  /// - Parameters:
  ///   - stdin: bytes written to standard input, which is then closed; `nil` gives an empty input.
  ///   - environment: variables set on top of this process's environment.
  ///   - outputLimit: the most bytes accepted on each of stdout and stderr.
  /// - Returns: the exit status (or `-1` and the signal number as `exitSignal` when killed) and the output.
  /// - Throws: ``Failure`` when the process cannot be started or writes more than `outputLimit`.
  public static func run(
    _ arguments: [String], stdin: [UInt8]? = nil, environment: [String: String] = [:],
    outputLimit: Int = defaultOutputLimit
  ) async throws -> CommandResult {
    // `env` runs the command by name or by path, as `/usr/bin/env` did for `Process`.
    var overrides: [Environment.Key: String?] = [:]
    for (key, value) in environment { overrides[Environment.Key(stringLiteral: key)] = value }
    do {
      let descriptor = try AnonymousFile.containing(stdin ?? [])
      defer { close(descriptor) }
      let result = try await Subprocess.run(
        .name("env"), arguments: Arguments(arguments), environment: .inherit.updating(overrides),
        input: .fileDescriptor(FileDescriptor(rawValue: descriptor), closeAfterSpawningProcess: false),
        output: .sequence, error: .sequence
      ) { execution in
        async let errorBytes = collect(execution.standardError, limit: outputLimit)
        let outputBytes = try await collect(execution.standardOutput, limit: outputLimit)
        return (outputBytes, try await errorBytes)
      }
      let (stdout, stderr) = result.closureResult
      switch result.terminationStatus {
      case .exited(let status):
        return CommandResult(exitStatus: status, stdout: stdout, stderr: stderr)
      case .signaled(let signal):
        return CommandResult(exitStatus: -1, exitSignal: "\(signal)", stdout: stdout, stderr: stderr)
      }
    } catch let failure as Failure {
      throw Failure(command: arguments, message: failure.message)
    } catch {
      throw Failure(command: arguments, message: "\(error)")
    }
  }

  /// Runs `command` with `/bin/sh -c`.
  public static func shell(
    _ command: String, stdin: [UInt8]? = nil, environment: [String: String] = [:]
  ) async throws -> CommandResult {
    try await run(["/bin/sh", "-c", command], stdin: stdin, environment: environment)
  }

  private static func collect(_ sequence: SubprocessOutputSequence, limit: Int) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    for try await buffer in sequence {
      guard buffer.count <= limit - bytes.count else {
        throw Failure(command: [], message: "more than \(limit) bytes of output")
      }
      buffer.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }
    return bytes
  }
}
