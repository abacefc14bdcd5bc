import Foundation
import Testing

@testable import Logs

/// `Gzip` runs the system's `gzip -dc` through swift-subprocess, with a bound on the output.
@Suite struct GzipTests {
  /// 300 kB of log-like text: more than a pipe buffer each way, so input and output must flow together.
  static let text: [UInt8] = Array(
    (0..<4000).map { "line \($0): IN=eth0 OUT= SRC=10.0.0.\($0 % 250) DST=10.96.0.10 LEN=60 PROTO=TCP\n" }
      .joined().utf8)

  @Test func decompressesBytesInMemory() async throws {
    let compressed = Self.gzipStored(Self.text)
    #expect(Gzip.isGzip(compressed))
    #expect(try await Gzip.decompress(compressed) == Self.text)
  }

  @Test func decompressesAFile() async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("svct-gzip-\(UUID().uuidString).gz").path
    #expect(FileManager.default.createFile(atPath: path, contents: Data(Self.gzipStored(Self.text))))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(try await Gzip.decompress(fileAt: path) == Self.text)
  }

  @Test func outputBeyondTheLimitThrows() async throws {
    let compressed = Self.gzipStored(Self.text)
    let limit = Self.text.count - 1
    await #expect(throws: Gzip.Failure.outputTooLarge(limit: limit)) {
      _ = try await Gzip.decompress(compressed, limit: limit)
    }
    #expect(try await Gzip.decompress(compressed, limit: Self.text.count) == Self.text)
  }

  @Test func notGzipDataFailsWithGzipsMessage() async throws {
    let error = await #expect(throws: Gzip.Failure.self) {
      _ = try await Gzip.decompress(Array("plain text, not gzip\n".utf8))
    }
    guard case .failed(let status, let message) = error else {
      Issue.record("expected .failed, got \(String(describing: error))")
      return
    }
    #expect(status == "exited(1)")
    #expect(message.contains("not in gzip format"))
  }

  /// gzip stops reading at the first bytes that are not gzip; svctrace must not die of SIGPIPE
  /// (it would if the rest went into gzip's stdin pipe).
  @Test func largeNonGzipInputFailsWithoutKillingTheCaller() async throws {
    let big = [UInt8](repeating: 0x41, count: 8 << 20)
    for _ in 0..<3 {
      let error = await #expect(throws: Gzip.Failure.self) { _ = try await Gzip.decompress(big) }
      #expect(error?.description.contains("not in gzip format") == true)
    }
  }

  @Test func truncatedStreamFails() async throws {
    let compressed = Self.gzipStored(Self.text)
    let error = await #expect(throws: Gzip.Failure.self) {
      _ = try await Gzip.decompress(Array(compressed.prefix(compressed.count / 2)))
    }
    #expect(error?.description.hasPrefix("gzip -dc failed: exited(") == true)
  }

  @Test func missingFileFails() async throws {
    await #expect(throws: Gzip.Failure.self) {
      _ = try await Gzip.decompress(fileAt: "/nonexistent/svct-\(UUID().uuidString).gz")
    }
  }

  // MARK: - A gzip writer with stored (uncompressed) deflate blocks, RFC 1951 §3.2.4 / RFC 1952

  static func gzipStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]
    var start = 0
    repeat {
      let end = min(start + 65_535, data.count)
      let length = UInt16(end - start)
      out.append(end == data.count ? 1 : 0)
      out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
      out += data[start..<end]
      start = end
    } while start < data.count
    out += littleEndian(crc32(data))
    out += littleEndian(UInt32(truncatingIfNeeded: data.count))
    return out
  }

  static func littleEndian(_ value: UInt32) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
  }

  static func crc32(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
  }
}
