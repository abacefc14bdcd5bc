import ArgumentParser
import Fleet
import Foundation
import Ingest
import Logs
import SVCTraceCore
import Store
import Synchronization

extension SVCTrace {
  /// `svctrace collect`: pull what every node's log gained into the local store.
  struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Pull new lines of every node's svctrace log into the local store and correlate them.",
      discussion: """
        Incremental and rotation-safe: each node has a cursor (inode, first bytes, offset) in the store; \
        a rerun pulls only bytes added since, following logrotate's create and copytruncate modes, \
        .1 and .N.gz files and several rotations in between. The cursor moves only with data committed \
        to the store, so an interrupted collect loses nothing and duplicates nothing when rerun. Large \
        ranges are gzip-compressed on the node. Each collect also measures the node's clock offset \
        and, on a control-plane host (group kube_control_plane), snapshots Services, EndpointSlices \
        and Pods with kubectl so traces show names.

        Examples:
          svctrace collect -i hosts.ini --become
          svctrace collect -i hosts.ini --store /srv/svctrace.sqlite --forks 50
          svctrace collect --from-file node07=/tmp/iptables.log.2.gz
          svctrace collect -i hosts.ini --kubeconfig ~/.kube/config

        --from-file also reads the old DomeOS script's logs (its ----domeos… prefixes among other \
        kernel messages). Traditional syslog timestamps (Dec 31 23:58:10) carry no year and no \
        zone: the zone is --log-utc-offset (default UTC); the year counts back from the file's \
        modification time (its last line; copy files with their times, or touch them): the first \
        line takes that year unless it would lie more than a day after it, then the previous \
        year; later lines move to the next year when the month goes backwards (Dec → Jan). A \
        pre-DNAT line without a post-DNAT line is kept as a connection whose pod is unknown.

        With --every, collects again and again, keeping one SSH connection per node open: a round \
        that finds nothing new costs one exchange per node. Each round prints one line (a JSON \
        object per line with --json); the name snapshot is re-checked at most every 30 s and \
        transferred only when Services, EndpointSlices or Pods changed. Ctrl-C or SIGTERM stops \
        it after the round in progress has committed (a second Ctrl-C cancels that round; nothing \
        committed is lost either way).

          svctrace collect -i hosts.ini --every 30s
          systemd: ExecStart=/usr/local/bin/svctrace collect -i /etc/svctrace/hosts.ini --every 1m

        Exit status: 0 when every node was collected (with --every: in the last round), 1 \
        otherwise, 2 on usage errors.
        """)

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var shardOptions: ShardOptions
    @OptionGroup var output: OutputOptions

    @Option(
      help: ArgumentHelp(
        "The node log to pull. Default: svctrace_log_path, else /var/log/iptables.log.", valueName: "path"))
    var logPath: String?

    @Option(
      name: .customLong("from-file"),
      help: ArgumentHelp(
        "Ingest a log file copied by other means (plain or gzip), as NODE=PATH (repeatable: nodes are ingested concurrently, up to --forks; one node's files in the order given); no SSH.",
        valueName: "node=path"))
    var fromFiles: [String] = []

    @Option(
      name: .customLong("log-utc-offset"),
      help: ArgumentHelp(
        "With --from-file: the zone of traditional syslog timestamps (Mmm dd hh:mm:ss, written in the node's local time), e.g. +08:00. Default: UTC.",
        valueName: "±hh:mm"))
    var logUTCOffset: String?

    @Option(
      help: ArgumentHelp(
        "Host that runs kubectl for name snapshots. Default: the first selected host of kube_control_plane.",
        valueName: "host"))
    var kubectlHost: String?

    @Option(
      help: ArgumentHelp("Take the name snapshot with a local kubectl and this kubeconfig instead.", valueName: "path"))
    var kubeconfig: String?

    @Flag(help: "Do not take a Kubernetes name snapshot.")
    var noSnapshot = false

    @Option(
      help: ArgumentHelp(
        "Collect again every DURATION (e.g. 10s, 5m) over kept connections until Ctrl-C or SIGTERM.",
        valueName: "duration"))
    var every: String?

    func validate() throws {
      if let logPath {
        do { try RemoteValue.path(logPath, variable: "--log-path") } catch { throw ValidationError(error.description) }
      }
      for spec in fromFiles where !spec.contains("=") {
        throw ValidationError("--from-file takes NODE=PATH, got '\(spec)'.")
      }
      if let logUTCOffset {
        guard !fromFiles.isEmpty else { throw ValidationError("--log-utc-offset goes with --from-file.") }
        guard TraceArguments.utcOffset(logUTCOffset) != nil else {
          throw ValidationError("--log-utc-offset takes ±HH:MM (e.g. +08:00, -05:30) or Z, got '\(logUTCOffset)'.")
        }
      }
      if let every {
        guard let micros = try? TraceArguments.duration(every), micros >= 1_000_000 else {
          throw ValidationError("--every takes a duration of at least 1s (e.g. 30s, 5m), got '\(every)'.")
        }
        if !fromFiles.isEmpty {
          throw ValidationError("--every collects nodes over SSH; it does not go with --from-file.")
        }
      }
    }

    func run() async throws {
      MallocTuning.forBulkIngest()
      let store = try await storeOptions.open()
      if !fromFiles.isEmpty {
        try await collectFiles(store)
        return
      }
      let context = try shardOptions.apply(to: FleetContext.make(fleet, label: "collect"))
      let snapshotHost = CollectOperation.snapshotHost(
        context.hosts, kubectlHost: kubectlHost, kubeconfig: kubeconfig, noSnapshot: noSnapshot)
      if let kubeconfig, !noSnapshot {
        try await LocalSnapshot.take(store: store, kubeconfig: kubeconfig)
      }
      let logPath = self.logPath
      if let every {
        try await collectEvery(
          .microseconds(try TraceArguments.duration(every)), context: context, store: store, snapshotHost: snapshotHost)
        return
      }
      let totals = CollectTotals(progress: context.runner.progress)
      try await runFleet(context, json: output.json, command: "collect", summary: LossSummary.make) { session, host in
        try await CollectOperation.run(
          session: session, host: host, store: store, logPath: logPath, snapshotHost: snapshotHost,
          forks: context.runner.forks, totals: totals)
      }
    }

    /// `--every`: rounds over kept connections until a stop is requested; one line per round.
    private func collectEvery(
      _ period: Duration, context: FleetContext, store: any TraceStoring, snapshotHost: String?
    ) async throws {
      let pool = SessionPool(context.connector)
      let schedule = snapshotHost.map { SnapshotSchedule(host: $0, interval: Swift.max(.seconds(30), period)) }
      let (runner, hosts, logPath, json) = (context.runner, context.hosts, self.logPath, output.json)
      let lastRound = try await withGracefulStop { stop -> [HostResult<CollectReport>] in
        var last: [HostResult<CollectReport>] = []
        var round = 0
        var failing: [HostID: String] = [:]
        while !stop.isRequested, !Task.isCancelled {
          round += 1
          let began = ContinuousClock.now
          // Progress on a terminal for the first round (it may carry a backlog); a line per round after.
          var roundRunner = runner
          if round > 1 { roundRunner.progress = nil }
          last = await roundRunner.run(hosts, connector: pool) { session, host in
            try await CollectOperation.run(
              session: session, host: host, store: store, logPath: logPath, snapshotHost: nil, schedule: schedule,
              forks: runner.forks, totals: nil)
          }
          let line = RoundLine(round: round, results: last, seconds: (ContinuousClock.now - began).seconds)
          if json {
            OutputLock.print(try Output.jsonLine(line))
          } else {
            Terminal.writeError(line.text + "\n")
            for result in last where result.status.isFailure && failing[result.host] != result.message {
              Terminal.writeError("  \(result.host): \(result.status.rawValue): \(result.message ?? "")\n")
            }
          }
          failing = Dictionary(
            last.filter(\.status.isFailure).map { ($0.host, $0.message ?? "") }, uniquingKeysWith: { a, _ in a })
          await stop.pause(for: period - (ContinuousClock.now - began))
        }
        return last
      }
      await pool.closeAll()
      if lastRound.contains(where: \.status.isFailure) { throw ExitCode.failure }
    }

    /// Ingests the `--from-file` specs: nodes concurrently (at most `--forks` at once), each
    /// node's files one after the other in the order given (they share the node's correlator
    /// state). Reports in the order given.
    private func collectFiles(_ store: any TraceStoring) async throws {
      var byNode: [(node: HostID, files: [(index: Int, path: String)])] = []
      for (index, spec) in fromFiles.enumerated() {
        let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
        let node = HostID(parts[0])
        let path = parts.count > 1 ? parts[1] : ""
        if let at = byNode.firstIndex(where: { $0.node == node }) {
          byNode[at].files.append((index, path))
        } else {
          byNode.append((node, [(index, path)]))
        }
      }
      let pullBytes = CollectOperation.pullBytes(forks: min(fleet.forks, byNode.count))
      let perNode = await slidingWindow(
        byNode, limit: fleet.forks,
        notStarted: { node in
          node.files.map {
            ($0.index, HostResult<CollectReport>(host: node.node, status: .skipped, message: "cancelled"))
          }
        },
        { node in
          var results: [(Int, HostResult<CollectReport>)] = []
          for (index, path) in node.files {
            do {
              // Years of traditional timestamps count back from the file's last write.
              let source = LocalFileSource(node: node.node, path: path)
              let reference = source.yearReferenceMicros(nowMicros: ClockOffset.wallClockMicros())
              let zone = logUTCOffset.flatMap(TraceArguments.utcOffset) ?? 0
              let summary = try await Ingestor(store: store).collect(
                from: source,
                makeParser: { PacketLineParser(referenceMicros: reference, utcOffsetSeconds: zone) },
                clock: .zero, maxBytes: pullBytes)
              let report = CollectReport(summary, clock: .zero, path: path)
              results.append(
                (
                  index,
                  HostResult(
                    host: node.node, status: summary.lines > 0 ? .changed : .ok, message: report.line, payload: report)
                ))
            } catch {
              results.append((index, HostResult(host: node.node, status: .failed, message: "\(error)")))
            }
          }
          return results
        })
      // In the order given.
      let reports = perNode.flatMap { $0 }.sorted { $0.0 < $1.0 }.map(\.1)
      try Output.finish(
        reports, json: output.json,
        terminal: Terminal.current(environment: ProcessInfo.processInfo.environment), command: "collect")
    }
  }
}

