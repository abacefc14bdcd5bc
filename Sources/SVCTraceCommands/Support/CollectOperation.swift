import Fleet
import Ingest
import Logs
import SVCTraceCore
import Store

/// The per-host collect shared by `collect` and `trace --follow`: pull what the node's log
/// gained into the store (one exchange with the node when it gained less than a pull: the
/// listing, the new bytes and a clock sample), and take the name snapshot on the kubectl host.
enum CollectOperation {
  /// Collects one host.
  /// - Parameters:
  ///   - logPath: the node log; `nil` means the host's `svctrace_log_path`, else the default.
  ///   - snapshotHost: the host that runs kubectl for the name snapshot, if any (every run).
  ///   - schedule: instead, for repeated runs: where and how often, sending only changes.
  ///   - forks: how many hosts collect at once (sizes each pull, see ``pullBytes(forks:)``).
  /// - Throws: `RemoteError`, ``CaptureError``, ``StoreError``, `CancellationError`.
  static func run(
    session: any RemoteSession, host: FleetHost, store: any TraceStoring, logPath: String?, snapshotHost: String?,
    schedule: SnapshotSchedule? = nil, forks: Int, totals: CollectTotals?
  ) async throws -> HostOutcome<CollectReport> {
    let path = logPath ?? host.vars["svctrace_log_path"] ?? LogFileSource.defaultPath
    var source = LogFileSource(session: session, path: path)
    // The LOG rules' counters ride in the same exchange (the loss accounting).
    source.countersScript = RuleCounterSample.script
    let now = ClockOffset.wallClockMicros()
    let summary = try await Ingestor(store: store).collect(
      from: source, makeParser: { PacketLineParser(referenceMicros: now) },
      maxBytes: pullBytes(forks: forks), progress: { totals?.update(host.id, $0) })
    var report = CollectReport(summary, clock: summary.clock ?? .zero, path: path)
    if host.id.name == snapshotHost {
      report.snapshot = try await Snapshot.take(session: session, store: store).message
    } else if let schedule, let previous = schedule.due(on: host.id.name) {
      let (message, digest) = try await Snapshot.take(session: session, store: store, unlessDigest: previous)
      schedule.record(digest: digest)
      report.snapshot = message
    }
    return HostOutcome(changed: summary.lines > 0, message: report.line, payload: report)
  }

  /// The size of one pull when `forks` hosts collect at once: 16 MiB (the fastest) up to 16
  /// forks, less beyond, so that the batches held in memory — each host has about two in flight
  /// (one committing, the next parsed and correlated), each twice its pull — stay near 1 GiB
  /// whatever `--forks` says.
  static func pullBytes(forks: Int) -> Int {
    min(16 << 20, max(1 << 20, (256 << 20) / max(1, forks)))
  }

  /// The host that takes the name snapshot: `--kubectl-host`, else the first selected host of
  /// `kube_control_plane`; none with `--no-snapshot` or a local `--kubeconfig`.
  static func snapshotHost(_ hosts: [FleetHost], kubectlHost: String?, kubeconfig: String?, noSnapshot: Bool) -> String?
  {
    if noSnapshot || kubeconfig != nil { return nil }
    return kubectlHost ?? hosts.first { $0.groups.contains("kube_control_plane") }?.id.name
  }
}
