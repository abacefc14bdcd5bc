public import SVCTraceCore
import Subprocess
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A long-running local process for tests (sshd, a server, a command to interrupt), run through
/// swift-subprocess in a task of its own.
///
/// The owning task runs `Subprocess.run`, which reaps the process when it exits; ``wait()`` awaits
/// that. Signals go through swift-subprocess's execution handle (a pidfd on Linux) while the
/// process's output is open, so they never reach a recycled process id. Cancelling the task, as
/// ``stop()`` does, makes swift-subprocess send SIGTERM, then SIGKILL after the grace period.
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
  /// Its standard input is empty. Its standard output and error are read as they come and kept
  /// (up to `outputLimit` bytes each) when `collectOutput` is set, dropped otherwise.
  /// - Throws: when the process cannot be started.
  public static func start(
    _ arguments: [String], collectOutput: Bool = false, outputLimit: Int = LocalProcess.defaultOutputLimit,
    stopGracePeriod: Duration = .seconds(2)
  ) async throws -> BackgroundProcess {
    let state = State(command: arguments, keep: collectOutput ? outputLimit : 0)
    var options = PlatformOptions()
    options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: stopGracePeriod)]
    let task = Task {
      do {
        let result = try await Subprocess.run(
          .name("env"), arguments: Arguments(arguments), platformOptions: options, input: .none, output: .sequence,
          error: .sequence
        ) { execution in
          state.started(pid: execution.processIdentifier.value) { signal in
            (try? execution.send(signal: Signal(rawValue: signal))) != nil
          }
          // The execution handle is valid only inside this closure.
          defer { state.outputClosed() }
          // Ends when the process has closed both (it exited, or was torn down after cancellation).
          async let errors: Void = state.read(execution.standardError, into: .stderr)
          try await state.read(execution.standardOutput, into: .stdout)
          try await errors
        }
        state.exited(result.terminationStatus)
      } catch {
        state.failed(error)
      }
    }
    let pid = try await state.waitUntilStarted()
    return BackgroundProcess(pid: pid, state: state, task: task)
  }

  /// `true` until the process has exited and been reaped.
  public var isRunning: Bool { !state.hasExited }

  /// What the process wrote to standard output so far (empty unless started with `collectOutput`).
  public var standardOutputSoFar: [UInt8] { state.output(.stdout) }

  /// What the process wrote to standard error so far (empty unless started with `collectOutput`).
  public var standardErrorSoFar: [UInt8] { state.output(.stderr) }

  /// Sends `signal` (`SIGINT`, `SIGKILL`…) to the process.
  ///
  /// - Returns: `false` when it was not sent: the process has closed its output (it is exiting, or
  ///   gone) or the signal could not be delivered.
  @discardableResult
  public func signal(_ signal: Int32) -> Bool {
    state.send(signal)
  }

  /// Waits until the process has exited and been reaped.
  ///
  /// - Returns: its exit status (or `-1` and the signal number as `exitSignal` when a signal
  ///   ended it) and the output collected.
  /// - Throws: ``LocalProcess/Failure`` when it could not be run to its end or wrote more than
  ///   the output limit.
  public func wait() async throws -> CommandResult {
    await task.value
    return try state.result()
  }

  /// Sends SIGTERM now and lets the owning task reap the process (SIGKILL after the grace
  /// period). Does not wait; idempotent.
  public func stop() {
    signal(SIGTERM)
    task.cancel()
  }

  /// Stops the process and waits until it is reaped.
  public func stopAndWait() async {
    stop()
    await task.value
  }

  private final class State: Sendable {
    enum Stream { case stdout, stderr }

    private struct Value {
      var pid: Int32?
      var sender: (@Sendable (Int32) -> Bool)?
      var error: (any Error)?
      var exited = false
      var status: TerminationStatus?
      var stdout: [UInt8] = []
      var stderr: [UInt8] = []
      var overflow = false
      var waiter: CheckedContinuation<Int32, any Error>?
    }
    private let value = Mutex(Value())
    private let command: [String]
    /// How many bytes of each stream to keep (0: none).
    private let keep: Int

    init(command: [String], keep: Int) {
      self.command = command
      self.keep = keep
    }

    var hasExited: Bool { value.withLock { $0.exited } }

    func started(pid: Int32, sender: @escaping @Sendable (Int32) -> Bool) {
      let waiter = value.withLock { value in
        value.pid = pid
        value.sender = sender
        defer { value.waiter = nil }
        return value.waiter
      }
      waiter?.resume(returning: pid)
    }

    /// Sends under the lock, so that no signal goes out after ``outputClosed()``.
    func send(_ signal: Int32) -> Bool {
      value.withLock { $0.sender?(signal) ?? false }
    }

    func outputClosed() {
      value.withLock { $0.sender = nil }
    }

    func read(_ sequence: SubprocessOutputSequence, into stream: Stream) async throws {
      for try await buffer in sequence where keep > 0 {
        buffer.withUnsafeBytes { bytes in
          value.withLock { value in
            let count = stream == .stdout ? value.stdout.count : value.stderr.count
            let room = max(0, keep - count)
            if bytes.count > room { value.overflow = true }
            switch stream {
            case .stdout: value.stdout.append(contentsOf: bytes.prefix(room))
            case .stderr: value.stderr.append(contentsOf: bytes.prefix(room))
            }
          }
        }
      }
    }

    func output(_ stream: Stream) -> [UInt8] {
      value.withLock { stream == .stdout ? $0.stdout : $0.stderr }
    }

    func exited(_ status: TerminationStatus) {
      value.withLock { value in
        value.status = status
        value.exited = true
      }
    }

    func failed(_ error: any Error) {
      let waiter = value.withLock { value in
        value.error = error
        value.exited = true
        defer { value.waiter = nil }
        return value.waiter
      }
      waiter?.resume(throwing: error)
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

    func result() throws -> CommandResult {
      try value.withLock { value in
        if let error = value.error { throw LocalProcess.Failure(command: command, message: "\(error)") }
        if value.overflow {
          throw LocalProcess.Failure(command: command, message: "more than \(keep) bytes of output")
        }
        switch value.status {
        case .exited(let status):
          return CommandResult(exitStatus: status, stdout: value.stdout, stderr: value.stderr)
        case .signaled(let signal):
          return CommandResult(exitStatus: -1, exitSignal: "\(signal)", stdout: value.stdout, stderr: value.stderr)
        case nil:
          throw LocalProcess.Failure(command: command, message: "no exit status")
        }
      }
    }
  }
}
