import SVCTraceCore
import Synchronization

/// A live one-line progress display on standard error (TTY only; silent when piped).
///
/// Shows done/total, the counts so far and which hosts are in flight:
/// `[ 12/20] ok 9 changed 2 failed 1 · running node13 node14 …`
public final class ProgressReporter: Sendable {
  private struct State {
    var total = 0
    var done = 0
    var counts: [HostStatus: Int] = [:]
    var running: [HostID] = []
    var label = ""
  }

  private let state = Mutex(State())
  private let enabled: Bool
  private let terminal: Terminal

  /// - Parameters:
  ///   - label: the operation's name, shown first (`install`, `ping`).
  ///   - terminal: where and how to draw; nothing is drawn unless stderr is a TTY.
  public init(label: String, terminal: Terminal) {
    self.enabled = terminal.stderrIsTTY
    self.terminal = terminal
    state.withLock { $0.label = label }
  }

  func start(total: Int) {
    state.withLock { $0.total = total }
    redraw()
  }

  func hostStarted(_ host: HostID) {
    state.withLock { $0.running.append(host) }
    redraw()
  }

  func hostFinished(_ host: HostID, status: HostStatus) {
    state.withLock {
      $0.running.removeAll { $0 == host }
      $0.done += 1
      $0.counts[status, default: 0] += 1
    }
    redraw()
  }

  /// Updates the label (e.g. bytes transferred during a collect).
  public func note(_ label: String) {
    state.withLock { $0.label = label }
    redraw()
  }

  func finish() {
    guard enabled else { return }
    Terminal.writeError("\r\u{1B}[2K")
  }

  private func redraw() {
    guard enabled else { return }
    let line = state.withLock { s -> String in
      let width = String(s.total).count
      let done = String(repeating: " ", count: max(0, width - String(s.done).count)) + String(s.done)
      var parts = ["\(s.label) [\(done)/\(s.total)]"]
      for status in HostStatus.allCases where (s.counts[status] ?? 0) > 0 {
        parts.append("\(status.rawValue) \(s.counts[status] ?? 0)")
      }
      if !s.running.isEmpty {
        let shown = s.running.prefix(4).map(\.name).joined(separator: " ")
        parts.append("· running \(shown)\(s.running.count > 4 ? " …" : "")")
      }
      return parts.joined(separator: " ")
    }
    Terminal.writeError("\r\u{1B}[2K" + String(line.prefix(160)))
  }
}
