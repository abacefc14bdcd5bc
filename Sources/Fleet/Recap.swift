import SVCTraceCore

/// The per-host summary printed at the end of every fleet command.
///
/// One row per host (status, time, message), totals last, then the failed and unreachable hosts
/// again with their reasons so they cannot be missed. Messages often quote remote output: their
/// control characters are shown escaped (``TerminalText``).
public struct Recap<Payload: Sendable> {
  public var results: [HostResult<Payload>]
  public var terminal: Terminal

  public init(results: [HostResult<Payload>], terminal: Terminal) {
    self.results = results
    self.terminal = terminal
  }

  /// Counts per status, every status present (zeros included).
  public var totals: [HostStatus: Int] {
    var counts = Dictionary(uniqueKeysWithValues: HostStatus.allCases.map { ($0, 0) })
    for result in results { counts[result.status, default: 0] += 1 }
    return counts
  }

  /// `true` when every host ended ok or changed.
  public var allSucceeded: Bool { results.allSatisfy { !$0.status.isFailure } }

  /// The recap as text, ready to print.
  public func render(title: String = "RECAP") -> String {
    var lines: [String] = []
    let nameWidth = max(4, results.map(\.host.name.count).max() ?? 4)
    lines.append(terminal.paint(title, .bold))
    for result in results {
      let name = result.host.name.padding(toLength: nameWidth)
      let status = paint(result.status, result.status.rawValue.padding(toLength: 11))
      let time = String(format1: result.seconds) + "s"
      var line = "  \(name)  \(status) \(time.padding(toLength: 7))"
      if let message = result.message, !message.isEmpty { line += "  " + TerminalText.sanitize(firstLine(message)) }
      lines.append(line)
    }
    let counts = totals
    let summary = HostStatus.allCases.map { "\($0.rawValue)=\(counts[$0] ?? 0)" }.joined(separator: "  ")
    lines.append("")
    lines.append(terminal.paint("TOTAL \(results.count) hosts: ", .bold) + summary)
    let bad = results.filter { $0.status == .failed || $0.status == .unreachable }
    if !bad.isEmpty {
      lines.append("")
      lines.append(terminal.paint("\(bad.count) host(s) need attention:", .red))
      for result in bad {
        let message = TerminalText.sanitize(result.message ?? "")
        lines.append("  \(paint(result.status, result.status.rawValue)) \(result.host): \(message)")
      }
    }
    return lines.joined(separator: "\n")
  }

  private func paint(_ status: HostStatus, _ text: String) -> String {
    switch status {
    case .ok: return terminal.paint(text, .green)
    case .changed: return terminal.paint(text, .yellow)
    case .failed, .unreachable: return terminal.paint(text, .red)
    case .skipped: return terminal.paint(text, .dim)
    }
  }

  private func firstLine(_ text: String) -> String {
    let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
    return line.count > 140 ? String(line.prefix(139)) + "…" : line
  }
}

extension String {
  /// Pads with spaces on the right to at least `length` characters.
  func padding(toLength length: Int) -> String {
    count >= length ? self : self + String(repeating: " ", count: length - count)
  }

  /// Formats a non-negative number with one decimal, without Foundation.
  init(format1 value: Double) {
    let tenths = Int((value * 10).rounded())
    self = "\(tenths / 10).\(tenths % 10)"
  }
}