/// One round of `collect --every`: a line on standard error, or a JSON object per line.
struct RoundLine: Encodable {
  var round: Int
  var time: String
  var seconds: Double
  var hosts: Int
  var failed: Int
  var lines: Int
  var connections: Int
  var transferredBytes: Int
  /// Lines lost on all nodes in the intervals the round settled.
  var linesLost: Int64

  init(round: Int, results: [HostResult<CollectReport>], seconds: Double) {
    self.round = round
    time = TimeFormat.rfc3339(micros: ClockOffset.wallClockMicros())
    self.seconds = seconds
    hosts = results.count
    failed = results.filter(\.status.isFailure).count
    lines = results.compactMap(\.payload).reduce(0) { $0 + $1.lines }
    connections = results.compactMap(\.payload).reduce(0) { $0 + $1.connections }
    transferredBytes = results.compactMap(\.payload).reduce(0) { $0 + $1.transferredBytes }
    linesLost = results.compactMap(\.payload).reduce(0) { $0 + ($1.linesLost ?? 0) }
    lossy = results.compactMap { result in
      result.payload.flatMap { ($0.linesLost ?? 0) > 0 ? "\($0.linesLost ?? 0) on \(result.host.name)" : nil }
    }
  }

  /// "37 on node3" per node that lost lines (in the text only).
  private var lossy: [String] = []

