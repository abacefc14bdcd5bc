import Fleet
import Foundation
import Ingest
import Logs
import SVCTraceCore
import Testing

@testable import SVCTraceCommands

/// What `collect` and `trace` say of lost lines (pure: from summaries and stored intervals).
@Suite struct LossReportTests {
  static let t: Int64 = 1_796_600_000_000_000

  static func interval(_ node: String, lost: Int64, from: Int64 = t) -> LossInterval {
    LossInterval(
      node: node, fromMicros: from, untilMicros: from + 30_000_000, packets: 1000, lines: 1000 - lost, lost: lost,
      recordedAtMicros: from + 31_000_000)
  }

  static func report(_ node: String, counters: Bool, intervals: [LossInterval] = [], unsettled: Int64 = 0)
    -> HostResult<CollectReport>
  {
    var summary = CollectSummary(node: HostID(node))
    summary.countersRead = counters
    summary.lossIntervals = intervals
    summary.unsettledPackets = unsettled
    let report = CollectReport(summary, clock: .zero, path: "/var/log/iptables.log")
    return HostResult(host: HostID(node), status: .ok, message: report.line, payload: report)
  }

  @Test func collectSaysLinesLostPerNodeAndInItsClosingLine() throws {
    let lossy = Self.report("node3", counters: true, intervals: [Self.interval("node3", lost: 37)])
    #expect(lossy.message?.contains("37 LINES LOST (1000 packets logged, 37 between 2026-") == true)
    let json = try Output.json(lossy.payload)
    #expect(json.contains("\"linesLost\" : 37") && json.contains("\"packetsCounted\" : 1000"))
    let quiet = Self.report("node1", counters: true, unsettled: 12)
    #expect(quiet.message?.contains("0 lines lost (12 packets' lines not judged yet)") == true)
    let blind = Self.report("node2", counters: false)
    #expect(blind.message?.contains("lost") == false)
    #expect(!(try Output.json(blind.payload)).contains("linesLost"))

    let closing = try #require(LossSummary.make([quiet, lossy, blind]))
    #expect(closing.alarming && closing.linesLost == 37)
    #expect(closing.text.hasPrefix("LINES LOST: 37 (37 on node3)"))
    #expect(closing.text.contains("1 node(s) without loss accounting"))
    let none = try #require(LossSummary.make([quiet]))
    #expect(!none.alarming && none.linesLost == 0 && none.text == "lines lost: none on 1 node(s)")
  }

  @Test func traceNamesTheLossesOfTheWindowItSearched() throws {
    let intervals = [
      Self.interval("node3", lost: 30), Self.interval("node3", lost: 7, from: Self.t + 30_000_000),
      Self.interval("node1", lost: 0),
    ]
    let note = try #require(LossNote.make(intervals, node: nil))
    #expect(
      note.text(found: false)
        == "No record; 37 lines were lost on node3 between 2026-12-06T23:33:20.000000Z and 2026-12-06T23:34:20.000000Z (the connection may be among them; see `svctrace verify`)."
    )
    #expect(note.text(found: true).hasPrefix("Note: in the window searched, 37 lines were lost on node3"))
    #expect(try Output.jsonLine(note.document(found: false)).contains("\"linesLost\":[{\"from\""))
    #expect(LossNote.make(intervals, node: HostID("node1")) == nil)
  }
}
