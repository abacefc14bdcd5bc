import ArgumentParser
import Fleet
import Foundation
import Logs
import SVCTraceCore
import Store

extension SVCTrace {
  /// `svctrace trace`: which pod served a connection to a Service, through which node.
  struct Trace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Look up connections to Services: client → service → node → pod, with names.",
      discussion: """
        Reads the local store filled by `svctrace collect`. Every filter given must match. \
        Addresses take IP, IP:PORT or [IPv6]:PORT; Services and pods also NAMESPACE/NAME (every \
        address they had in any name snapshot). Times are RFC 3339 (2026-05-16T21:31:48Z, \
        2026-05-16T23:31:48.5+02:00) or a duration ago (10m, 2h, 7d). Results are oldest first.

        Output: a table (names as "IP:PORT (namespace/name)", pods as "name@node"), or \
        --format json (one array), jsonl (one object per line), csv (RFC 4180, a header line). \
        JSON fields: time (RFC 3339, µs, UTC), node (that did the DNAT), proto, client_ip, \
        client_port, service_ip, service_port, pod_ip, pod_port, and service, pod, pod_node, \
        pod_services when names are known, method (how the pre- and post-DNAT lines were \
        joined). --explain adds the raw log lines behind each record (an "explain" array in JSON).

        A pre-DNAT line that no post-DNAT line followed within 2 minutes is kept as a record \
        whose pod is unknown: "pod unknown" in the table, pod_ip and pod_port null in JSON \
        (empty in CSV), method pod-unknown. The packet was dropped before DNAT (e.g. \
        externalTrafficPolicy: Local on a node without a local endpoint, \
        loadBalancerSourceRanges), its post line was lost, or the node logs no post lines (the \
        old DomeOS script's logs often hold only pre-DNAT lines). --pod never matches them.

        No default time window: without --since/--until/--around every stored connection is \
        searched (months of imported logs too), oldest first, at most --max. When --since finds \
        nothing, the note on standard error says how many older connections match.

        --follow collects the fleet (-i INVENTORY, as `collect`) every --interval seconds and \
        prints new matching connections as they arrive, until Ctrl-C or --for elapses. It first \
        catches up with what the nodes logged so far (and snapshots names); only connections \
        collected after that are new. With --since/--around the stored matches are printed first.

        --max caps the output (default 1000; a note on standard error says when it cut). \
        -l/--limit is the Ansible host pattern, as in every fleet command.

        Examples:
          svctrace trace --client 10.250.0.11:43122
          svctrace trace --service default/web --since 10m
          svctrace trace --service 10.96.0.10:53 --proto udp --format csv > dns.csv
          svctrace trace --pod default/web-7d9f-x2k --around 2026-05-16T21:31:48Z --window 5s --explain
          svctrace trace --node node2 --since 2026-05-16T00:00:00Z --until 2026-05-17T00:00:00Z --format jsonl
          svctrace trace -i hosts.ini --follow --service default/web --interval 2

        Exit status: 0 when connections were found (printed), 1 when none matched, 2 on usage errors.
        """)

    @Option(help: ArgumentHelp("Client address: IP, IP:PORT or [IPv6]:PORT.", valueName: "ip[:port]"))
    var client: String?

    @Option(help: ArgumentHelp("Service address (IP[:PORT]) or NAMESPACE/NAME.", valueName: "ip[:port]|ns/name"))
    var service: String?

    @Option(help: ArgumentHelp("Pod address (IP) or NAMESPACE/NAME.", valueName: "ip|ns/name"))
    var pod: String?

    @Option(help: ArgumentHelp("Only connections DNATed by this node (inventory name).", valueName: "name"))
    var node: String?

    @Option(help: ArgumentHelp("tcp, udp or sctp.", valueName: "proto"))
    var proto: String?

    @Option(help: ArgumentHelp("From this time on: RFC 3339 or a duration ago (10m, 2h, 7d).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Before this time: RFC 3339 or a duration ago.", valueName: "time"))
    var until: String?

    @Option(
      help: ArgumentHelp("Connections within --window of this time (RFC 3339 or a duration ago).", valueName: "time"))
    var around: String?

    @Option(help: ArgumentHelp("Half-width of --around.", valueName: "duration"))
    var window: String = "2s"

    @Option(
      name: .customLong("max"),
      help: ArgumentHelp(
        "Print at most this many connections (a note on standard error says when the output was cut).",
        valueName: "n"))
    var maxConnections: Int = 1000

    @Option(help: ArgumentHelp("table, json, jsonl or csv.", valueName: "format"))
    var format: TraceFormat = .table

    @Flag(help: "Print the raw log lines behind each connection.")
    var explain = false

    @Flag(help: "Collect the fleet every --interval seconds and print new matching connections (needs -i).")
    var follow = false

    @Option(
      help: ArgumentHelp(
        "Seconds from the start of one --follow collect to the next (connections stay open: an idle round costs one exchange per node).",
        valueName: "seconds"))
    var interval: Double = 1

    @Option(
      name: .customLong("for"), help: ArgumentHelp("Stop --follow after this long (e.g. 10m).", valueName: "duration"))
    var followFor: String?

    @Option(
      help: ArgumentHelp(
        "The node log to pull with --follow. Default: svctrace_log_path, else /var/log/iptables.log.", valueName: "path"
      ))
    var logPath: String?

    @OptionGroup(title: "Store") var storeOptions: StoreOptions
    @OptionGroup(title: "Fleet (--follow)") var fleet: FleetOptions

    func validate() throws {
      if let logPath {
        do { try RemoteValue.path(logPath, variable: "--log-path") } catch { throw ValidationError(error.description) }
      }
      _ = try query(nowMicros: 0)
      guard maxConnections >= 1 else { throw ValidationError("--max must be at least 1.") }
      guard interval >= 0.2, interval <= 3600 else {
        throw ValidationError("--interval must be between 0.2 and 3600 seconds.")
      }
      if let followFor { _ = try TraceArguments.duration(followFor) }
      if !follow, followFor != nil { throw ValidationError("--for needs --follow.") }
      if follow, fleet.inventory.isEmpty, ProcessInfo.processInfo.environment["SVCTRACE_INVENTORY"] == nil {
        throw ValidationError("--follow collects the fleet: give -i INVENTORY (or set SVCTRACE_INVENTORY).")
      }
    }

    /// The store query for the filters, relative times resolved against `nowMicros`.
    func query(nowMicros: Int64) throws -> TraceQuery {
      var query = TraceQuery()
      if let client {
        guard case .address(let ip, let port) = try TraceArguments.target(client, option: "--client", allowName: false)
        else { throw ValidationError("--client takes IP[:PORT].") }
        query.client = ip
        query.clientPort = port
      }
      if let service {
        switch try TraceArguments.target(service, option: "--service", allowName: true) {
        case .address(let ip, let port):
          query.service = ip
          query.servicePort = port
        case .name(let name): query.serviceName = name
        }
      }
      if let pod {
        switch try TraceArguments.target(pod, option: "--pod", allowName: true, allowPort: false) {
        case .address(let ip, _): query.pod = ip
        case .name(let name): query.podName = name
        }
      }
      if let node {
        guard !node.isEmpty else { throw ValidationError("--node needs a node name.") }
        query.node = HostID(node)
      }
      if let proto {
        guard let parsed = IPProtocol(name: proto), IPProtocol.serviceProtocols.contains(parsed) else {
          throw ValidationError("--proto '\(proto)' is not tcp, udp or sctp.")
        }
        query.proto = parsed.number
      }
      if let around {
        guard since == nil, until == nil else {
          throw ValidationError("--around cannot be combined with --since/--until.")
        }
        let center = try TraceArguments.time(around, nowMicros: nowMicros)
        let half = try TraceArguments.duration(window)
        query.sinceMicros = center - half
        query.untilMicros = center + half + 1
      } else {
        if let since { query.sinceMicros = try TraceArguments.time(since, nowMicros: nowMicros) }
        if let until { query.untilMicros = try TraceArguments.time(until, nowMicros: nowMicros) }
        if let low = query.sinceMicros, let high = query.untilMicros, high <= low {
          throw ValidationError("--until must be later than --since.")
        }
      }
      return query
    }

    func run() async throws {
      var query = try query(nowMicros: ClockOffset.wallClockMicros())
      var printer = TracePrinter(
        format: format, explain: explain, terminal: Terminal.current(environment: ProcessInfo.processInfo.environment))
      if follow {
        try await runFollow(query: query, printer: printer)
        return
      }
      let store = try await storeOptions.openExisting()
      query.limit = maxConnections + 1
      var records = try await store.connections(matching: query)
      let cut = records.count > maxConnections
      if cut { records.removeLast(records.count - maxConnections) }
      try await printer.print(records, store: store, final: true)
      if cut {
        Terminal.writeError(
          "Showing the first \(maxConnections) connections; more matched. Narrow the filters or raise --max.\n")
      }
      // Lines lost in the searched window: a missing connection may be among them.
      let losses = LossNote.make(
        try await store.lossIntervals(sinceMicros: query.sinceMicros, untilMicros: query.untilMicros),
        node: query.node)
      if let losses {
        if format == .json || format == .jsonl {
          Terminal.writeError(try Output.jsonLine(losses.document(found: !records.isEmpty)))
        } else {
          Terminal.writeError(losses.text(found: !records.isEmpty) + "\n")
        }
      }
      if records.isEmpty {
        if losses == nil {
          Terminal.writeError(
            around == nil ? try await Self.noMatchMessage(query, store: store) : "No connection matched.\n")
        }
        throw ExitCode.failure
      }
    }

    /// The most older records counted for the note of ``noMatchMessage(_:store:)``.
    static let olderCountLimit = 1000

    /// "No connection matched.", and when `--since` left older records out, how
    /// many (at most ``olderCountLimit``, a bounded lookup) and what to do: imported logs are
    /// often older than the window one types out of habit.
    static func noMatchMessage(_ query: TraceQuery, store: any TraceStoring) async throws -> String {
      guard let since = query.sinceMicros else { return "No connection matched.\n" }
      var older = query
      older.sinceMicros = nil
      older.untilMicros = since
      older.limit = olderCountLimit + 1
      let count = try await store.connections(matching: older).count
      guard count > 0 else { return "No connection matched.\n" }
      let number = count > olderCountLimit ? "More than \(olderCountLimit)" : String(count)
      let noun = count == 1 ? "connection matches" : "connections match"
      return "No connection matched since \(TimeFormat.rfc3339(micros: since)); \(number) older \(noun): "
        + "use an earlier --since (or none: trace has no default window).\n"
    }

    private func runFollow(query: TraceQuery, printer initial: TracePrinter) async throws {
      let store = try await storeOptions.open()
      let context = try FleetContext.make(fleet, label: "trace --follow")
      let snapshotHost = CollectOperation.snapshotHost(
        context.hosts, kubectlHost: nil, kubeconfig: nil, noSnapshot: false)
      let logPath = self.logPath
      let runner = context.runner
      let hosts = context.hosts
      // One connection per node for the whole run; names re-checked every 30 s, sent when changed.
      let pool = SessionPool(context.connector)
      let schedule = snapshotHost.map { SnapshotSchedule(host: $0) }
      /// One collect of the fleet; failures go to standard error once per host and message.
      @Sendable func collectRound(snapshot: Bool, failing: inout [HostID: String]) async {
        // Progress on a terminal only while catching up: later rounds would redraw it every second.
        var roundRunner = runner
        if !snapshot { roundRunner.progress = nil }
        let results = await roundRunner.run(hosts, connector: pool) { session, host in
          try await CollectOperation.run(
            session: session, host: host, store: store, logPath: logPath, snapshotHost: snapshot ? snapshotHost : nil,
            schedule: snapshot ? nil : schedule, forks: runner.forks, totals: nil)
        }
        for result in results {
          if result.status.isFailure, failing[result.host] != result.message {
            Terminal.writeError("\(result.host): collect \(result.status.rawValue): \(result.message ?? "")\n")
            failing[result.host] = result.message ?? ""
          } else if !result.status.isFailure {
            failing[result.host] = nil
          }
          // Lines lost while following: connections in those intervals may never be printed.
          for loss in result.payload?.losses ?? [] {
            Terminal.writeError(
              "Note: \(loss.lost) lines were lost on \(result.host) between \(loss.from) and \(loss.until); "
                + "connections there may be missing (see `svctrace verify`).\n")
          }
        }
      }
      // Catch up first (with the name snapshot): what the nodes logged before now is backlog,
      // printed only for --since/--around; everything collected later is new.
      var failingAtStart: [HostID: String] = [:]
      await collectRound(snapshot: true, failing: &failingAtStart)
      var backlog = query
      let startID = try await store.latestConnectionID() ?? 0
      Terminal.writeError(
        "Following: new connections are printed as they are collected (every \(Output.decimal(interval)) s; Ctrl-C stops).\n"
      )
      var printed = 0
      var printer = initial
      if since != nil || around != nil {
        backlog.limit = maxConnections + 1
        var records = try await store.connections(matching: backlog).filter { $0.id <= startID }
        if records.count > maxConnections {
          records.removeLast(records.count - maxConnections)
          Terminal.writeError("Showing the first \(maxConnections) stored connections; more matched.\n")
        }
        try await printer.print(records, store: store, final: false)
        printed += records.count
      }
      let deadline = try followFor.map { ContinuousClock.now + .microseconds(try TraceArguments.duration($0)) }
      let interval = self.interval
      let printedNow = printed
      let failingNow = failingAtStart
      let backlogPrinter = printer
      let total: Int
      do {
        total = try await withInterruptCancellation { () async throws -> Int in
          var lastID = startID
          var printer = backlogPrinter
          var count = printedNow
          var failing = failingNow
          var roundStart = ContinuousClock.now
          while !Task.isCancelled {
            if let deadline, ContinuousClock.now >= deadline { break }
            var pause = Duration.milliseconds(Int64(interval * 1000)) - (ContinuousClock.now - roundStart)
            if let deadline { pause = Swift.min(pause, deadline - ContinuousClock.now) }
            if pause > .zero { try? await Task.sleep(for: pause) }
            if Task.isCancelled { break }
            roundStart = ContinuousClock.now
            await collectRound(snapshot: false, failing: &failing)
            var next = query
            next.afterID = lastID
            let records = try await store.connections(matching: next)
            try await printer.print(records, store: store, final: false)
            count += records.count
            lastID = records.map(\.id).reduce(lastID, max)
          }
          return count
        }
      } catch let interrupted as InterruptedExit<Int> {
        total = interrupted.value
      }
      await pool.closeAll()
      TracePrinter.finish(format: format, streamed: total)
      if total == 0 {
        Terminal.writeError("No connection matched.\n")
        throw ExitCode.failure
      }
    }
  }
}