  private enum CodingKeys: String, CodingKey {
    case round, time, seconds, hosts, failed, lines, connections, transferredBytes, linesLost
  }

  var text: String {
    "\(time) round \(round): \(hosts - failed)/\(hosts) nodes in \(Output.decimal(seconds)) s, \(lines) lines, "
      + "\(connections) connections, \(Bytes.format(transferredBytes)) on the wire"
      + (failed > 0 ? ", \(failed) FAILED" : "")
      + (linesLost > 0 ? ", \(linesLost) LINES LOST (\(lossy.joined(separator: ", ")))" : "")
  }
}

/// What `collect` reports per node.
struct CollectReport: Codable, Sendable {
  var path: String
  var bytes: Int
  var transferredBytes: Int
  var lines: Int
  var skipped: Int
  var connections: Int
  /// Of ``connections``: pre lines without a post line, pod unknown (absent when none).
  var podUnknown: Int?
  var clockOffsetMs: Double
  var clockBoundMs: Double
  var events: [String]
  var snapshot: String?
  /// Pending pre lines the correlator dropped (absent when none).
  var droppedPending: Int?
  /// Stopped because another collect of the node was collecting it (absent when not).
  var otherCollect: Bool?
  /// Lines lost in the collect intervals this run settled (absent when the LOG rules'
  /// counters could not be read: no loss accounting).
  var linesLost: Int64?
  /// Packets the LOG rules counted in those intervals.
  var packetsCounted: Int64?
  /// The settled intervals that lost lines.
  var losses: [LossReport]?
  /// Packets counted whose lines are not judged yet (settled by a later collect).
  var unsettledPackets: Int64?
  /// Why the loss accounting began anew (rules rewritten, reboot).
  var lossRestarted: String?

  init(_ summary: CollectSummary, clock: ClockOffset, path: String) {
    self.path = path
    bytes = summary.bytes
    transferredBytes = summary.transferredBytes
    lines = summary.lines
    skipped = summary.skipped
    connections = summary.connections
    podUnknown = summary.podUnknown > 0 ? summary.podUnknown : nil
    clockOffsetMs = Double(clock.offsetMicros) / 1000
    clockBoundMs = Double(clock.boundMicros) / 1000
    events = summary.events.map(\.description)
    droppedPending = summary.droppedPending > 0 ? summary.droppedPending : nil
    otherCollect = summary.yieldedToOtherCollect ? true : nil
    node = summary.node.name
    if summary.countersRead {
      linesLost = summary.linesLost
      packetsCounted = summary.lossIntervals.reduce(0) { $0 + $1.packets }
      let lossy = summary.lossIntervals.filter { $0.lost > 0 }.map(LossReport.init)
      losses = lossy.isEmpty ? nil : lossy
      unsettledPackets = summary.unsettledPackets > 0 ? summary.unsettledPackets : nil
      lossRestarted = summary.lossEpoch
    }
  }

