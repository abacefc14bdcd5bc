import Foundation
import LogGeneration
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite struct ShellQuoteTests {
  @Test(arguments: ["plain", "with space", "it's", "a;b", "$(touch /tmp/x)", "new\nline", "", "`id`", "\"dq\""])
  func roundTripsThroughRealShell(_ value: String) async throws {
    // Given a hostile value, when it is quoted and echoed by /bin/sh, then it comes back unchanged.
    let output = try await Shell.run(script: "printf %s " + ShellQuote.quote(value))
    #expect(output.stdout == Array(value.utf8))
  }

  @Test func combiningMarkAfterAQuoteCannotCloseTheWord() async throws {
    // Given the exploit of hardening issue #13: a quote that Swift sees as one Character with U+0301,
    let marker = try Shell.temporaryDirectory() + "/pwned"
    let value = "root'\u{301};touch \(marker);#"
    #expect(value.contains("'") == false, "Swift does not see the quote: that is the whole trap")
    // when it is quoted into a command line the way the become wrapper quotes the user,
    let quoted = try ShellQuote.quote(value)
    let output = try await Shell.run(script: "printf %s \(quoted)")
    // then sh reads it back byte for byte and nothing else runs.
    #expect(output.stdout == Array(value.utf8))
    #expect(!FileManager.default.fileExists(atPath: marker))
    // Every quote byte is escaped: the quoted word has exactly 2 + 3 × (quotes in the value) more.
    #expect(quoted.utf8.count == value.utf8.count + 2 + 3)
  }

  @Test func zeroWidthJoinerAfterAQuoteCannotCloseTheWord() async throws {
    let marker = try Shell.temporaryDirectory() + "/pwned"
    let value = "x'\u{200D};touch \(marker);#"
    let output = try await Shell.run(script: "printf %s \(try ShellQuote.quote(value))")
    #expect(output.stdout == Array(value.utf8))
    #expect(!FileManager.default.fileExists(atPath: marker))
  }

  @Test func nulIsRefusedWithItsOffset() {
    let error = #expect(throws: ShellQuoteError.self) { try ShellQuote.quote("ab\u{0}c") }
    #expect(error?.byteOffset == 2)
    #expect(throws: ShellQuoteError.self) { try ShellQuote.join(["ok", "\u{0}"]) }
  }

  @Test func safeWordsStayBareAndEmptyIsQuoted() throws {
    #expect(try ShellQuote.quote("/var/log/iptables.log") == "/var/log/iptables.log")
    #expect(try ShellQuote.quote("") == "''")
    #expect(try ShellQuote.quote("a'b") == #"'a'\''b'"#)
    #expect(try ShellQuote.join(["a b", "c"]) == "'a b' c")
  }

  /// Random Unicode words, thousands of them in two `/bin/sh` runs: each quoted word must come back
  /// byte for byte, once quoted directly and once quoted twice through `sh -c` (the become
  /// wrapper's layering), and nothing in them may run.
  @Test func randomWordsRoundTripThroughDash() async throws {
    let directory = try Shell.temporaryDirectory()
    var generator = SplitMix64(seed: 0x5EED_13)
    var words: [String] = []
    var refused = 0
    for _ in 0..<4000 {
      let word = HostileWords.make(using: &generator, marker: directory + "/pwned")
      do {
        _ = try ShellQuote.quote(word)
        words.append(word)
      } catch {
        // Quoting refuses a word only for a NUL byte, and says where it is.
        let nul = Array(word.utf8).firstIndex(of: 0)
        #expect(nul == error.byteOffset, "refused \(word.debugDescription) without a NUL at \(error.byteOffset)")
        refused += 1
      }
    }
    #expect(refused > 50, "the generator should produce NULs")
    #expect(words.count > 3000)

    // Once: printf '%s\000' WORD, for every word, in one script.
    var direct = ""
    for word in words { direct += "printf '%s\\000' \(try ShellQuote.quote(word))\n" }
    try expectWords(try await Shell.run(script: direct), words)

    // Twice: /bin/sh -c "printf '%s\000' WORD", the command itself quoted as one word.
    var nested = ""
    for word in words {
      let inner = "printf '%s\\000' \(try ShellQuote.quote(word))"
      nested += "/bin/sh -c \(try ShellQuote.quote(inner))\n"
    }
    try expectWords(try await Shell.run(script: nested), words)

    let left = try FileManager.default.contentsOfDirectory(atPath: directory)
    #expect(left.isEmpty, "a quoted word ran a command: \(left)")
  }

  private func expectWords(_ output: Shell.Output, _ words: [String]) throws {
    #expect(output.status == 0, "sh failed: \(String(decoding: output.stderr, as: UTF8.self).prefix(500))")
    var fields = output.stdout.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
    #expect(fields.last == [], "the output ends with a NUL")
    fields.removeLast()
    #expect(fields.count == words.count)
    for (index, word) in words.enumerated() where index < fields.count && fields[index] != Array(word.utf8) {
      Issue.record("word \(index) \(word.debugDescription) came back as \(fields[index])")
      return
    }
  }
}