/// `trace --format`.
enum TraceFormat: String, ExpressibleByArgument, CaseIterable {
  case table, json, jsonl, csv
}

/// A connection record with the raw lines behind it, for `--explain` in JSON.
struct ExplainedRecord: Encodable {
  var record: ConnectionRecord
  var lines: [StoredLine]?

  private enum Keys: String, CodingKey { case explain }

  private struct Line: Encodable {
    var node: String
    var stage: String
    var outcome: String
    var time: String
    var raw: String
  }

  func encode(to encoder: any Encoder) throws {
    try record.encode(to: encoder)
    guard let lines else { return }
    var container = encoder.container(keyedBy: Keys.self)
    try container.encode(
      lines.map {
        Line(
          node: $0.node, stage: $0.stage, outcome: $0.outcome, time: TimeFormat.rfc3339(micros: $0.timeMicros),
          raw: $0.raw)
      },
      forKey: .explain)
  }
}

/// Prints connection records as a table, JSON, JSON lines or CSV; streaming-friendly so
/// `--follow` can print batch after batch.
struct TracePrinter: Sendable {
  let format: TraceFormat
  let explain: Bool
  let terminal: Terminal
  private var headerDone = false
  private var jsonOpened = false
  private var jsonCount = 0

  init(format: TraceFormat, explain: Bool, terminal: Terminal) {
    self.format = format
    self.explain = explain
    self.terminal = terminal
  }

