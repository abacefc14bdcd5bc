import Foundation
import SVCTraceCore
import Testing

@testable import Rollout

/// `verify`'s `loss/lines` check, pure: pass, not accounted, and each likely cause.
@Suite struct LossCheckTests {
  static let t: Int64 = 1_796_600_000_000_000

  static func section(_ name: String, _ text: String) -> NodeReply.Section {
    NodeReply.Section(name: name, status: 0, body: Array(text.utf8))
  }

  static let roomyDisk = section("disk", "52428800000 12%\n1000\n\n1796600000\n")
  static let lossy = LostLines(
    windows: [
      LostLines.Window(fromMicros: t, untilMicros: t + 30_000_000, packets: 5212, lost: 1391, rsyslogRunning: true)
    ], accounted: true, previousCheckMicros: t - 3_600_000_000)

  static func check(
    _ loss: LostLines, notes: String = "", disk: NodeReply.Section = roomyDisk, rsyslogActive: Bool = true
  ) -> CheckResult {
    Verifier.lossCheck(
      loss, evidence: section("loss-evidence", notes), disk: disk, rsyslogActive: rsyslogActive)
  }

  @Test func nothingLostPassesAndNoAccountingWarns() {
    let none = LostLines(windows: [], accounted: true, previousCheckMicros: Self.t)
    let pass = Self.check(none)
    #expect(pass.status == .pass && pass.evidence.hasPrefix("no lines lost since the last check"))
    let blind = Self.check(LostLines(windows: [], accounted: false, previousCheckMicros: nil))
    #expect(blind.status == .warn && blind.fix?.contains("svctrace collect") == true)
  }

  @Test func aLossFailsWithTheLikelyCauseOnTheFirstLine() {
    // Nothing else to blame: the counters-vs-file gap while rsyslog ran.
    let overrun = Self.check(Self.lossy)
    #expect(overrun.status == .fail)
    let first = overrun.evidence.split(separator: "\n").first ?? ""
    #expect(first.hasPrefix("1391 lines lost since the last check") && first.contains("kernel ring buffer overrun"))
    #expect(overrun.evidence.contains("1391 of 5212 between 2026-"))
    // The kernel's (or a relay's) own note is quoted.
    let noted = Self.check(Self.lossy, notes: "kernel: kmsg-relay n2: kernel ring buffer overrun, records lost\n")
    #expect(noted.evidence.contains("kernel: kmsg-relay n2"))
    // rsyslog's rate-limiting notes.
    let limited = Self.check(
      Self.lossy,
      notes: "rsyslog: imjournal: 2041 messages lost due to rate-limiting (20000 allowed within 600 seconds)\n")
    #expect(limited.evidence.split(separator: "\n").first?.contains("rsyslog rate limiting") == true)
    #expect(limited.evidence.contains("messages lost due to rate-limiting"))
    // rsyslog stopped, now or during the interval.
    #expect(Self.check(Self.lossy, rsyslogActive: false).evidence.contains("rsyslog was not running"))
    var stopped = Self.lossy
    stopped.windows[0].rsyslogRunning = false
    #expect(Self.check(stopped).evidence.contains("rsyslog was not running"))
    // A full disk comes first.
    let full = Self.check(
      Self.lossy, notes: "kernel: x\n", disk: Self.section("disk", "40960 100%\n1000\n\n1796600000\n"))
    #expect(full.evidence.split(separator: "\n").first?.contains("disk full") == true)
  }

  @Test func theEvidenceSectionRidesOnlyWithAStore() throws {
    let settings = RolloutSettings()
    #expect(!(try Verifier.script(settings: settings, canary: nil).text.contains("loss-evidence")))
    #expect(try Verifier.script(settings: settings, canary: nil, lossEvidence: true).text.contains("loss-evidence"))
  }
}
