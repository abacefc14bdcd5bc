import Foundation
import SVCTraceCore
import Testing

@Suite struct ShellQuoteTests {
  @Test(arguments: ["plain", "with space", "it's", "a;b", "$(touch /tmp/x)", "new\nline", "", "`id`", "\"dq\""])
  func roundTripsThroughRealShell(_ value: String) throws {
    // Given a hostile value, when it is quoted and echoed by /bin/sh, then it comes back unchanged.
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", "printf %s " + ShellQuote.quote(value)]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(String(decoding: data, as: UTF8.self) == value)
  }
}
