import Fleet
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization
import Testing

/// Counts connects and closes; each session answers with its serial number.
private final class CountingConnector: SessionConnector {
  private let state = Mutex((connects: 0, closes: 0))
  var connects: Int { state.withLock { $0.connects } }
  var closes: Int { state.withLock { $0.closes } }

  func connect(_ host: FleetHost) async throws -> any RemoteSession {
    let serial = state.withLock {
      $0.connects += 1
      return $0.connects
    }
    return ClosingSession(
      base: ScriptedSession(host: host.id) { command, _ in
        CommandResult(exitStatus: command == "false" ? 1 : 0, stdout: Array("\(serial)".utf8))
      },
      onClose: { [weak self] in self?.state.withLock { $0.closes += 1 } })
  }
}

/// A session that reports its close.
private struct ClosingSession: RemoteSession {
  let base: ScriptedSession
  let onClose: @Sendable () -> Void
  var host: HostID { base.host }
  func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    try await base.run(command, stdin: stdin, timeout: timeout)
  }
  func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] { [] }
  func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {}
  func stat(_ path: String) async throws -> RemoteFileStat? { nil }
  func close() async { onClose() }
}

@Suite struct SessionPoolTests {
  let hosts = (1...5).map { FleetHost(id: HostID("node\($0)"), address: "192.0.2.\($0)", user: "root") }

  @Test func roundsReuseOneSessionPerHostAndAFailureReconnectsOnlyThatHost() async throws {
    let connector = CountingConnector()
    let pool = SessionPool(connector)
    let runner = FleetRunner(forks: 3)
    for _ in 0..<4 {
      let results: [HostResult<String>] = await runner.run(hosts, connector: pool) { session, _ in
        HostOutcome(payload: try await session.check("hostname", operation: "hostname").stdoutText)
      }
      #expect(results.allSatisfy { $0.status == .ok })
    }
    #expect(connector.connects == 5, "one connection per host over four rounds")
    #expect(connector.closes == 0)
    #expect(pool.openCount == 5)

    // A failed operation on node3 closes its session; the next round connects node3 anew.
    let failing: [HostResult<String>] = await runner.run(hosts, connector: pool) { session, host in
      if host.id.name == "node3" { _ = try await session.check("false", operation: "fail") }
      return HostOutcome(payload: "")
    }
    #expect(failing.filter { $0.status == .failed }.map(\.host.name) == ["node3"])
    #expect(connector.closes == 1 && pool.openCount == 4)
    let after: [HostResult<String>] = await runner.run(hosts, connector: pool) { session, _ in
      HostOutcome(payload: try await session.check("hostname", operation: "hostname").stdoutText)
    }
    #expect(after.first { $0.host.name == "node3" }?.payload == "6", "a new session for node3")
    #expect(connector.connects == 6)

    await pool.closeAll()
    #expect(connector.closes == 6 && pool.openCount == 0)
  }

  @Test func withoutAPoolEverySessionIsClosedAfterItsRun() async {
    let connector = CountingConnector()
    let _: [HostResult<String>] = await FleetRunner(forks: 2).run(hosts, connector: connector) { _, _ in
      HostOutcome(payload: "")
    }
    #expect(connector.connects == 5 && connector.closes == 5)
  }
}
