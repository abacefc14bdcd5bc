import Foundation
import SVCTraceCore
import Subprocess
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Local gzip decompression by running the system's `gzip -dc` through swift-subprocess.
///
/// Foundation on Linux has no gzip API; running `gzip` (present on every Debian system, and
/// already required on the nodes) avoids a C module for zlib. gzip reads its input from a file
/// (bytes held in memory go to an unlinked temporary file first: writing them into a pipe would
/// raise SIGPIPE in svctrace whenever gzip exits before reading them all, e.g. on data that is not
/// gzip), and its output is read asynchronously, so no thread of the cooperative pool waits for
/// it. The output is bounded: a stream that inflates past the caller's limit stops gzip and
/// throws ``Failure/outputTooLarge(limit:)``.
enum Gzip {
  /// Why decompression failed.
  enum Failure: Error, Equatable, CustomStringConvertible {
    /// `gzip` could not be run: not installed, the spawn failed, or reading its output failed.
    case cannotRun(String)
    /// `gzip` ran and failed: not gzip data, or truncated. `message` is what it wrote to stderr.
    case failed(status: String, message: String)
    /// The decompressed stream is longer than the caller allowed.
    case outputTooLarge(limit: Int)

    var description: String {
      switch self {
      case .cannotRun(let reason):
        return "gzip -dc failed: cannot run gzip: \(reason)"
      case .failed(let status, let message):
        let detail = message.isEmpty ? "not gzip data, or truncated" : message
        return "gzip -dc failed: \(status) (\(detail))"
      case .outputTooLarge(let limit):
        return "gzip -dc failed: the decompressed data is larger than the limit of \(limit) bytes"
      }
    }
  }

  /// The bound used when a caller names none: 2 GiB, far above any rotated kernel log we pull.
  static let defaultOutputLimit = 1 << 31

  /// The most bytes of gzip's stderr kept for an error message.
  private static let stderrLimit = 16 * 1024

  /// `true` when `bytes` start with the gzip magic number.
  static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
    var iterator = bytes.makeIterator()
    return iterator.next() == 0x1F && iterator.next() == 0x8B
  }

  /// Decompresses a gzip stream held in memory.
  ///
  /// - Parameter limit: the most decompressed bytes accepted.
  /// - Throws: ``Failure``.
  static func decompress(_ compressed: [UInt8], limit: Int = defaultOutputLimit) async throws(Failure) -> [UInt8] {
    let descriptor: Int32
    do {
      descriptor = try AnonymousFile.containing(compressed)
    } catch {
      throw .cannotRun(error.description)
    }
    defer { close(descriptor) }
    return try await run(
      arguments: ["-dc"],
      input: .fileDescriptor(FileDescriptor(rawValue: descriptor), closeAfterSpawningProcess: false),
      limit: limit)
  }

  /// Decompresses a local gzip file.
  ///
  /// - Parameter limit: the most decompressed bytes accepted.
  /// - Throws: ``Failure``.
  static func decompress(fileAt path: String, limit: Int = defaultOutputLimit) async throws(Failure) -> [UInt8] {
    try await run(arguments: ["-dc", "--", path], input: .none, limit: limit)
  }

  private static func run(
    arguments: [String], input: some InputProtocol, limit: Int
  ) async throws(Failure) -> [UInt8] {
    let result: ExecutionResult<[UInt8], SequenceOutput, StringOutput<UTF8>>
    do {
      result = try await Subprocess.run(
        .name("gzip"), arguments: Arguments(arguments), input: input, output: .sequence,
        error: .string(limit: stderrLimit)
      ) { execution in
        var bytes: [UInt8] = []
        for try await buffer in execution.standardOutput {
          guard buffer.count <= limit - bytes.count else { throw Failure.outputTooLarge(limit: limit) }
          buffer.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return bytes
      }
    } catch let failure as Failure {
      throw failure
    } catch {
      throw .cannotRun("\(error)")
    }
    guard result.terminationStatus.isSuccess else {
      let message = result.standardError.trimmingSuffix(while: \.isWhitespace)
      throw .failed(status: "\(result.terminationStatus)", message: message)
    }
    return result.closureResult
  }
}

extension String {
  /// The string without its trailing characters that match `predicate`.
  fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
    var text = Substring(self)
    while let last = text.last, predicate(last) { text.removeLast() }
    return String(text)
  }
}