  /// CSV columns, in order.
  static let csvHeader = [
    "time", "node", "proto", "client_ip", "client_port", "service_ip", "service_port", "pod_ip", "pod_port",
    "service", "pod", "pod_node", "method",
  ]

  /// One CSV row for `record`.
  static func csvRow(_ record: ConnectionRecord) -> String {
    [
      TimeFormat.rfc3339(micros: record.timeMicros), record.node.name, IPProtocol(record.proto).name,
      record.client.description, String(record.clientPort), record.service.description, String(record.servicePort),
      record.pod?.description ?? "", record.podPort.map(String.init) ?? "", record.serviceName ?? "",
      record.podName ?? "",
      record.podNode ?? "", record.method.description,
    ].map(TraceArguments.csvField).joined(separator: ",")
  }

  /// `ip:port`, IPv6 in brackets.
  static func endpoint(_ ip: IPAddress, _ port: UInt16) -> String {
    ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
  }

  /// The POD cell of a record without a pod (``MatchMethod/podUnknown``).
  static let podUnknownText = "pod unknown (no post-DNAT line: dropped, or the line was lost)"

  /// The table cells of one record.
  static func cells(_ record: ConnectionRecord) -> [String] {
    var service = endpoint(record.service, record.servicePort)
    if let name = record.serviceName { service += " (\(name))" }
    var pod = podUnknownText
    if let ip = record.pod, let port = record.podPort {
      pod = endpoint(ip, port)
      if let name = record.podName { pod += " (\(name)\(record.podNode.map { "@" + $0 } ?? ""))" }
    }
    return [
      TimeFormat.rfc3339(micros: record.timeMicros), record.node.name, IPProtocol(record.proto).name,
      endpoint(record.client, record.clientPort), service, pod,
    ]
  }

