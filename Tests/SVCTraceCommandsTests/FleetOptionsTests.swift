import ArgumentParser
import Testing

@testable import SVCTraceCommands

@Suite struct FleetOptionsTimeoutTests {
  @Test func hostsAreTimedOutAfterTenMinutesUnlessTold() throws {
    #expect(try FleetOptions.parse([]).hostTimeoutDuration == .seconds(600))
    #expect(try FleetOptions.parse(["--timeout", "30"]).hostTimeoutDuration == .seconds(30))
    #expect(try FleetOptions.parse(["--timeout", "0"]).hostTimeoutDuration == nil)
    #expect(throws: (any Error).self) { try FleetOptions.parse(["--timeout", "-1"]) }
  }

  @Test func theHelpSaysHowToLiftTheLimit() {
    let help = SVCTrace.Exec.helpMessage(columns: 200)
    #expect(help.contains("0 for no limit"))
    #expect(help.contains("(default: 600)"))
  }
}
