import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// The old DomeOS script's own logs through the built `svctrace` binary: `collect --from-file`
/// of a traditional-syslog `/var/log/iptables.log` holding only pre-DNAT lines (its postrouting
/// rule, as its manual gives it, is refused by iptables) among other kernel messages, then
/// `trace` and `stats` without `--since`.
@Suite struct LegacyImportTests {
  /// The repository this file is in (the binary is built in its `.build`).
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  static var binary: String {
    let candidates = [".build/debug/svctrace", ".build/release/svctrace"].map { repository + "/" + $0 }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
  }

  /// A CentOS 7 node's `/var/log/iptables.log` over New Year: the script's pre-DNAT prefixes as
  /// its manual spells them, no post-DNAT line, other kernel messages (and a garbled line) mixed
  /// in. The last pre line is younger than the correlator's 2 minute bound at the end of the file.
  static let log = """
    Dec 31 23:58:10 node7 kernel: ----domeos pretrouting-----IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.7 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=10001 DF PROTO=TCP SPT=55001 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 
    Dec 31 23:58:11 node7 kernel: ----domeos pretrouting-----IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.7 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=10002 DF PROTO=TCP SPT=55001 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 
    Dec 31 23:58:12 node7 kernel: e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX
    Dec 31 23:58:30 node7 kernel: ----domeos output-----IN= OUT=eth0 SRC=192.168.50.13 DST=10.16.0.6 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=20001 DF PROTO=TCP SPT=41000 DPT=443 WINDOW=29200 RES=0x00 SYN URGP=0 
    Dec 31 23:59:59 node7 kernel: nf_conntrack: table full, dropping packet
    Dec 31 23:59:59 node7 kernel: ----domeos pretrouting-----IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54
    Jan  1 00:00:05 node7 kernel: ----domeos pretrouting-----IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.8 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=30001 DF PROTO=TCP SPT=55002 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 
    Jan  1 00:00:06 node7 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.66 DST=10.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=1 DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0 
    Jan  1 00:03:00 node7 kernel: ----domeos pretrouting-----IN=eth0 OUT= MAC=52:54:00:8a:11:3e:52:54:00:c4:7d:02:08:00 SRC=192.168.100.9 DST=10.16.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40001 DF PROTO=TCP SPT=55003 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 

    """

  func svctrace(_ arguments: [String]) async throws -> CommandResult {
    try await LocalProcess.run([Self.binary] + arguments, environment: ["NO_COLOR": "1"])
  }

  @Test func preOnlyLinesOfTheOldScriptAreTracedAsPodUnknownWithoutSince() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svct-legacy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let logPath = directory.appendingPathComponent("iptables.log").path
    try Self.log.write(toFile: logPath, atomically: true, encoding: .utf8)
    // Last written a few minutes after New Year 2025: its years count back from there (with the
    // collect's own time as the reference, the December lines would land in the wrong year).
    let lastWrite = Date(
      timeIntervalSince1970: Double(CivilTime.daysFromCivil(year: 2025, month: 1, day: 1)) * 86_400 + 600)
    try FileManager.default.setAttributes([.modificationDate: lastWrite], ofItemAtPath: logPath)
    let store = directory.appendingPathComponent("store.sqlite").path

    let collect = try await svctrace(["collect", "--from-file", "node7=" + logPath, "--store", store, "--json"])
    #expect(collect.exitStatus == 0, "\(collect.stdoutText)\(collect.stderrText)")

    // By client, no --since: the months-old connection is found, its pod unknown, its year right.
    let byClient = try await svctrace([
      "trace", "--client", "192.168.100.7:55001", "--store", store, "--format", "json",
    ])
    #expect(byClient.exitStatus == 0, "\(byClient.stderrText)")
    let records = try #require(try JSONSerialization.jsonObject(with: Data(byClient.stdout)) as? [[String: Any]])
    #expect(records.count == 1, "the retransmitted SYN is folded: \(byClient.stdoutText)")
    let record = try #require(records.first)
    #expect(record["method"] as? String == "pod-unknown")
    #expect(record["pod_ip"] is NSNull && record["pod_port"] is NSNull)
    #expect(record["service_ip"] as? String == "10.16.0.5" && record["service_port"] as? Int == 80)
    #expect(record["node"] as? String == "node7")
    #expect((record["time"] as? String)?.hasPrefix("2024-12-31T23:58:10") == true, "\(record["time"] ?? "nil")")

    // By Service, as a table: every expired pre line of it, "pod unknown", across New Year.
    let byService = try await svctrace(["trace", "--service", "10.16.0.5:80", "--store", store])
    #expect(byService.exitStatus == 0, "\(byService.stderrText)")
    let rows = byService.stdoutText.split(separator: "\n").dropFirst()
    #expect(rows.count == 2, "\(byService.stdoutText)")
    #expect(rows.allSatisfy { $0.contains("pod unknown (no post-DNAT line") }, "\(byService.stdoutText)")
    #expect(rows.last?.hasPrefix("2025-01-01T00:00:05") == true, "\(byService.stdoutText)")
    // The OUTPUT chain's pre line (a host process as the client).
    let output = try await svctrace(["trace", "--client", "192.168.50.13", "--store", store, "--format", "jsonl"])
    #expect(output.exitStatus == 0 && output.stdoutText.contains("\"service_ip\":\"10.16.0.6\""))
    #expect(output.stdoutText.contains("\"service_port\":443"), "\(output.stdoutText)")

    // A habitual --since hides the imported data: the note says how much, and what to do.
    let recent = try await svctrace(["trace", "--service", "10.16.0.5:80", "--since", "24h", "--store", store])
    #expect(recent.exitStatus == 1)
    #expect(
      recent.stderrText.contains("2 older connections match: use an earlier --since"), "\(recent.stderrText)")
    let none = try await svctrace(["trace", "--client", "10.9.9.9", "--since", "24h", "--store", store])
    #expect(none.exitStatus == 1 && none.stderrText == "No connection matched.\n", "\(none.stderrText)")

    // stats counts them apart from the endpoints' shares, and exits 0.
    let stats = try await svctrace(["stats", "--service", "10.16.0.5:80", "--store", store, "--format", "json"])
    #expect(stats.exitStatus == 0, "\(stats.stderrText)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout)) as? [String: Any])
    #expect(object["podUnknown"] as? Int == 2 && object["connections"] as? Int == 0, "\(stats.stdoutText)")

    // The last pre line is within 2 minutes of the end of the log: its post line could still
    // come with more of the file, so it waits (README: "Pre lines without a post line").
    let waiting = try await svctrace(["trace", "--client", "192.168.100.9", "--store", store])
    #expect(waiting.exitStatus == 1)

    // The node wrote its local time (+08:00): the same log in another store, with its zone.
    let zoned = directory.appendingPathComponent("zoned.sqlite").path
    let collectZoned = try await svctrace([
      "collect", "--from-file", "node7=" + logPath, "--log-utc-offset", "+08:00", "--store", zoned,
    ])
    #expect(collectZoned.exitStatus == 0, "\(collectZoned.stdoutText)\(collectZoned.stderrText)")
    let local = try await svctrace(["trace", "--client", "192.168.100.7", "--store", zoned, "--format", "csv"])
    #expect(
      local.stdoutText.split(separator: "\n").last?.hasPrefix("2024-12-31T15:58:10") == true, "\(local.stdoutText)")
  }
}
