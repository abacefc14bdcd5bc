import ArgumentParser
import Fleet
import Foundation
import Logs
import SVCTraceCore
import Store

extension SVCTrace {
  /// `svctrace stats`: how one Service's connections spread over its endpoints.
  struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Show how a Service's connections spread over its endpoints: counts, shares, skew.",
      discussion: """
        For each endpoint (pod ip:port) of the Service: connections, share, expected share and a \
        bar. The expected share assumes kube-proxy's uniform random choice among the endpoints \
        that were ready (per name snapshot) when each connection was made; without snapshots, \
        among the endpoints that got traffic. Skew is the largest |share − expected| / expected \
        (0 = perfectly even); chi-square with endpoints − 1 degrees of freedom tells skew from \
        noise (above about twice the degrees of freedom is unusual). Endpoints known to the \
        snapshots that got no connection are listed. Connections whose pod is unknown (a \
        pre-DNAT line without a post-DNAT line) are counted apart ("pod unknown", podUnknown \
        in JSON), in no endpoint's share.

        Examples:
          svctrace stats --service default/web
          svctrace stats --service 10.96.0.10:53 --since 1h --format json
          svctrace stats --service default/web --since 2026-05-16T00:00:00Z --format html --output web.html

        Exit status: 0 when the Service had connections in the period, 1 when it had none, \
        2 on usage errors.
        """)

    @Option(help: ArgumentHelp("The Service: IP[:PORT] or NAMESPACE/NAME.", valueName: "ip[:port]|ns/name"))
    var service: String

    @Option(help: ArgumentHelp("From this time on: RFC 3339 or a duration ago (10m, 2h, 7d).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Before this time: RFC 3339 or a duration ago.", valueName: "time"))
    var until: String?

    @Option(help: ArgumentHelp("table, json or html.", valueName: "format"))
    var format: StatsFormat = .table

    @Option(
      help: ArgumentHelp(
        "Write the report to this file instead of standard output (required for html).", valueName: "file"))
    var output: String?

    @OptionGroup(title: "Store") var storeOptions: StoreOptions

    func validate() throws {
      _ = try selector()
      _ = try bounds(nowMicros: 0)
      if format == .html, output == nil { throw ValidationError("--format html needs --output FILE.") }
    }

    func selector() throws -> ServiceSelector {
      switch try TraceArguments.target(service, option: "--service", allowName: true) {
      case .address(let ip, let port): .address(ip, port: port)
      case .name(let name): .name(name)
      }
    }

    func bounds(nowMicros: Int64) throws -> (Int64?, Int64?) {
      let low = try since.map { try TraceArguments.time($0, nowMicros: nowMicros) }
      let high = try until.map { try TraceArguments.time($0, nowMicros: nowMicros) }
      if let low, let high, high <= low { throw ValidationError("--until must be later than --since.") }
      return (low, high)
    }

    func run() async throws {
      let store = try await storeOptions.openExisting()
      let (low, high) = try bounds(nowMicros: ClockOffset.wallClockMicros())
      let stats = try await store.stats(service: try selector(), sinceMicros: low, untilMicros: high)
      let period = StatsReport.period(since: low, until: high)
      let text: String
      switch format {
      case .table:
        let terminal =
          output == nil
          ? Terminal.current(environment: ProcessInfo.processInfo.environment)
          : Terminal(stdoutIsTTY: false, stderrIsTTY: false, color: false)
        text = StatsReport.renderTable(stats, period: period, terminal: terminal)
      case .json: text = try Output.json(stats) + "\n"
      case .html: text = StatsReport.renderHTML(stats, period: period)
      }
      if let output {
        do {
          try text.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
          throw CommandFailure(operation: "write the report to \(output)", reason: error.localizedDescription)
        }
        Terminal.writeError("Wrote \(output)\n")
      } else {
        print(text, terminator: "")
      }
      if stats.connections + stats.podUnknown == 0 {
        Terminal.writeError("No connection to \(stats.service) in the period.\n")
        throw ExitCode.failure
      }
    }
  }
}

/// `stats --format`.
enum StatsFormat: String, ExpressibleByArgument, CaseIterable {
  case table, json, html
}

/// Renders ``ServiceStats`` for the terminal (unicode bars) and as a self-contained HTML page.
enum StatsReport {
  /// "since … until …" in words.
  static func period(since: Int64?, until: Int64?) -> String {
    switch (since, until) {
    case (nil, nil): "all stored connections"
    case (let low?, nil): "since \(TimeFormat.rfc3339(micros: low))"
    case (nil, let high?): "until \(TimeFormat.rfc3339(micros: high))"
    case (let low?, let high?): "\(TimeFormat.rfc3339(micros: low)) – \(TimeFormat.rfc3339(micros: high))"
    }
  }

  /// A bar of `fraction` × `width` cells with eighth-block precision.
  static func bar(_ fraction: Double, width: Int) -> String {
    let eighths = Int((max(0, min(1, fraction)) * Double(width * 8)).rounded())
    let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
    return String(repeating: "█", count: eighths / 8) + partial[eighths % 8]
  }

