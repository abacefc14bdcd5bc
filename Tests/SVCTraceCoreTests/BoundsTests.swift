import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// A local `/bin/sh` session whose "network" loses the tail of every upload.
final class TruncatingSession: RemoteSession {
  let base = LocalShellSession(host: HostID("n1"))
  let dropped: Int
  init(dropping dropped: Int) { self.dropped = dropped }
  var host: HostID { base.host }
  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    try await base.run(command, stdin: stdin.map { Array($0.dropLast(dropped)) }, timeout: timeout)
  }
  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    try await ShellFiles.readFile(self, path, offset: offset, maxLength: maxLength)
  }
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    try await ShellFiles.writeFile(self, path, contents: contents, mode: mode)
  }
  func stat(_ path: String) async throws -> RemoteFileStat? { try await ShellFiles.stat(self, path) }
  func close() async {}
}

@Suite struct ShellFilesUploadTests {
  func scratchDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "svctrace-upload-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  @Test func aCutShortUploadLeavesTheOldFileAndNoTemporaryFile() async throws {
    let directory = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/conf"
    try Data("old contents\n".utf8).write(to: URL(fileURLWithPath: path))
    let error = await #expect(throws: RemoteError.self) {
      try await TruncatingSession(dropping: 10).writeFile(
        path, contents: Array(repeating: 65, count: 5000), mode: 0o644)
    }
    #expect(error?.kind == .file)
    #expect(error?.host == HostID("n1"))
    #expect(error?.message.contains("upload cut short: 4990 of 5000 bytes") == true)
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "old contents\n")
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["conf"])
  }

  @Test func aCompleteUploadReplacesTheFile() async throws {
    let directory = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/conf"
    try Data("old\n".utf8).write(to: URL(fileURLWithPath: path))
    let contents = Array("new contents\n".utf8)
    try await TruncatingSession(dropping: 0).writeFile(path, contents: contents, mode: 0o600)
    #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == contents)
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    #expect((attributes[.posixPermissions] as? Int) == 0o600)
    // An empty file is a complete upload too.
    try await TruncatingSession(dropping: 0).writeFile(path, contents: [], mode: 0o644)
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
  }
}

@Suite struct OutputLimitsTests {
  @Test func theDefaultImplementationRefusesOutputOverTheLimitNamingHostStreamAndLimit() async throws {
    let session = LocalShellSession(host: HostID("n2"))
    let error = await #expect(throws: RemoteError.self) {
      try await session.run(
        "head -c 5000 /dev/zero", stdin: nil, timeout: nil, limits: OutputLimits(stdout: 4096, stderr: 100))
    }
    #expect(error?.kind == .outputTooLarge)
    #expect(error?.host == HostID("n2"))
    #expect(error?.description.contains("more than 4 KiB to stdout") == true)
    let stderrError = await #expect(throws: RemoteError.self) {
      try await session.run(
        "head -c 101 /dev/zero >&2", stdin: nil, timeout: nil, limits: OutputLimits(stdout: 4096, stderr: 100))
    }
    #expect(stderrError?.description.contains("more than 100 bytes to stderr") == true)
    let fits = try await session.run(
      "head -c 4096 /dev/zero", stdin: nil, timeout: nil, limits: OutputLimits(stdout: 4096, stderr: 100))
    #expect(fits.stdout.count == 4096)
  }

  @Test func theStandardLimitsCoverWhatCallersPull() {
    // collect pulls at most 16 MiB per batch; SSHTests move 50 MB through stdout.
    #expect(OutputLimits.standard.stdout >= 50_000_000)
    #expect(OutputLimits.standard.stdout > 16 << 20)
    #expect(OutputLimits.describe(256 << 20) == "256 MiB")
    #expect(OutputLimits.describe(1536) == "1536 bytes")
  }
}