  /// Prints `records`; `final` means nothing follows (a JSON array is closed).
  mutating func print(_ records: [ConnectionRecord], store: any TraceStoring, final: Bool) async throws {
    var explained: [ExplainedRecord] = []
    for record in records {
      explained.append(ExplainedRecord(record: record, lines: explain ? try await store.explain(record) : nil))
    }
    switch format {
    case .table: printTable(explained)
    case .csv:
      if !headerDone {
        Swift.print(Self.csvHeader.joined(separator: ","))
        headerDone = true
      }
      for item in explained { Swift.print(Self.csvRow(item.record)) }
    case .jsonl:
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      for item in explained { Swift.print(String(decoding: try encoder.encode(item), as: UTF8.self)) }
    case .json:
      if final, !jsonOpened {
        Swift.print(explained.isEmpty ? "[]" : try Output.json(explained))
        jsonOpened = true
        return
      }
      // Streaming (--follow): an array written element by element, closed by finish().
      for item in explained {
        let text = try Output.json(item).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
        Swift.print((jsonCount == 0 ? "[\n" : ",\n") + text, terminator: "")
        jsonCount += 1
      }
      jsonOpened = true
    }
    fflush(nil)
  }

  /// Closes what streamed printing left open: a JSON array of `streamed` elements.
  static func finish(format: TraceFormat, streamed: Int) {
    if format == .json { Swift.print(streamed == 0 ? "[]" : "\n]") }
  }

