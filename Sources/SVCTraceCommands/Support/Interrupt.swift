import Dispatch
import Fleet
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Runs `body` in a task that a Ctrl-C (SIGINT) or SIGTERM cancels; a second Ctrl-C exits at once.
///
/// Cancellation reaches every host task of the fan-out, which close their sessions; hosts not
/// yet started are reported `skipped`. The command then exits 130 after printing its recap.
func withInterruptCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
  let task = Task { try await body() }
  signal(SIGINT, SIG_IGN)
  signal(SIGTERM, SIG_IGN)
  let queue = DispatchQueue(label: "svctrace.signals")
  let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
  let seen = InterruptState()
  for source in sources {
    source.setEventHandler {
      if seen.interrupt() {
        Terminal.writeError("\nInterrupted again: exiting now.\n")
        exit(130)
      }
      Terminal.writeError("\nInterrupted: cancelling, closing sessions (Ctrl-C again to quit at once)…\n")
      task.cancel()
    }
    source.resume()
  }
  defer {
    for source in sources { source.cancel() }
    signal(SIGINT, SIG_DFL)
    signal(SIGTERM, SIG_DFL)
  }
  let value = try await task.value
  if seen.wasInterrupted { throw InterruptedExit(value: value) }
  return value
}

/// An interrupted run that finished its cleanup: `svctrace` exits 130 for it.
protocol InterruptedRun: Error {}

/// Thrown after an interrupted run finished its cleanup; carries what the run produced.
struct InterruptedExit<Value: Sendable>: InterruptedRun {
  var value: Value
}

/// How many interrupts arrived; the signal handlers and the waiting task share it.
private final class InterruptState: Sendable {
  private let count = Atomic<Int>(0)

  /// Records an interrupt; `true` when this is the second one.
  func interrupt() -> Bool {
    count.add(1, ordering: .sequentiallyConsistent).newValue > 1
  }
  var wasInterrupted: Bool { count.load(ordering: .sequentiallyConsistent) > 0 }
}

/// How the repeating commands (`collect --every`, `trace --follow`) stop: the first Ctrl-C or
/// SIGTERM asks the loop to stop once the round in progress has committed; a second one cancels
/// that round (nothing committed is lost: cursors move only with their data); a third exits at
/// once.
final class StopRequest: Sendable {
  private let count = Atomic<Int>(0)

  var isRequested: Bool { count.load(ordering: .sequentiallyConsistent) > 0 }

  /// Records a signal; returns how many arrived.
  fileprivate func signal() -> Int { count.add(1, ordering: .sequentiallyConsistent).newValue }

  /// Sleeps for `duration`, or less when a stop is requested meanwhile.
  func pause(for duration: Duration) async {
    let end = ContinuousClock.now + duration
    while !isRequested, !Task.isCancelled {
      let left = end - ContinuousClock.now
      if left <= .zero { return }
      try? await Task.sleep(for: Swift.min(left, .milliseconds(100)))
    }
  }
}

/// Runs a repeating `body` that checks `stop` between rounds (see ``StopRequest``).
func withGracefulStop<T: Sendable>(_ body: @escaping @Sendable (StopRequest) async throws -> T) async throws -> T {
  let stop = StopRequest()
  let task = Task { try await body(stop) }
  signal(SIGINT, SIG_IGN)
  signal(SIGTERM, SIG_IGN)
  let queue = DispatchQueue(label: "svctrace.signals")
  let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
  for source in sources {
    source.setEventHandler {
      switch stop.signal() {
      case 1: Terminal.writeError("\nStopping after this round (Ctrl-C again to cancel it)…\n")
      case 2:
        Terminal.writeError("\nCancelling the round: closing sessions (Ctrl-C again to quit at once)…\n")
        task.cancel()
      default:
        Terminal.writeError("\nExiting now.\n")
        exit(130)
      }
    }
    source.resume()
  }
  defer {
    for source in sources { source.cancel() }
    signal(SIGINT, SIG_DFL)
    signal(SIGTERM, SIG_DFL)
  }
  return try await task.value
}
