import Fleet
import Foundation
import Rollout
import SVCTraceCore

/// The verification report for a fleet: per node, per check group, every check with its evidence.
///
/// Built by `verify` from the per-node checks, rendered as a terminal table, JSON, JUnit XML or a
/// self-contained HTML page.
struct FleetReport: Codable, Sendable {
  typealias Status = CheckResult.Status
  typealias Check = CheckResult

  struct Node: Codable, Sendable {
    var host: String
    var checks: [Check]

    var status: Status { checks.map(\.status).max() ?? .pass }

    /// The worst status within one group, or nil when the group was not checked.
    func status(of group: String) -> Status? {
      checks.filter { $0.group == group }.map(\.status).max()
    }
  }

  var generatedAt: Date
  var groups: [String]
  var nodes: [Node]

  var counts: [Status: Int] {
    var counts: [Status: Int] = [.pass: 0, .warn: 0, .fail: 0]
    for node in nodes { counts[node.status, default: 0] += 1 }
    return counts
  }

  var checkCounts: [Status: Int] {
    var counts: [Status: Int] = [.pass: 0, .warn: 0, .fail: 0]
    for check in nodes.flatMap(\.checks) { counts[check.status, default: 0] += 1 }
    return counts
  }

  /// Nodes ordered for reading: passing first, failing last (the end of the screen is what people see).
  var orderedNodes: [Node] {
    nodes.sorted { ($0.status, $0.host) < ($1.status, $1.host) }
  }

  // MARK: Terminal

  /// A row per node, a column per group; failures repeated at the bottom with what to do.
  func renderTable(terminal: Terminal) -> String {
    let hostWidth = max(4, nodes.map(\.host.count).max() ?? 4)
    let columnWidth = max(6, groups.map(\.count).max() ?? 6)
    func cell(_ status: Status?) -> String {
      let text = (status?.rawValue ?? "-").padding(toLength: columnWidth)
      switch status {
      case .pass: return terminal.paint(text, .green)
      case .warn: return terminal.paint(text, .yellow)
      case .fail: return terminal.paint(text, .red)
      case nil: return terminal.paint(text, .dim)
      }
    }
    var lines = [
      terminal.paint(
        "NODE".padding(toLength: hostWidth) + "  "
          + groups.map { $0.uppercased().padding(toLength: columnWidth) }.joined(separator: " "), .bold)
    ]
    for node in orderedNodes {
      lines.append(
        node.host.padding(toLength: hostWidth) + "  " + groups.map { cell(node.status(of: $0)) }.joined(separator: " "))
    }
    let nodeCounts = counts
    lines.append("")
    lines.append(
      terminal.paint("TOTAL \(nodes.count) nodes: ", .bold)
        + "pass=\(nodeCounts[.pass] ?? 0)  warn=\(nodeCounts[.warn] ?? 0)  fail=\(nodeCounts[.fail] ?? 0)")
    let problems = orderedNodes.flatMap { node in node.checks.filter { $0.status != .pass }.map { (node.host, $0) } }
    if !problems.isEmpty {
      lines.append("")
      for (host, check) in problems {
        let label = check.status == .fail ? terminal.paint("FAIL", .red) : terminal.paint("WARN", .yellow)
        // Evidence quotes node output: shown with its control characters escaped.
        let evidence = TerminalText.sanitize(check.evidence.firstLine)
        lines.append("\(label) \(host) \(check.group)/\(check.name): \(evidence)")
        if let fix = check.fix { lines.append("     → \(TerminalText.sanitize(fix))") }
      }
    }
    return lines.joined(separator: "\n")
  }

  // MARK: JUnit

  /// JUnit XML: one `<testsuite>` per node, one `<testcase>` per check; warnings are passing
  /// testcases with `<system-out>`, failures carry `<failure message type>`.
  func renderJUnit() -> String {
    let failures = nodes.flatMap(\.checks).filter { $0.status == .fail }.count
    let total = nodes.flatMap(\.checks).count
    var xml = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>"]
    xml.append("<testsuites name=\"svctrace verify\" tests=\"\(total)\" failures=\"\(failures)\" errors=\"0\">")
    for node in nodes {
      let nodeFailures = node.checks.filter { $0.status == .fail }.count
      xml.append(
        "  <testsuite name=\"\(node.host.xmlEscaped)\" tests=\"\(node.checks.count)\" failures=\"\(nodeFailures)\" errors=\"0\" skipped=\"0\" timestamp=\"\(ISO8601DateFormatter().string(from: generatedAt))\">"
      )
      for check in node.checks {
        let name = "\(check.group)/\(check.name)".xmlEscaped
        let open = "    <testcase classname=\"svctrace.\(node.host.xmlEscaped)\" name=\"\(name)\""
        switch check.status {
        case .pass:
          xml.append(open + "/>")
        case .warn:
          xml.append(open + ">")
          xml.append(
            "      <system-out>WARN: \((check.evidence + (check.fix.map { "\nfix: \($0)" } ?? "")).xmlEscaped)</system-out>"
          )
          xml.append("    </testcase>")
        case .fail:
          xml.append(open + ">")
          xml.append(
            "      <failure message=\"\(check.evidence.firstLine.xmlEscaped)\" type=\"\(check.group.xmlEscaped)\">\((check.evidence + (check.fix.map { "\nfix: \($0)" } ?? "")).xmlEscaped)</failure>"
          )
          xml.append("    </testcase>")
        }
      }
      xml.append("  </testsuite>")
    }
    xml.append("</testsuites>")
    return xml.joined(separator: "\n") + "\n"
  }

