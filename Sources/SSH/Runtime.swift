internal import CLibSSH2
import Dispatch
import SVCTraceCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Process-wide libssh2 state.
enum LibSSH2 {
  /// `libssh2_init(0)`, run exactly once per process before any session.
  ///
  /// > "uses a global state, and is not thread-safe -- you must make sure this function is not
  /// > called concurrently." (libssh2_init.md). A stored type property is initialised once,
  /// > even under concurrent access.
  static let initialized: Int32 = libssh2_init(0)

  /// The runtime libssh2 version, e.g. `1.10.0`.
  static var version: String {
    guard let text = libssh2_version(0) else { return "unknown" }
    return String(cString: text)
  }

  /// `true` when the runtime libssh2 predates 1.11 (no rsa-sha2 user-key signatures).
  static var signsRSAWithSHA1Only: Bool {
    let parts = version.split(separator: ".").compactMap { Int($0) }
    guard parts.count >= 2 else { return false }
    return parts[0] == 1 && parts[1] < 11
  }
}

/// A serial executor backed by a `DispatchQueue`: every job of one ``SSHConnection`` runs there,
/// never on Swift's cooperative pool (GRDB's `DispatchQueueActor` pattern).
final class DispatchQueueExecutor: SerialExecutor {
  let queue: DispatchQueue

  init(label: String) {
    queue = DispatchQueue(label: label)
  }

  func enqueue(_ job: consuming ExecutorJob) {
    let unownedJob = UnownedJob(job)
    let executor = asUnownedSerialExecutor()
    queue.async { unownedJob.runSynchronously(on: executor) }
  }

  func asUnownedSerialExecutor() -> UnownedSerialExecutor {
    UnownedSerialExecutor(ordinary: self)
  }

  func checkIsolated() {
    dispatchPrecondition(condition: .onQueue(queue))
  }
}

/// The cancellation state of one operation; set from any thread (a cancellation handler).
final class CancelToken: Sendable {
  private let flag = Atomic<Bool>(false)
  var isCancelled: Bool { flag.load(ordering: .acquiring) }
  func set() { flag.store(true, ordering: .releasing) }
}

/// A self-pipe that wakes a blocked `poll` of one connection from any thread.
///
/// `onCancel` handlers call ``fire(_:)``: it never waits for the connection's queue, so Ctrl-C
/// interrupts a call that is blocked there (the cancel path must never queue behind the blocked call).
/// The descriptors are guarded so
/// that ``close()`` cannot free them while another thread writes to them.
final class WakePipe: Sendable {
  private let fds: Mutex<(read: Int32, write: Int32)?>

  init() {
    var pair: [Int32] = [-1, -1]
    if pipe(&pair) == 0 {
      for fd in pair {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
      }
      fds = Mutex((pair[0], pair[1]))
    } else {
      fds = Mutex(nil)
    }
  }

  deinit { close() }

  /// The read end to add to a `poll` set, or -1 once closed.
  var readFD: Int32 { fds.withLock { $0?.read ?? -1 } }

  /// Marks `token` cancelled and wakes the connection.
  func fire(_ token: CancelToken) {
    token.set()
    wake()
  }

  /// Wakes whoever polls the read end.
  func wake() {
    fds.withLock { fds in
      guard let fds else { return }
      var byte: UInt8 = 1
      _ = Glibc.write(fds.write, &byte, 1)
    }
  }

  /// Empties the pipe after a wakeup.
  func drain() {
    fds.withLock { fds in
      guard let fds else { return }
      var buffer = [UInt8](repeating: 0, count: 64)
      while buffer.withUnsafeMutableBytes({ Glibc.read(fds.read, $0.baseAddress, $0.count) }) > 0 {}
    }
  }

  /// Closes both ends. Idempotent.
  func close() {
    fds.withLock { fds in
      guard let current = fds else { return }
      _ = Glibc.close(current.read)
      _ = Glibc.close(current.write)
      fds = nil
    }
  }
}

/// Why a wait on the socket ended without the socket becoming ready.
enum WaitInterruption: Error {
  case timeout
  case cancelled
  case pollFailed(Int32)
  /// Nothing arrived from the server for this long although keepalives were sent.
  case connectionLost(Duration)
}

/// Waits until `fd` is ready for `events`, the deadline passes, or `token` is cancelled.
///
/// Blocks the calling thread: only ever called on a connection's own queue.
/// - Returns: the socket's `revents` (`POLLIN`, `POLLOUT`, `POLLHUP`…).
/// - Throws: ``WaitInterruption``.
@available(*, noasync)
@discardableResult
func waitForSocket(
  _ fd: Int32, events: Int16, deadline: ContinuousClock.Instant?, token: CancelToken?, wake: WakePipe?
) throws(WaitInterruption) -> Int16 {
  while true {
    if let token, token.isCancelled { throw .cancelled }
    var timeoutMS: Int32 = -1
    if let deadline {
      let remaining = ContinuousClock.now.duration(to: deadline)
      if remaining <= .zero { throw .timeout }
      timeoutMS = remaining.pollMilliseconds
    }
    var fds = [pollfd(fd: fd, events: events, revents: 0)]
    let wakeFD = (token != nil ? wake?.readFD : nil) ?? -1
    if wakeFD >= 0 { fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)) }
    let rc = poll(&fds, nfds_t(fds.count), timeoutMS)
    if rc < 0 {
      if errno == EINTR { continue }
      throw .pollFailed(errno)
    }
    if fds.count > 1, fds[1].revents != 0 {
      wake?.drain()
      if let token, token.isCancelled { throw .cancelled }
    }
    if fds[0].revents != 0 { return fds[0].revents }
  }
}
