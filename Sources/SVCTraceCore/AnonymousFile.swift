import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Unlinked temporary files, used as the standard input of a local process.
///
/// A process reads its input from such a file rather than from a pipe: writing into a pipe whose
/// reader exited early (gzip on data that is not gzip, a command that ignores its input) raises
/// SIGPIPE in the writer, and the writer is svctrace.
public enum AnonymousFile {
  /// Why the file could not be made.
  public struct Failure: Error, Sendable, CustomStringConvertible {
    /// What failed: `create`, `write` or `rewind`.
    public var step: String
    /// `errno` at the failure.
    public var errno: Int32
    public var description: String { "cannot \(step) a temporary file: \(String(cString: strerror(errno)))" }
  }

  /// A descriptor (close-on-exec, at offset 0) of an unlinked temporary file holding `bytes`; the
  /// caller closes it.
  /// - Throws: ``Failure`` with the step and `errno`.
  public static func containing(_ bytes: [UInt8]) throws(Failure) -> Int32 {
    var template = Array((FileManager.default.temporaryDirectory.path + "/svctrace-input-XXXXXX").utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
    guard descriptor >= 0 else { throw Failure(step: "create", errno: errno) }
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    unlink(String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    var written = 0
    while written < bytes.count {
      let count = bytes.withUnsafeBytes { buffer in
        write(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written)
      }
      if count < 0, errno == EINTR { continue }
      guard count > 0 else {
        let failure = Failure(step: "write", errno: errno)
        close(descriptor)
        throw failure
      }
      written += count
    }
    guard lseek(descriptor, 0, SEEK_SET) == 0 else {
      let failure = Failure(step: "rewind", errno: errno)
      close(descriptor)
      throw failure
    }
    return descriptor
  }
}