  /// The node, for the message of ``otherCollect``.
  private var node = ""

  private enum CodingKeys: String, CodingKey {
    case path, bytes, transferredBytes, lines, skipped, connections, podUnknown, clockOffsetMs, clockBoundMs, events,
      snapshot, droppedPending, otherCollect, linesLost, packetsCounted, losses, unsettledPackets, lossRestarted
  }

  var line: String {
    var text =
      "\(lines) lines (\(Bytes.format(bytes)), \(Bytes.format(transferredBytes)) on the wire), \(connections) connections"
    if let podUnknown { text += " (\(podUnknown) pod unknown: no post-DNAT line)" }
    if skipped > 0 { text += ", \(skipped) skipped" }
    if let droppedPending { text += ", \(droppedPending) pending pre lines dropped (too many on one source port)" }
    if let linesLost {
      if linesLost > 0 {
        text += ", \(linesLost) LINES LOST (\(packetsCounted ?? 0) packets logged, "
        text += (losses ?? []).map(\.window).joined(separator: ", ") + ")"
      } else {
        text += ", 0 lines lost"
      }
      if let unsettledPackets { text += " (\(unsettledPackets) packets' lines not judged yet)" }
      if let lossRestarted { text += "; loss accounting restarted: \(lossRestarted)" }
    }
    text +=
      ", clock \(clockOffsetMs >= 0 ? "+" : "")\(Output.decimal(clockOffsetMs))±\(Output.decimal(clockBoundMs)) ms"
    if !events.isEmpty { text += "; " + events.joined(separator: "; ") }
    if let snapshot { text += "; " + snapshot }
    if otherCollect == true { text += "; another collect is collecting node \(node): stopped here" }
    return text
  }
}

/// One collect interval that lost lines, in `collect`'s report.
struct LossReport: Codable, Sendable {
  var from: String
  var until: String
  var packets: Int64
  var lines: Int64
  var lost: Int64

  init(_ interval: LossInterval) {
    from = TimeFormat.rfc3339(micros: interval.fromMicros)
    until = TimeFormat.rfc3339(micros: interval.untilMicros)
    packets = interval.packets
    lines = interval.lines
    lost = interval.lost
  }

  var window: String { "\(lost) between \(from) and \(until)" }
}

/// `collect`'s closing line: the lines lost per node, or that none were.
enum LossSummary {
  static func make(_ results: [HostResult<CollectReport>]) -> FleetSummary? {
    let reports = results.compactMap { result in result.payload.map { (result.host.name, $0) } }
    let accounted = reports.filter { $0.1.linesLost != nil }
    guard !reports.isEmpty else { return nil }
    let lossy = accounted.filter { ($0.1.linesLost ?? 0) > 0 }
    let total = lossy.reduce(Int64(0)) { $0 + ($1.1.linesLost ?? 0) }
    let unaccounted = reports.count - accounted.count
    let blind = unaccounted > 0 ? "; \(unaccounted) node(s) without loss accounting (LOG rule counters unreadable)" : ""
    if lossy.isEmpty {
      return FleetSummary(
        text: "lines lost: none on \(accounted.count) node(s)\(blind)", alarming: unaccounted > 0,
        linesLost: accounted.isEmpty ? nil : 0)
    }
    let perNode = lossy.map { "\($0.1.linesLost ?? 0) on \($0.0)" }.joined(separator: ", ")
    return FleetSummary(
      text: "LINES LOST: \(total) (\(perNode)): traces of those intervals are incomplete; "
        + "`svctrace verify` names the likely cause\(blind)",
      alarming: true, linesLost: total)
  }
}

/// Aggregates per-node progress into the live progress line: bytes and lines so far.
final class CollectTotals: Sendable {
  private let state = Mutex<[HostID: CollectSummary]>([:])
  private let progress: ProgressReporter?

  init(progress: ProgressReporter?) { self.progress = progress }

  func update(_ host: HostID, _ summary: CollectSummary) {
    let (bytes, lines) = state.withLock { nodes -> (Int, Int) in
      nodes[host] = summary
      return (nodes.values.reduce(0) { $0 + $1.bytes }, nodes.values.reduce(0) { $0 + $1.lines })
    }
    progress?.note("collect \(Bytes.format(bytes)), \(lines) lines")
  }
}

/// Human-readable byte counts.
enum Bytes {
  static func format(_ count: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
  }
}
