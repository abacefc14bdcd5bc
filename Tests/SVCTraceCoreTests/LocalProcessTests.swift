import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// The shared test helper that runs local processes through swift-subprocess.
@Suite struct LocalProcessTests {
  @Test func stdinGoesThroughAndBothOutputsAreCollected() async throws {
    let input = Array((0..<200_000).map { "line \($0)\n" }.joined().utf8)
    let result = try await LocalProcess.shell("cat; echo done >&2; exit 3", stdin: input)
    #expect(result.exitStatus == 3)
    #expect(result.stdout == input)
    #expect(result.stderrText == "done\n")
  }

  @Test func childThatIgnoresItsInputDoesNotKillTheCaller() async throws {
    let result = try await LocalProcess.shell("exit 0", stdin: [UInt8](repeating: 0x41, count: 8 << 20))
    #expect(result.succeeded)
  }

  @Test func signalledChildReportsTheSignal() async throws {
    let result = try await LocalProcess.shell("kill -9 $$")
    #expect(result.exitStatus == -1)
    #expect(result.exitSignal == "9")
  }

  @Test func environmentOverridesAreSeen() async throws {
    let result = try await LocalProcess.shell("printf %s \"$SVCT_PROBE\"", environment: ["SVCT_PROBE": "a b"])
    #expect(result.stdoutText == "a b")
  }
}