/// Words built from the pieces that break naive quoting.
enum HostileWords {
  static func fragments(marker: String) -> [String] {
    [
      "'", "''", "'''", "'\u{301}", "'\u{200D}", "'\u{FE0F}", "\u{200D}", "\u{FE0F}", "\u{FE0E}", "\u{200F}",
      "\u{202E}", "\u{200E}", "\u{301}", "\u{300}\u{301}", "e\u{301}", "\n", "\r\n", "\t", " ", "\u{0}",
      "$(touch \(marker))", "`touch \(marker)`", ";touch \(marker);#", "'; touch \(marker); '", "\\", "\\'",
      "\"", "\"'\"", "$", "${IFS}", "$HOME", "*", "?", "[a]", "~", "#", "&", "|", "<", ">", "{", "}", "!",
      "-", "--", "%s", "%", "\\000", "😀", "👨‍👩‍👧", "🏳️‍🌈", "\u{10FFFF}", "\u{FFFD}", "\u{FEFF}",
      "\u{85}", "\u{2028}", "\u{7F}", "\u{1B}[31m", "é", "ß", "中文", "a", "Z", "0", "_", "/", ".", "..",
    ]
  }

  static func make(using generator: inout SplitMix64, marker: String) -> String {
    let pieces = fragments(marker: marker)
    let count = Int(generator.next() % 9)
    var word = ""
    for _ in 0..<count {
      let roll = generator.next()
      if roll % 5 == 0 {
        // Any scalar at all, including ones with 3- and 4-byte encodings.
        let ranges: [ClosedRange<UInt32>] = [
          0x01...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF,
        ]
        let range = ranges[Int((roll >> 8) % UInt64(ranges.count))]
        let value = range.lowerBound + UInt32((roll >> 16) % UInt64(range.count))
        if let scalar = Unicode.Scalar(value) { word.unicodeScalars.append(scalar) }
      } else {
        word += pieces[Int((roll >> 8) % UInt64(pieces.count))]
      }
    }
    return word
  }
}

/// Runs scripts with the real `/bin/sh` (dash on Debian).
enum Shell {
  struct Output {
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
  }

  /// Runs `script` as a file with `/bin/sh`, returning its output and status.
  static func run(script: String) async throws -> Output {
    let path = try temporaryDirectory() + "/script.sh"
    try Data(script.utf8).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    let result = try await LocalProcess.run(["/bin/sh", path])
    return Output(status: result.exitStatus, stdout: result.stdout, stderr: result.stderr)
  }

  /// A fresh empty directory.
  static func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "/shellquote-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

}

@Suite struct ShellFilesQuotingTests {
  /// A session that must never be asked to run anything.
  final class Untouchable: RemoteSession {
    let host = HostID("n1")
    func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
      Issue.record("ran \(command.debugDescription)")
      return CommandResult(exitStatus: 0)
    }
    func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] { [] }
    func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {}
    func stat(_ path: String) async throws -> RemoteFileStat? { nil }
    func close() async {}
  }

  @Test func aPathWithNULIsAFileErrorNamingHostAndOperation() async {
    let error = await #expect(throws: RemoteError.self) {
      try await ShellFiles.writeFile(Untouchable(), "/tmp/a\u{0}b", contents: [], mode: 0o600)
    }
    #expect(error?.host == HostID("n1"))
    #expect(error?.kind == .file)
    #expect(error?.operation.hasPrefix("write ") == true)
    await #expect(throws: RemoteError.self) { try await ShellFiles.stat(Untouchable(), "\u{0}") }
  }
}
