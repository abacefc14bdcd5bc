import SVCTraceCore
import SVCTraceTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

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

/// The shared helper for long-running local processes: signals, exit status, collected output.
@Suite struct BackgroundProcessTests {
  @Test func interruptedProcessReportsItsExitStatusAndOutput() async throws {
    let process = try await BackgroundProcess.start(
      ["/bin/sh", "-c", "trap 'echo interrupted >&2; exit 130' INT; echo ready; while :; do sleep 0.05; done"],
      collectOutput: true)
    for _ in 0..<200 where process.standardOutputSoFar.isEmpty {
      try await Task.sleep(for: .milliseconds(10))
    }
    #expect(process.standardOutputSoFar == Array("ready\n".utf8))
    #expect(process.isRunning)
    #expect(process.signal(SIGINT))
    let result = try await process.wait()
    #expect(result.exitStatus == 130)
    #expect(result.exitSignal == nil)
    #expect(result.stdoutText == "ready\n")
    #expect(result.stderrText == "interrupted\n")
    #expect(!process.isRunning)
    #expect(!process.signal(SIGKILL), "a signal after the exit must not be sent")
  }

  @Test func killedProcessReportsTheSignal() async throws {
    let process = try await BackgroundProcess.start(["sleep", "30"])
    #expect(process.signal(SIGKILL))
    let result = try await process.wait()
    #expect(result.exitStatus == -1)
    #expect(result.exitSignal == "9")
  }

  @Test func outputIsDroppedUnlessCollected() async throws {
    let process = try await BackgroundProcess.start(["/bin/sh", "-c", "echo out; echo err >&2; exit 4"])
    let result = try await process.wait()
    #expect(result.exitStatus == 4)
    #expect(result.stdout.isEmpty && result.stderr.isEmpty)
  }

  @Test func outputBeyondTheLimitIsAnError() async throws {
    let process = try await BackgroundProcess.start(
      ["/bin/sh", "-c", "head -c 5000 /dev/zero"], collectOutput: true, outputLimit: 4096)
    await #expect(throws: LocalProcess.Failure.self) { try await process.wait() }
    #expect(process.standardOutputSoFar.count == 4096)
  }
}

/// `withCleanup`: an awaiting `defer`.
@Suite struct CleanupTests {
  struct Boom: Error {}

  @Test func cleanupRunsAfterTheBodyReturnsOrThrows() async throws {
    var steps: [String] = []
    let value = await withCleanup {
      steps.append("body")
      return 7
    } cleanup: {
      steps.append("cleanup")
    }
    #expect(value == 7)
    #expect(steps == ["body", "cleanup"])

    steps = []
    await #expect(throws: Boom.self) {
      try await withCleanup {
        steps.append("body")
        throw Boom()
      } cleanup: {
        try? await Task.sleep(for: .milliseconds(1))
        steps.append("cleanup")
      }
    }
    #expect(steps == ["body", "cleanup"])
  }
}
