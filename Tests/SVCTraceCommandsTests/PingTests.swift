import Fleet
import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import SVCTraceCommands

/// `ping` gathers its facts and a clock sample in one exec.
@Suite struct PingTests {
  @Test func oneExecForFactsAndClock() async throws {
    let session = CountingSession(LocalShellSession(host: HostID("node1")))
    let facts = try await NodeFacts.gather(session, become: BecomeConfig())
    #expect(session.execs == 1)
    #expect(facts.user == (try await LocalShellSession().run("id -un").stdoutText.trimmingCharacters(in: .newlines)))
    #expect(!facts.kernel.isEmpty && facts.kernel != "unknown")
    // Same machine: the offset is within its bound (plus rounding).
    #expect(abs(facts.clockOffsetMs) <= facts.clockBoundMs + 1)
  }

  @Test func aGarbledReplyIsAnErrorNamingTheNode() async throws {
    let session = ScriptedSession(host: HostID("node1")) { _, _ in
      CommandResult(exitStatus: 0, stdout: Array("SVCTRACE-REPLY 1 feed\nS facts 0 3\nos=".utf8))
    }
    let error = await #expect(throws: RemoteError.self) { try await NodeFacts.gather(session, become: BecomeConfig()) }
    #expect(error?.host == HostID("node1"))
    #expect(error?.kind == .protocolError)
  }

  @Test func factsAndClockAreReadFromTheReply() throws {
    let body =
      "os=Debian GNU/Linux 12\nkernel=6.1.0\niptables=iptables v1.8.9 (nf_tables)\nrsyslog=yes\nlogrotate=no\nuser=root\n"
    let reply = NodeReply(sections: [
      .init(name: "clock-start", status: 0, body: Array("1700000000500000000\n".utf8)),
      .init(name: "facts", status: 0, body: Array(body.utf8)),
      .init(name: "clock-end", status: 0, body: Array("1700000000600000000\n".utf8)),
    ])
    let facts = try NodeFacts.facts(
      reply: reply, host: HostID("n"), sentMicros: 1_700_000_000_000_000, receivedMicros: 1_700_000_000_200_000)
    #expect(facts.iptablesBackend == "nf_tables" && facts.rsyslog && !facts.logrotate)
    #expect(facts.clockOffsetMs == 450 && facts.clockBoundMs == 50)
    let noClock = NodeReply(sections: [.init(name: "facts", status: 0, body: Array(body.utf8))])
    #expect(throws: RemoteError.self) {
      try NodeFacts.facts(reply: noClock, host: HostID("n"), sentMicros: 0, receivedMicros: 0)
    }
  }
}
