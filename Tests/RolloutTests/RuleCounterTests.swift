import Foundation
import Logs
import Rollout
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// The collect exchange's `counters` section against real netfilter in scratch namespaces
/// (root only): svctrace's LOG rules' packet counters read on every backend, in the same exec
/// as the log's bytes, and a reinstall seen as the start of a new epoch.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct RuleCounterTests {
  @Test(arguments: [(21, FakeKubeProxy.iptablesNFT), (22, .iptablesLegacy), (23, .nftables)])
  func countersAreReadInTheCollectExchange(id: Int, kind: FakeKubeProxy) async throws {
    let scratch = try await ScratchNode.make(id: id, kind: kind)
    try await withCleanup {
      var settings = scratch.settings()
      if kind == .iptablesLegacy { settings.serviceCIDRs = [try CIDR(parsing: "10.96.0.0/12")] }
      let install = await NodeRollout.install(scratch.session(), settings: settings)
      #expect(install.failure == nil, "\(String(describing: install.failure))")
      try "".write(toFile: settings.logPath, atomically: true, encoding: .utf8)
      let session = CountingSession(scratch.session())
      var source = LogFileSource(session: session, path: settings.logPath)
      source.countersScript = RuleCounterSample.script

      let first = try #require(try await source.pull(after: nil, maxBytes: 1 << 20).counters)
      #expect(session.execs == 1)
      let zero = try await scratch.logCounters()
      #expect(first.packets == UInt64(zero.pre + zero.post))
      // Both log rules of every family svctrace installed, from the backend kube-proxy uses.
      let prefix =
        switch kind {
        case .iptablesNFT: "iptables-nft:SVCT-LOG-"
        case .iptablesLegacy: "iptables-legacy:SVCT-LOG-"
        case .nftables: "nft:"
        }
      // (nftables: one rule per scope set and NodePort protocol logs, each with its counter.)
      #expect(
        kind == .nftables ? first.counters.count >= 2 : first.counters.count == 2,
        "\(first.counters.keys.sorted())")
      #expect(first.counters.keys.allSatisfy { $0.hasPrefix(prefix) }, "\(first.counters.keys.sorted())")
      #expect(first.uncounted == 0)
      let boot = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
      #expect(first.bootID == boot.trimmingCharacters(in: .whitespacesAndNewlines))
      let uptime = try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: " ")[0]
      let now = Int64((Double(uptime) ?? 0) * 1_000_000)
      #expect(abs(first.uptimeMicros - now) < 60_000_000)

      // Three connections: three packets before DNAT, three after.
      for _ in 0..<3 { try await scratch.connect(from: scratch.podB, to: "10.96.0.10", port: 80) }
      let before = session.execs
      let second = try #require(try await source.pull(after: nil, maxBytes: 1 << 20).counters)
      #expect(session.execs == before + 1)
      let counted = try await scratch.logCounters()
      #expect(second.packets == UInt64(counted.pre + counted.post))
      #expect(second.packets == first.packets + 6)
      #expect(second.uptimeMicros >= first.uptimeMicros)

      // A ledger over the two samples: the same epoch, 6 packets waiting for their lines.
      var ledger = LossLedger()
      _ = ledger.add(first, caughtUp: true, clock: .zero, node: session.host, nowMicros: 0)
      #expect(ledger.add(second, caughtUp: true, clock: .zero, node: session.host, nowMicros: 0).newEpoch == nil)
      #expect(ledger.unsettledPackets == 6)

      // A reinstall that rewrites the rules (another scope) restarts the counters: a new epoch.
      settings.services = [try ServiceAddress(parsing: "10.96.0.10:80/tcp")]
      let again = await NodeRollout.install(scratch.session(), settings: settings)
      #expect(again.failure == nil && again.changed)
      let third = try #require(try await source.pull(after: nil, maxBytes: 1 << 20).counters)
      #expect(third.packets == 0)
      #expect(ledger.add(third, caughtUp: true, clock: .zero, node: session.host, nowMicros: 0).newEpoch != nil)
    } cleanup: {
      await scratch.tearDown()
    }
  }
}