  /// How far an endpoint is from its fair share: 0 fine, 1 notable (> 25 %), 2 idle.
  static func severity(_ endpoint: EndpointStats) -> Int {
    if endpoint.connections == 0 { return 2 }
    guard endpoint.expectedShare > 0 else { return 0 }
    return abs(endpoint.share - endpoint.expectedShare) / endpoint.expectedShare > 0.25 ? 1 : 0
  }

  static func label(_ endpoint: EndpointStats) -> String {
    var text = endpoint.endpoint
    if let pod = endpoint.pod { text += " " + pod + (endpoint.node.map { "@" + $0 } ?? "") }
    return text
  }

  static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }

  /// The terminal chart: one row per endpoint, busiest first, then the summary.
  static func renderTable(_ stats: ServiceStats, period: String, terminal: Terminal) -> String {
    var out = terminal.paint("\(stats.service): \(stats.connections) connections, \(period)", .bold) + "\n"
    let labels = stats.endpoints.map(label)
    let labelWidth = labels.map(\.count).max() ?? 0
    let countWidth = String(stats.endpoints.map(\.connections).max() ?? 0).count
    let largest = max(stats.endpoints.map { max($0.share, $0.expectedShare) }.max() ?? 0, 1e-9)
    for (endpoint, text) in zip(stats.endpoints, labels) {
      let barText = bar(endpoint.share / largest, width: 30).padding(toLength: 31)
      let style: Terminal.Style = [.green, .yellow, .red][severity(endpoint)]
      let count = String(endpoint.connections)
      out +=
        text.padding(toLength: labelWidth) + "  " + terminal.paint(barText, style) + " "
        + String(repeating: " ", count: countWidth - count.count) + count + "  "
        + percent(endpoint.share).padding(toLength: 6) + "  expected " + percent(endpoint.expectedShare) + "\n"
    }
    if stats.podUnknown > 0 {
      out += "pod unknown  \(stats.podUnknown) (a pre-DNAT line without a post-DNAT line: not in the shares)\n"
    }
    out += String(
      format: "skew %.2f (max |share − expected| / expected), chi-square %.1f with %d degrees of freedom\n",
      stats.skew, stats.chiSquare, stats.degreesOfFreedom)
    let idle = stats.idleEndpoints
    if !idle.isEmpty {
      out += terminal.paint("No traffic: " + idle.map(label).joined(separator: ", "), .red) + "\n"
    }
    return out
  }

  /// A single-file HTML page: summary and a CSS bar chart, no external resources.
  static func renderHTML(_ stats: ServiceStats, period: String) -> String {
    let largest = max(stats.endpoints.map { max($0.share, $0.expectedShare) }.max() ?? 0, 1e-9)
    var rows = ""
    for endpoint in stats.endpoints {
      let width = String(format: "%.2f", endpoint.share / largest * 100)
      let expected = String(format: "%.2f", endpoint.expectedShare / largest * 100)
      let state = ["ok", "skewed", "idle"][severity(endpoint)]
      rows += """
        <tr class="\(state)"><td class="endpoint">\(endpoint.endpoint.htmlEscaped)</td>\
        <td>\((endpoint.pod ?? "").htmlEscaped)</td><td>\((endpoint.node ?? "").htmlEscaped)</td>\
        <td class="num">\(endpoint.connections)</td><td class="num">\(percent(endpoint.share))</td>\
        <td class="num">\(percent(endpoint.expectedShare))</td>\
        <td class="chart"><div class="bar" style="width:\(width)%"></div>\
        <div class="expected" style="left:\(expected)%" title="expected"></div></td></tr>

        """
    }
    let idle = stats.idleEndpoints.map { label($0).htmlEscaped }.joined(separator: ", ")
    return """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8">
      <title>svctrace stats: \(stats.service.htmlEscaped)</title>
      <style>
      body{font-family:system-ui,sans-serif;margin:2em;color:#222}
      table{border-collapse:collapse}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}
      .num{text-align:right;font-variant-numeric:tabular-nums}
      .chart{position:relative;width:320px}.bar{height:1em;background:#3a7}
      .skewed .bar{background:#d90}.idle td{color:#b22}
      .expected{position:absolute;top:.2em;bottom:.2em;border-left:2px dashed #333}
      .summary span{margin-right:2em}
      </style></head><body>
      <h1>svctrace stats: \(stats.service.htmlEscaped)</h1>
      <p class="summary"><span id="connections">\(stats.connections) connections</span>\
      <span>\(period.htmlEscaped)</span>\
      \(stats.podUnknown > 0 ? "<span id=\"pod-unknown\">\(stats.podUnknown) pod unknown</span>" : "")\
      <span id="skew">skew \(String(format: "%.2f", stats.skew))</span>\
      <span>chi-square \(String(format: "%.1f", stats.chiSquare)) (\(stats.degreesOfFreedom) degrees of freedom)</span></p>
      <table><thead><tr><th>endpoint</th><th>pod</th><th>node</th><th>connections</th><th>share</th>\
      <th>expected</th><th>bar (dashed line: expected)</th></tr></thead>
      <tbody>
      \(rows)</tbody></table>
      \(idle.isEmpty ? "" : "<p id=\"idle\">No traffic: \(idle)</p>")
      </body></html>

      """
  }
}
