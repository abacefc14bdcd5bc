import Subprocess
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A long-running local process for tests (sshd, a server), run through swift-subprocess in a task
/// of its own and stopped by ``stop()``.
///
/// The owning task runs `Subprocess.run`, which reaps the process when it exits; cancelling the
/// task makes swift-subprocess send SIGTERM, then SIGKILL after the grace period.
public final class BackgroundProcess: Sendable {
  /// The process id.
  public let pid: Int32
  private let state: State
  private let task: Task<Void, Never>

  private init(pid: Int32, state: State, task: Task<Void, Never>) {
    self.pid = pid
    self.state = state
    self.task = task
  }

  /// Starts `arguments` (the first one looked up in `PATH`, or a path); returns once it runs.
  ///
  /// Its standard input is empty and its output is discarded.
  /// - Throws: when the process cannot be started.
  public static func start(_ arguments: [String], stopGracePeriod: Duration = .seconds(2)) async throws
    -> BackgroundProcess
  {
    let state = State()
    var options = PlatformOptions()
    options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: stopGracePeriod)]
    let task = Task {
      do {
        _ = try await Subprocess.run(
          .name("env"), arguments: Arguments(arguments), platformOptions: options, input: .none, output: .sequence,
          error: .discarded
        ) { execution in
          state.started(pid: execution.processIdentifier.value)
          // Ends when the process exits (or is torn down after cancellation).
          for try await _ in execution.standardOutput {}
        }
      } catch {
        state.failed(error)
      }
      state.exited()
    }
    let pid = try await state.waitUntilStarted()
    return BackgroundProcess(pid: pid, state: state, task: task)
  }

  /// `true` until the process has exited and been reaped.
  public var isRunning: Bool { !state.hasExited }

  /// Sends SIGTERM now and lets the owning task reap the process (SIGKILL after the grace
  /// period). Does not wait; idempotent.
  public func stop() {
    if isRunning { kill(pid, SIGTERM) }
    task.cancel()
  }

  /// Stops the process and waits until it is reaped.
  public func stopAndWait() async {
    stop()
    await task.value
  }

  private final class State: Sendable {
    private struct Value {
      var pid: Int32?
      var error: (any Error)?
      var exited = false
      var waiter: CheckedContinuation<Int32, any Error>?
    }
    private let value = Mutex(Value())

    var hasExited: Bool { value.withLock { $0.exited } }

    func started(pid: Int32) {
      let waiter = value.withLock { value in
        value.pid = pid
        defer { value.waiter = nil }
        return value.waiter
      }
      waiter?.resume(returning: pid)
    }

    func failed(_ error: any Error) {
      let waiter = value.withLock { value in
        if value.pid == nil { value.error = error }
        defer { value.waiter = nil }
        return value.waiter
      }
      waiter?.resume(throwing: error)
    }

    func exited() {
      value.withLock { $0.exited = true }
    }

    func waitUntilStarted() async throws -> Int32 {
      try await withCheckedThrowingContinuation { continuation in
        let outcome: Result<Int32, any Error>? = value.withLock { value in
          if let pid = value.pid { return .success(pid) }
          if let error = value.error { return .failure(error) }
          value.waiter = continuation
          return nil
        }
        if let outcome { continuation.resume(with: outcome) }
      }
    }
  }
}
