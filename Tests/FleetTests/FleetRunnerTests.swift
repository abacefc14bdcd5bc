import Fleet
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization
import Testing

/// A connector whose hosts behave as a table says: reachable or not, how long the work takes.
private struct FakeConnector: SessionConnector {
  var unreachable: Set<String> = []
  let inFlight = InFlight()

  func connect(_ host: FleetHost) async throws -> any RemoteSession {
    if unreachable.contains(host.id.name) {
      throw RemoteError(host: host.id, operation: "connect", kind: .unreachable, message: "Connection refused")
    }
    return ScriptedSession(host: host.id) { command, _ in
      CommandResult(exitStatus: command == "false" ? 1 : 0, stdout: Array(host.id.name.utf8))
    }
  }
}

/// Tracks how many operations run at the same moment.
private final class InFlight: Sendable {
  private let state = Mutex((now: 0, peak: 0))
  func enter() {
    state.withLock {
      $0.now += 1
      $0.peak = max($0.peak, $0.now)
    }
  }
  func leave() { state.withLock { $0.now -= 1 } }
  var peak: Int { state.withLock { $0.peak } }
}

private func hosts(_ count: Int) -> [FleetHost] {
  (1...count).map { FleetHost(id: HostID("node\($0)"), address: "192.0.2.\($0)", user: "root") }
}

/// Records, for each `finishRun()`, how many operations had not finished yet.
private final class FinishCountingConnector: SessionConnector {
  let state = Mutex((finishes: [Int](), running: 0))

  func connect(_ host: FleetHost) async throws -> any RemoteSession {
    state.withLock { $0.running += 1 }
    return ScriptedSession(host: host.id) { _, _ in CommandResult(exitStatus: 0) }
  }

  func done() { state.withLock { $0.running -= 1 } }

  func finishRun() async { state.withLock { $0.finishes.append($0.running) } }
}

@Suite struct FleetRunnerTests {
  @Test func finishRunIsCalledOnceAfterEveryHost() async {
    // Given a connector that shares something between hosts (the SSH one: bastion connections),
    let connector = FinishCountingConnector()
    let results: [HostResult<Int>] = await FleetRunner(forks: 3, serial: 4).run(hosts(10), connector: connector) {
      _, _ in
      try await Task.sleep(for: .milliseconds(5))
      connector.done()
      return HostOutcome(payload: 1)
    }
    // then it hears once, at the end, when no host is still at work.
    #expect(results.count == 10)
    #expect(connector.state.withLock { $0.finishes } == [0])
  }

  @Test func runsEveryHostWithinTheForkLimit() async {
    // Given 12 hosts and 3 forks, when each operation takes a little while,
    let connector = FakeConnector()
    let runner = FleetRunner(forks: 3)
    let results: [HostResult<String>] = await runner.run(hosts(12), connector: connector) { session, _ in
      connector.inFlight.enter()
      defer { connector.inFlight.leave() }
      try await Task.sleep(for: .milliseconds(20))
      return HostOutcome(payload: try await session.run("hostname").stdoutText)
    }
    // then every host answered, in input order, and never more than 3 ran at once.
    #expect(results.map(\.host.name) == (1...12).map { "node\($0)" })
    #expect(results.map(\.payload) == (1...12).map { "node\($0)" })
    #expect(results.allSatisfy { $0.status == .ok })
    #expect(connector.inFlight.peak <= 3)
    #expect(connector.inFlight.peak >= 2)
  }

  @Test func unreachableAndFailedHostsDoNotStopTheOthers() async {
    let connector = FakeConnector(unreachable: ["node2"])
    let results: [HostResult<Int>] = await FleetRunner(forks: 4).run(hosts(4), connector: connector) { session, host in
      if host.id.name == "node3" { try await session.check("false", operation: "run false") }
      return HostOutcome(changed: host.id.name == "node4")
    }
    #expect(results.map(\.status) == [.ok, .unreachable, .failed, .changed])
    #expect(results[1].message?.contains("Connection refused") == true)
    #expect(results[2].message == "Unable to run false on node3: exit status 1")
  }

  @Test func maxFailPercentStopsLaterBatches() async {
    let connector = FakeConnector(unreachable: ["node1", "node2"])
    let runner = FleetRunner(forks: 5, serial: 2, maxFailPercent: 40)
    let results: [HostResult<Int>] = await runner.run(hosts(6), connector: connector) { _, _ in HostOutcome() }
    #expect(results.map(\.status) == [.unreachable, .unreachable, .skipped, .skipped, .skipped, .skipped])
    #expect(results[2].message?.contains("--max-fail-percent") == true)
  }

  @Test func hostTimeoutFailsOnlyTheSlowHost() async {
    let runner = FleetRunner(forks: 2, hostTimeout: .milliseconds(200))
    let results: [HostResult<Int>] = await runner.run(hosts(2), connector: FakeConnector()) { _, host in
      if host.id.name == "node1" { try await Task.sleep(for: .seconds(30)) }
      return HostOutcome()
    }
    #expect(results[0].status == .failed)
    #expect(results[0].message?.contains("host timeout") == true)
    #expect(results[1].status == .ok)
  }

  @Test func cancellationEndsRunningHostsAndSkipsTheRest() async {
    let runner = FleetRunner(forks: 2)
    let task = Task {
      let results: [HostResult<Int>] = await runner.run(hosts(6), connector: FakeConnector()) { _, _ in
        try await Task.sleep(for: .seconds(60))
        return HostOutcome()
      }
      return results
    }
    try? await Task.sleep(for: .milliseconds(100))
    task.cancel()
    let results = await task.value
    #expect(results.count == 6)
    #expect(results.prefix(2).allSatisfy { $0.status == .failed && $0.message == "cancelled" })
    #expect(results.dropFirst(2).allSatisfy { $0.status == .skipped })
  }
}

@Suite struct BoundedFleetTests {
  @Test func hostsAreTimedOutByDefault() {
    #expect(FleetRunner().hostTimeout == FleetRunner.defaultHostTimeout)
    #expect(FleetRunner.defaultHostTimeout == .seconds(600))
    #expect(FleetRunner(hostTimeout: nil).hostTimeout == nil)
  }

  @Test func recapShowsRemoteControlSequencesEscaped() {
    let hostile = "sudo: \u{1B}]52;c;ZXZpbA==\u{07}refused\r\u{1B}[2J"
    let results = [
      HostResult<Int>(host: HostID("node1"), status: .failed, message: hostile),
      HostResult<Int>(host: HostID("node2"), status: .ok, message: "fine"),
    ]
    let text = Recap(results: results, terminal: Terminal(stdoutIsTTY: false, stderrIsTTY: false, color: false))
      .render()
    #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D })
    #expect(text.contains("node1: sudo: \\x1B]52;c;ZXZpbA==\\x07refused\\r\\x1B[2J"))
    #expect(text.contains("fine"))
  }
}