  // MARK: HTML

  /// A self-contained single-file HTML report: summary counts, a per-node grid, failure details.
  func renderHTML(title: String = "svctrace verify", extraSections: [String] = []) -> String {
    let nodeCounts = counts
    let checkTotals = checkCounts
    var html = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>\(title.htmlEscaped)</title>
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <style>
      body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
      h1{margin:0 0 .2em}
      .muted{color:#666}
      .summary{display:flex;gap:1em;margin:1em 0}
      .summary div{padding:.6em 1.2em;border-radius:6px;font-size:18px}
      .pass{background:#e3f6e5;color:#14591d}.warn{background:#fff4d6;color:#7a5400}.fail{background:#fde2e1;color:#8a1410}
      table{border-collapse:collapse;margin:1em 0}
      th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
      th{background:#f4f4f4}
      pre{white-space:pre-wrap;margin:0;font-size:12px}
      .bar{background:#4a7bd0;height:14px}
      </style></head><body>
      <h1>\(title.htmlEscaped)</h1>
      <p class="muted">Generated \(ISO8601DateFormatter().string(from: generatedAt)) for \(nodes.count) nodes.</p>
      <div class="summary" id="summary">
      <div class="pass">\(nodeCounts[.pass] ?? 0) nodes pass</div>
      <div class="warn">\(nodeCounts[.warn] ?? 0) nodes warn</div>
      <div class="fail">\(nodeCounts[.fail] ?? 0) nodes fail</div>
      <div class="muted">checks: \(checkTotals[.pass] ?? 0) pass, \(checkTotals[.warn] ?? 0) warn, \(checkTotals[.fail] ?? 0) fail</div>
      </div>
      <h2>Nodes</h2>
      <table id="grid"><tr><th>node</th>
      """
    html += groups.map { "<th>\($0.htmlEscaped)</th>" }.joined() + "</tr>\n"
    for node in orderedNodes {
      html += "<tr><td>\(node.host.htmlEscaped)</td>"
      for group in groups {
        let status = node.status(of: group)
        html += "<td class=\"\(status?.rawValue ?? "")\">\(status?.rawValue ?? "–")</td>"
      }
      html += "</tr>\n"
    }
    html += "</table>\n"
    let problems = orderedNodes.flatMap { node in node.checks.filter { $0.status != .pass }.map { (node.host, $0) } }
    html += "<h2>Problems</h2>\n"
    if problems.isEmpty {
      html += "<p>None: every check passed.</p>\n"
    } else {
      html +=
        "<table id=\"problems\"><tr><th>node</th><th>check</th><th>status</th><th>evidence</th><th>what to do</th></tr>\n"
      for (host, check) in problems {
        html +=
          "<tr><td>\(host.htmlEscaped)</td><td>\(check.group.htmlEscaped)/\(check.name.htmlEscaped)</td><td class=\"\(check.status.rawValue)\">\(check.status.rawValue)</td><td><pre>\(check.evidence.htmlEscaped)</pre></td><td>\((check.fix ?? "").htmlEscaped)</td></tr>\n"
      }
      html += "</table>\n"
    }
    html += extraSections.joined(separator: "\n")
    html += "</body></html>\n"
    return html
  }
}

extension String {
  var firstLine: String { split(whereSeparator: \.isNewline).first.map(String.init) ?? "" }

  var xmlEscaped: String {
    var out = ""
    for scalar in unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      default:
        // XML 1.0 forbids most control characters; drop them rather than emit invalid XML.
        if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" && scalar != "\r" { continue }
        out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  var htmlEscaped: String { xmlEscaped }

  func padding(toLength length: Int) -> String {
    count >= length ? self : self + String(repeating: " ", count: length - count)
  }
}
