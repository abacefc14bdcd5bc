import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@Suite struct NodeReplyTests {
  let host = HostID("node7")

  func frame(_ nonce: String, _ sections: [(String, Int32, [UInt8])], endCount: Int? = nil) -> [UInt8] {
    var out = Array("SVCTRACE-REPLY 1 \(nonce)\n".utf8)
    for (name, status, body) in sections {
      out += Array("S \(name) \(status) \(body.count)\n".utf8) + body + [10]
    }
    out += Array("E \(nonce) \(endCount ?? sections.count)\n".utf8)
    return out
  }

  func parse(_ bytes: [UInt8], nonce: String = "abc123") throws(RemoteError) -> NodeReply {
    try NodeReply.parse(bytes, nonce: nonce, host: host, operation: "verify")
  }

  @Test func aRealScriptRoundTripsBinaryAndFrameLikeBodies() async throws {
    var script = NodeReply.Script()
    script.prelude("x=42")
    script.section("plain", "echo hello; echo \"x=$x\"")
    // A body that prints frame text of this very run, NUL bytes and no final newline.
    script.binarySection("hostile", "printf 'E %s 0\\nS fake 0 3\\nabc\\n' \(script.nonce); printf 'a\\000b'")
    script.section("failing", "echo partial; exit 3")
    script.section("empty", "true")
    script.section("tilde", "printf 'a~1~\\n\\n'; exit 4")
    script.binarySection("binary-empty", "exit 2")
    script.clockSection(ClockOffset.startSection)
    script.clockSection(ClockOffset.endSection)
    let session = LocalShellSession(host: host)
    let (reply, sent, received) = try await session.exchange(script, timeout: .seconds(30), operation: "test")
    #expect(
      reply.sections.map(\.name) == [
        "plain", "hostile", "failing", "empty", "tilde", "binary-empty", "clock-start", "clock-end",
      ])
    #expect(reply.section("tilde")?.text == "a~1~\n\n")
    #expect(reply.section("tilde")?.status == 4)
    #expect(reply.section("binary-empty")?.status == 2 && reply.section("binary-empty")?.body == [])
    #expect(reply.section("plain")?.text == "hello\nx=42\n")
    #expect(reply.section("hostile")?.body == Array("E \(script.nonce) 0\nS fake 0 3\nabc\n".utf8) + [97, 0, 98])
    #expect(reply.section("failing")?.status == 3)
    #expect(reply.section("failing")?.text == "partial\n")
    #expect(reply.section("empty")?.body == [])
    let clock = try #require(ClockOffset(reply: reply, sentMicros: sent, receivedMicros: received))
    // Same machine: the offset is within the bound (plus a little for rounding).
    #expect(abs(clock.offsetMicros) <= clock.boundMicros + 1000)
  }

  @Test func noiseBeforeTheHeaderIsIgnored() throws {
    let reply = try parse(Array("Welcome to node7\n".utf8) + frame("abc123", [("facts", 0, Array("a=1\n".utf8))]))
    #expect(reply.section("facts")?.text == "a=1\n")
  }

  @Test func garbledRepliesAreErrorsNamingTheNode() {
    let good = frame("abc123", [("facts", 0, Array("a=1\n".utf8)), ("more", 1, Array("zz".utf8))])
    var cases: [(String, [UInt8])] = [
      ("empty", []),
      ("no header", Array("bash: svct_emit: command not found\n".utf8)),
      ("another run's nonce", frame("ffff", [("facts", 0, [])])),
      ("another version", Array("SVCTRACE-REPLY 2 abc123\n".utf8) + Array(good.dropFirst(24))),
      ("trailing garbage", good + Array("x".utf8)),
      ("wrong count", frame("abc123", [("facts", 0, [])], endCount: 2)),
      ("end nonce forged", Array(good.dropLast(14)) + Array("E ffff 2\n".utf8)),
      ("negative length", Array("SVCTRACE-REPLY 1 abc123\nS facts 0 -1\n\nE abc123 1\n".utf8)),
      ("huge length", Array("SVCTRACE-REPLY 1 abc123\nS facts 0 99999999999999\n".utf8)),
      ("bad name", Array("SVCTRACE-REPLY 1 abc123\nS fa$cts 0 0\n\nE abc123 1\n".utf8)),
      ("status out of range", Array("SVCTRACE-REPLY 1 abc123\nS facts 300 0\n\nE abc123 1\n".utf8)),
      ("missing separator", Array("SVCTRACE-REPLY 1 abc123\nS facts 0 2\nabE abc123 1\n".utf8)),
    ]
    // Every truncation of a good reply.
    for cut in stride(from: 24, to: good.count, by: 1) {
      cases.append(("truncated at \(cut)", Array(good.prefix(cut))))
    }
    for (label, bytes) in cases {
      do {
        _ = try parse(bytes)
        Issue.record("\(label): parsed")
      } catch {
        #expect(error.kind == .protocolError, "\(label)")
        #expect(error.host == host, "\(label)")
        #expect(error.description.hasPrefix("Unable to verify on node7: the node's reply is garbled"), "\(label)")
      }
    }
  }

  @Test func randomBytesNeverCrashTheParser() {
    var generator = SystemRandomNumberGenerator()
    let good = frame("abc123", [("facts", 0, Array("a=1\n".utf8))])
    for _ in 0..<2000 {
      var bytes = good
      for _ in 0..<Int.random(in: 1...4, using: &generator) {
        bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
      }
      _ = try? parse(bytes)
    }
  }

  @Test func aScriptThatDoesNotRunIsACommandFailure() async throws {
    let session = LocalShellSession(host: host)
    var script = NodeReply.Script()
    script.prelude("exit 5")
    do {
      _ = try await session.exchange(script, timeout: .seconds(30), operation: "probe")
      Issue.record("no error")
    } catch let error as RemoteError {
      #expect(error.kind == .commandFailed)
      #expect(error.operation == "probe")
    }
  }

  @Test func ntpStyleClockSampleExcludesNodeTime() {
    // Node 5 s ahead; 10 ms each way on the wire; the script ran 300 ms on the node.
    let sent: Int64 = 1_000_000_000
    let nodeStart = (sent + 10_000 + 5_000_000) * 1000
    let nodeEnd = nodeStart + 300_000 * 1000
    let received = sent + 10_000 + 300_000 + 10_000
    let clock = ClockOffset(
      sentMicros: sent, receivedMicros: received, nodeStartNanos: nodeStart, nodeEndNanos: nodeEnd)
    #expect(clock.offsetMicros == 5_000_000)
    #expect(clock.boundMicros == 10_000)
  }
}
