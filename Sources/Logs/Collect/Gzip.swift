import Foundation

/// Local gzip decompression by running the system's `gzip -dc`.
///
/// Foundation on Linux has no gzip API; shelling out to `gzip` (present on every Debian system,
/// and already required on the nodes) avoids a C module for zlib. The compressed bytes go
/// through a temporary file so that no pipe can deadlock.
enum Gzip {
  /// Why decompression failed.
  struct Failure: Error, CustomStringConvertible {
    var message: String
    var description: String { "gzip -dc failed: \(message)" }
  }

  /// `true` when `bytes` start with the gzip magic number.
  static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
    var iterator = bytes.makeIterator()
    return iterator.next() == 0x1F && iterator.next() == 0x8B
  }

  /// Decompresses a gzip stream held in memory.
  static func decompress(_ compressed: [UInt8]) throws -> [UInt8] {
    let directory = FileManager.default.temporaryDirectory
    let input = directory.appendingPathComponent("svctrace-gunzip-\(UUID().uuidString).gz")
    guard FileManager.default.createFile(atPath: input.path, contents: Data(compressed)) else {
      throw Failure(message: "cannot write a temporary file in \(directory.path)")
    }
    defer { try? FileManager.default.removeItem(at: input) }
    return try decompress(fileAt: input.path)
  }

  /// Decompresses a local gzip file.
  static func decompress(fileAt path: String) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-dc", "--", path]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw Failure(message: "cannot start gzip: \(error)")
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw Failure(message: "exit status \(process.terminationStatus) (not gzip data, or truncated)")
    }
    return [UInt8](data)
  }
}