  private mutating func printTable(_ items: [ExplainedRecord]) {
    guard !items.isEmpty else { return }
    let header = ["TIME", "NODE", "PROTO", "CLIENT", "SERVICE", "POD"]
    let rows = items.map { Self.cells($0.record) }
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { index, cell in
        index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }
    if !headerDone {
      Swift.print(terminal.paint(line(header), .bold))
      headerDone = true
    }
    for (item, row) in zip(items, rows) {
      Swift.print(line(row))
      for stored in item.lines ?? [] {
        Swift.print(
          terminal.paint(
            "    \(stored.stage.padding(toLength: 4, withPad: " ", startingAt: 0)) \(stored.node) \(stored.raw)", .dim))
      }
    }
  }
}

/// What `trace` says of lines lost in the window it searched, per node.
struct LossNote {
  struct Node: Encodable {
    var node: String
    var lost: Int64
    var from: String
    var until: String
  }

  var nodes: [Node]

  /// `nil` when no node lost a line in the window (or on `node`, when given).
  static func make(_ intervals: [LossInterval], node: HostID?) -> LossNote? {
    var byNode: [String: (lost: Int64, from: Int64, until: Int64)] = [:]
    for interval in intervals where interval.lost > 0 && (node == nil || node?.name == interval.node) {
      let old = byNode[interval.node] ?? (0, interval.fromMicros, interval.untilMicros)
      byNode[interval.node] = (
        old.lost + interval.lost, min(old.from, interval.fromMicros), max(old.until, interval.untilMicros)
      )
    }
    guard !byNode.isEmpty else { return nil }
    return LossNote(
      nodes: byNode.sorted { $0.key < $1.key }.map {
        Node(
          node: $0.key, lost: $0.value.lost, from: TimeFormat.rfc3339(micros: $0.value.from),
          until: TimeFormat.rfc3339(micros: $0.value.until))
      })
  }

  private var phrases: String {
    nodes.map { "\($0.lost) lines were lost on \($0.node) between \($0.from) and \($0.until)" }
      .joined(separator: "; ")
  }

  func text(found: Bool) -> String {
    found
      ? "Note: in the window searched, \(phrases); connections there may be missing (see `svctrace verify`)."
      : "No record; \(phrases) (the connection may be among them; see `svctrace verify`)."
  }

  struct Document: Encodable {
    var note: String
    var linesLost: [Node]
  }

  /// The note as one JSON object (standard error, beside a JSON result on standard output).
  func document(found: Bool) -> Document { Document(note: text(found: found), linesLost: nodes) }
}
