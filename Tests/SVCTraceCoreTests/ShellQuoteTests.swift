import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite struct ShellQuoteTests {
  @Test(arguments: ["plain", "with space", "it's", "a;b", "$(touch /tmp/x)", "new\nline", "", "`id`", "\"dq\""])
  func roundTripsThroughRealShell(_ value: String) async throws {
    // Given a hostile value, when it is quoted and echoed by /bin/sh, then it comes back unchanged.
    let result = try await LocalProcess.run(["/bin/sh", "-c", "printf %s " + ShellQuote.quote(value)])
    #expect(result.exitStatus == 0)
    #expect(result.stdoutText == value)
  }
}
