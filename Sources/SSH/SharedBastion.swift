internal import CLibSSH2
import Logging
import SVCTraceCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

// MARK: Pool

/// The bastions of one run: one connection per distinct ProxyJump chain, shared by every node
/// reached through it.
///
/// Each node connected through a bastion gets its own direct-tcpip channel on the bastion's one
/// connection (one bastion login per run, not one per node: sshd's `MaxStartups` refuses
/// concurrent logins beyond 10 by default). A multi-hop chain shares each hop the same way: the
/// inner bastion's connection is itself a channel of the outer one. Keyed by the hop's
/// ``SSHTarget`` (its own chain included). Set it as ``SSHOptions/bastions`` for every connection
/// of a run and call ``closeIdle()`` or ``close()`` when the run ends; without one,
/// ``SSHConnection/connect(_:options:logger:)`` uses a private pool whose bastions close with
/// their last user.
public final class BastionPool: Sendable {
  private struct Entry: Sendable {
    let id: Int
    let hop: SSHTarget
    let bastion: Task<SharedBastion, any Error>
  }

  private let entries = Mutex<(list: [Entry], nextID: Int)>(([], 0))
  /// Closes a bastion as soon as its last tunnel is released (private pools).
  let closesIdleBastions: Bool

  /// Creates an empty pool whose bastions stay open until ``closeIdle()`` or ``close()``.
  public init() { closesIdleBastions = false }

  init(closesIdleBastions: Bool) { self.closesIdleBastions = closesIdleBastions }

  /// Opens a tunnel to `target` through `hop`, connecting to the bastion first when no live
  /// connection to it exists in the pool.
  ///
  /// - Throws: ``RemoteError`` attributed to `target.host`, naming the bastion.
  func openTunnel(through hop: SSHTarget, to target: SSHTarget, options: SSHOptions, logger: Logger)
    async throws -> BastionTunnel
  {
    while true {
      let (entry, created) = entry(for: hop, options: options, logger: logger)
      let bastion: SharedBastion
      do {
        bastion = try await entry.bastion.value
      } catch let error as RemoteError {
        remove(entry.id)
        // Report the failure against the host the caller asked for, naming the bastion.
        throw RemoteError(
          host: target.host, operation: error.operation, kind: error.kind,
          message: "via bastion \(hop.host) (\(hop.hostname):\(hop.port)): \(error.message)")
      } catch {
        remove(entry.id)
        throw error
      }
      guard bastion.acquire() else {
        // Lost or closed since: replace it, unless it failed right now for this very caller.
        remove(entry.id)
        if created, let reason = bastion.lostReason {
          throw RemoteError(
            host: target.host, operation: "connect", kind: .unreachable,
            message: "bastion \(hop.host) (\(hop.hostname):\(hop.port)): \(reason)")
        }
        continue
      }
      do {
        let fd = try await bastion.open(to: target, timeout: options.connectTimeout)
        return BastionTunnel(fd: fd, bastion: bastion, pool: self)
      } catch {
        await release(bastion)
        throw error
      }
    }
  }

  /// The pool entry for `hop`, starting its connection when there is none.
  private func entry(for hop: SSHTarget, options: SSHOptions, logger: Logger) -> (Entry, created: Bool) {
    entries.withLock { state in
      if let existing = state.list.first(where: { $0.hop == hop }) { return (existing, false) }
      state.nextID += 1
      let id = state.nextID
      let task = Task<SharedBastion, any Error> {
        let connection = try await SSHConnection.connect(hop, options: options, logger: logger)
        return SharedBastion(connection: connection, entryID: id)
      }
      let entry = Entry(id: id, hop: hop, bastion: task)
      state.list.append(entry)
      return (entry, true)
    }
  }

  private func remove(_ id: Int) {
    entries.withLock { $0.list.removeAll { $0.id == id } }
  }

  /// Gives a tunnel's use of `bastion` back; closes the bastion when idle in a private pool.
  func release(_ bastion: SharedBastion) async {
    bastion.release()
    guard closesIdleBastions, bastion.retireIfIdle() else { return }
    remove(bastion.entryID)
    await bastion.close()
  }

  /// Closes every bastion no node uses any more (end of a fan-out); the pool stays usable.
  public func closeIdle() async {
    await close(onlyIdle: true)
  }

  /// Closes every bastion, innermost hop first; tunnels still open through them fail.
  public func close() async {
    await close(onlyIdle: false)
  }

  private func close(onlyIdle: Bool) async {
    let current = entries.withLock { $0.list }
    // An inner hop's connection is a tunnel of the outer one: close longer chains first.
    for entry in current.sorted(by: { $0.hop.proxyJump.count > $1.hop.proxyJump.count }) {
      guard let bastion = try? await entry.bastion.value else {
        remove(entry.id)
        continue
      }
      guard !onlyIdle || bastion.retireIfIdle() else { continue }
      remove(entry.id)
      await bastion.close()
    }
  }
}

extension BastionPool: CustomStringConvertible {
  public var description: String { "BastionPool(\(entries.withLock { $0.list.count }) bastions)" }
}

/// One node's use of a shared bastion: the local end of its socketpair and the lease to release.
struct BastionTunnel: Sendable {
  /// The socketpair end the node's session runs over (owned by that session once started).
  let fd: Int32
  let bastion: SharedBastion
  let pool: BastionPool

  /// Why the bastion connection was lost, if it was.
  var lostReason: String? { bastion.lostReason }

  /// Gives the bastion back (after the node's session closed its end).
  func release() async { await pool.release(bastion) }
}

// MARK: Shared bastion

/// A request to open a direct-tcpip channel, completed by the bastion's loop.
final class TunnelRequest: Sendable {
  let target: HostID
  let hostname: String
  let port: Int
  let deadline: ContinuousClock.Instant
  private let continuation = Mutex<(waiting: CheckedContinuation<Int32, any Error>?, done: Bool)>((nil, false))

  init(target: SSHTarget, deadline: ContinuousClock.Instant) {
    self.target = target.host
    hostname = target.hostname
    port = target.port
    self.deadline = deadline
  }

  /// Stores the continuation; `false` when the request was already completed (cancelled).
  func wait(_ waiting: CheckedContinuation<Int32, any Error>) -> Bool {
    continuation.withLock { state in
      if state.done { return false }
      state.waiting = waiting
      return true
    }
  }

  /// `true` once delivered, failed or cancelled.
  var isDone: Bool { continuation.withLock { $0.done } }

  /// Completes the request; `false` when it was already completed (the result is then unused).
  @discardableResult
  func complete(_ result: Result<Int32, RemoteError>) -> Bool {
    let waiting = continuation.withLock { state -> CheckedContinuation<Int32, any Error>?? in
      if state.done { return .none }
      state.done = true
      defer { state.waiting = nil }
      return .some(state.waiting)
    }
    guard case .some(let pending) = waiting else { return false }
    pending?.resume(with: result.mapError { $0 as any Error })
    return true
  }
}

/// One connection to a bastion whose channels carry the sessions of many nodes.
///
/// A single loop on the bastion connection's queue serves every tunnel: it polls the session
/// socket, every socketpair end and a wake pipe, and moves data with non-blocking libssh2 calls.
/// Because that loop occupies the queue, new channels are requested through a mutex-protected
/// list and the wake pipe, opened inside the loop, and handed back through a continuation.
final class SharedBastion: Sendable {
  let connection: SSHConnection
  /// Its entry in the pool.
  let entryID: Int
  /// The bastion itself (its chain included).
  var hop: SSHTarget { connection.target }
  /// Wakes the loop: new requests, stop.
  let wake = WakePipe()

  struct State {
    var requests: [TunnelRequest] = []
    var users = 0
    var stopping = false
    var lost: String?
    /// Set when the loop ended; no new users are accepted.
    var ended = false
  }

  let state = Mutex(State())
  private let loop = Mutex<Task<Void, Never>?>(nil)

  init(connection: SSHConnection, entryID: Int) {
    self.connection = connection
    self.entryID = entryID
    let task = Task { [self] in
      await connection.runBastionLoop(self)
      await connection.close()
    }
    loop.withLock { $0 = task }
  }

  /// Counts one more user; `false` when the bastion is lost or closing.
  func acquire() -> Bool {
    state.withLock { state in
      guard !state.ended, !state.stopping, state.lost == nil else { return false }
      state.users += 1
      return true
    }
  }

  /// Counts one user less.
  func release() {
    state.withLock { $0.users = max(0, $0.users - 1) }
  }

  /// Marks the bastion as closing when nobody uses it; `true` if it was idle.
  func retireIfIdle() -> Bool {
    state.withLock { state in
      guard state.users == 0 else { return false }
      state.stopping = true
      return true
    }
  }

  /// Why the connection was lost, if it was.
  var lostReason: String? { state.withLock { $0.lost } }

  var isStopping: Bool { state.withLock { $0.stopping } }

  /// Asks the loop for a direct-tcpip channel to `target` and returns the socketpair end the
  /// node's session is to use.
  /// - Throws: ``RemoteError`` attributed to `target.host`.
  func open(to target: SSHTarget, timeout: Duration) async throws -> Int32 {
    let request = TunnelRequest(target: target, deadline: ContinuousClock.now + timeout)
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        guard request.wait(continuation) else {
          continuation.resume(throwing: cancelled(request))
          return
        }
        let refused = state.withLock { state -> String? in
          if let lost = state.lost { return lost }
          if state.ended || state.stopping { return "the bastion connection is closing" }
          state.requests.append(request)
          return nil
        }
        if let refused {
          request.complete(.failure(lostError(for: target.host, reason: refused)))
        } else {
          wake.wake()
        }
      }
    } onCancel: {
      if request.complete(.failure(cancelled(request))) { wake.wake() }
    }
  }

  private func cancelled(_ request: TunnelRequest) -> RemoteError {
    RemoteError(host: request.target, operation: "connect", kind: .cancelled, message: "cancelled")
  }

  /// The error a node sees when the bastion connection it goes through is gone.
  func lostError(for host: HostID, reason: String, operation: String = "connect") -> RemoteError {
    RemoteError(
      host: host, operation: operation, kind: operation == "connect" ? .unreachable : .connectionLost,
      message: "the connection to bastion \(hop.host) (\(hop.hostname):\(hop.port)) was lost: \(reason)")
  }

  /// Takes the requests queued for the loop.
  func takeRequests() -> [TunnelRequest] {
    state.withLock { state in
      defer { state.requests = [] }
      return state.requests
    }
  }

  /// Records why the connection broke (the first reason wins).
  func markLost(_ reason: String) {
    state.withLock { state in
      if state.lost == nil { state.lost = reason }
    }
  }

  /// Called by the loop when it ends: fails what is still queued.
  func loopEnded(lost reason: String?) {
    let queued = state.withLock { state -> [TunnelRequest] in
      state.ended = true
      if let reason, state.lost == nil { state.lost = reason }
      defer { state.requests = [] }
      return state.requests
    }
    for request in queued {
      request.complete(.failure(lostError(for: request.target, reason: reason ?? "the bastion connection closed")))
    }
  }

  /// Stops the loop and closes the bastion connection. Idempotent.
  func close() async {
    state.withLock { $0.stopping = true }
    wake.wake()
    let task = loop.withLock { $0 }
    await task?.value
  }
}

// MARK: The loop

/// `POLLRDHUP` (Linux, `_GNU_SOURCE`, not imported): the peer shut down its writing side.
private let pollReadHangup: Int16 = 0x2000

/// Which libssh2 call is under way: a call that returned `EAGAIN` with a packet half sent must be
/// the next one to send (libssh2 answers any other with `LIBSSH2_ERROR_BAD_USE`).
private enum Call: Equatable {
  case open
  case read(Int)
  case write(Int)
  case eof(Int)
  case free(Int)
}

/// One tunnel as the loop sees it; confined to the bastion's queue.
private final class Tunnel {
  enum Phase { case open, freeing }
  let id: Int
  let target: HostID
  let channel: ChannelHandle
  var localFD: Int32
  var phase = Phase.open
  /// channel → socketpair: at most one read's worth, so a full socketpair stops reading the
  /// channel and its SSH window closes.
  var toLocal: [UInt8] = []
  var toLocalOffset = 0
  /// socketpair → channel.
  var toRemote: [UInt8] = []
  var toRemoteOffset = 0
  var localEOF = false
  var channelEOF = false
  var eofSent = false
  var localWriteShut = false
  var freeDeadline: ContinuousClock.Instant?

  init(id: Int, target: HostID, channel: ChannelHandle, localFD: Int32) {
    self.id = id
    self.target = target
    self.channel = channel
    self.localFD = localFD
  }

  var toLocalPending: Bool { toLocalOffset < toLocal.count }
  var toRemotePending: Bool { toRemoteOffset < toRemote.count }

  func closeLocal() {
    if localFD >= 0 { _ = Glibc.close(localFD) }
    localFD = -1
  }
}

/// The state of one run of ``SSHConnection/runBastionLoop(_:)``.
private final class BastionLoop {
  let raw: RawSession
  let session: SessionHandle
  let mux: SharedBastion
  let logger: Logger
  var tunnels: [Tunnel] = []
  var nextID = 0
  var pending: [TunnelRequest] = []
  var inFlight: TunnelRequest?
  /// The call that left a packet half sent, if any.
  var blocked: Call?
  var rotation = 0
  var buffer = [UInt8](repeating: 0, count: 32 * 1024)
  /// Set when the session broke: every tunnel fails with it.
  var lost: String?
  // Per pass:
  var progress = false
  var sessionEvents: Int16 = 0

  init(raw: RawSession, session: SessionHandle, mux: SharedBastion, logger: Logger) {
    self.raw = raw
    self.session = session
    self.mux = mux
    self.logger = logger
  }

  /// `true` when `call` may run now: nothing is half sent, or `call` is what is.
  func may(_ call: Call) -> Bool { blocked == nil || blocked == call }

  /// Interprets a libssh2 return code: `nil` after `EAGAIN` (recording what to wait for).
  func settle(_ call: Call, _ rc: Int) -> Int? {
    if rc == Int(LIBSSH2_ERROR_EAGAIN) || (rc == Int(LIBSSH2_ERROR_BAD_USE) && blocked == nil) {
      let directions = libssh2_session_block_directions(raw)
      if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 || rc == Int(LIBSSH2_ERROR_BAD_USE) {
        blocked = call
        sessionEvents |= Int16(POLLOUT)
      } else if blocked == call {
        blocked = nil  // its packet went out; now it waits for the server like any other call
      }
      if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 || directions == 0 { sessionEvents |= Int16(POLLIN) }
      return nil
    }
    if blocked == call { blocked = nil }
    return rc
  }

  /// libssh2's last error message.
  func lastError(_ rc: Int) -> String {
    var message: UnsafeMutablePointer<CChar>?
    var length: Int32 = 0
    libssh2_session_last_error(raw, &message, &length, 0)
    guard let message, length > 0 else { return "unknown error (libssh2 \(rc))" }
    return "\(String(cString: message)) (libssh2 \(rc))"
  }

  /// `true` for errors of one channel; anything else means the session itself broke.
  static func isChannelError(_ rc: Int) -> Bool {
    let code = Int32(rc)
    return (LIBSSH2_ERROR_CHANNEL_EOF_SENT...LIBSSH2_ERROR_CHANNEL_OUTOFORDER).contains(code)
      || code == LIBSSH2_ERROR_CHANNEL_WINDOW_FULL || code == LIBSSH2_ERROR_REQUEST_DENIED
  }

  /// A failed call on `tunnel`: that tunnel ends, or the whole session when it broke.
  func fail(_ tunnel: Tunnel, _ rc: Int, doing what: String) {
    let message = lastError(rc)
    if Self.isChannelError(rc) {
      logger.debug(
        "tunnel failed", metadata: ["op": "tunnel", "to": "\(tunnel.target)", "error": "\(what): \(message)"])
      beginFree(tunnel)
    } else if lost == nil {
      lost = "\(what): \(message)"
    }
  }

  func beginFree(_ tunnel: Tunnel) {
    tunnel.closeLocal()
    if tunnel.phase != .freeing {
      tunnel.phase = .freeing
      tunnel.freeDeadline = ContinuousClock.now + SSHConnection.cleanupTimeout
    }
    progress = true
  }

  // MARK: One pass

  func serve(_ tunnel: Tunnel) {
    guard lost == nil, let ch = tunnel.channel.rawChannel else { return }
    if tunnel.phase == .freeing {
      free(tunnel, ch)
      return
    }
    // channel → socketpair
    if !tunnel.toLocalPending && !tunnel.channelEOF && may(.read(tunnel.id)) {
      let count = buffer.withUnsafeMutableBytes {
        libssh2_channel_read_ex(ch, 0, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
      }
      if let count = settle(.read(tunnel.id), count) {
        if count > 0 {
          tunnel.toLocal = Array(buffer[0..<count])
          tunnel.toLocalOffset = 0
          progress = true
        } else if count < 0 {
          return fail(tunnel, count, doing: "read from the tunnel")
        } else if libssh2_channel_eof(ch) != 0 {
          tunnel.channelEOF = true
          progress = true
        } else {
          sessionEvents |= Int16(POLLIN)
        }
      }
    }
    if tunnel.toLocalPending {
      let written = tunnel.toLocal.withUnsafeBytes {
        send(
          tunnel.localFD, $0.baseAddress?.advanced(by: tunnel.toLocalOffset), $0.count - tunnel.toLocalOffset,
          Int32(MSG_NOSIGNAL))
      }
      if written > 0 {
        tunnel.toLocalOffset += written
        progress = true
      } else if written < 0 && errno != EAGAIN && errno != EINTR {
        return beginFree(tunnel)  // the node's session is gone
      }
    }
    if tunnel.channelEOF && !tunnel.toLocalPending && !tunnel.localWriteShut {
      _ = shutdown(tunnel.localFD, Int32(SHUT_WR))
      tunnel.localWriteShut = true
    }
    // socketpair → channel
    if !tunnel.toRemotePending && !tunnel.localEOF {
      let count = buffer.withUnsafeMutableBytes { Glibc.read(tunnel.localFD, $0.baseAddress, $0.count) }
      if count > 0 {
        tunnel.toRemote = Array(buffer[0..<count])
        tunnel.toRemoteOffset = 0
        progress = true
      } else if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
        tunnel.localEOF = true
        progress = true
      }
    }
    if tunnel.toRemotePending && may(.write(tunnel.id)) {
      let written = tunnel.toRemote.withUnsafeBytes {
        libssh2_channel_write_ex(
          ch, 0, $0.baseAddress?.advanced(by: tunnel.toRemoteOffset).assumingMemoryBound(to: CChar.self),
          $0.count - tunnel.toRemoteOffset)
      }
      if let written = settle(.write(tunnel.id), written) {
        if written > 0 {
          tunnel.toRemoteOffset += written
          progress = true
        } else if written < 0 {
          return fail(tunnel, written, doing: "write to the tunnel")
        } else {
          sessionEvents |= Int16(POLLIN)  // the window is full: wait for an adjustment
        }
      }
    }
    if tunnel.localEOF && !tunnel.toRemotePending && !tunnel.eofSent && may(.eof(tunnel.id)) {
      if let rc = settle(.eof(tunnel.id), Int(libssh2_channel_send_eof(ch))) {
        tunnel.eofSent = true
        if rc < 0 && !Self.isChannelError(rc) { return fail(tunnel, rc, doing: "send EOF") }
      }
    }
    // The node's session closed its end: nobody reads what the channel would still carry.
    if tunnel.localEOF && tunnel.eofSent { beginFree(tunnel) }
  }

  /// Closes and frees a tunnel's channel; gives up (the session frees it later) after the
  /// cleanup timeout unless a packet of it is half sent.
  func free(_ tunnel: Tunnel, _ ch: RawChannel) {
    if may(.free(tunnel.id)) {
      if settle(.free(tunnel.id), Int(libssh2_channel_free(ch))) != nil {
        tunnel.channel.forget()
        progress = true
        return
      }
    }
    if let deadline = tunnel.freeDeadline, ContinuousClock.now >= deadline, blocked != .free(tunnel.id) {
      tunnel.channel.forget()
      progress = true
    }
  }

  /// Drives the direct-tcpip open under way, or starts the next queued one.
  func driveOpen() {
    guard lost == nil else { return }
    pending.append(contentsOf: mux.takeRequests())
    let now = ContinuousClock.now
    for request in pending where !request.isDone && request.deadline <= now {
      request.complete(.failure(timeout(request)))
    }
    pending.removeAll { $0.isDone }
    if inFlight == nil, !pending.isEmpty { inFlight = pending.removeFirst() }
    guard let request = inFlight, may(.open) else { return }
    if !request.isDone && request.deadline <= now { request.complete(.failure(timeout(request))) }
    // > "the call must be repeated with the same arguments" while it returns EAGAIN: the open's
    // state lives in the session, so one open at a time.
    let channel = libssh2_channel_direct_tcpip_ex(raw, request.hostname, Int32(request.port), "127.0.0.1", 22)
    guard let channel else {
      let rc = Int(libssh2_session_last_errno(raw))
      guard let rc = settle(.open, rc) else { return }
      inFlight = nil
      progress = true
      let message = lastError(rc)
      if !Self.isChannelError(rc) && lost == nil { lost = "open a channel: \(message)" }
      request.complete(
        .failure(
          RemoteError(
            host: request.target, operation: "connect", kind: .unreachable,
            message:
              "bastion \(mux.hop.host) could not open a connection to \(request.hostname):\(request.port): \(message)"))
      )
      return
    }
    if blocked == .open { blocked = nil }
    inFlight = nil
    progress = true
    let handle = ChannelHandle(rawChannel: channel, session: session)
    var pair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
      request.complete(
        .failure(
          RemoteError(
            host: request.target, operation: "connect", kind: .protocolError,
            message: "socketpair: \(String(cString: strerror(errno)))")))
      let tunnel = Tunnel(id: nextID, target: request.target, channel: handle, localFD: -1)
      nextID += 1
      tunnels.append(tunnel)
      beginFree(tunnel)
      return
    }
    for fd in pair { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    let tunnel = Tunnel(id: nextID, target: request.target, channel: handle, localFD: pair[0])
    nextID += 1
    tunnels.append(tunnel)
    if request.complete(.success(pair[1])) {
      logger.debug(
        "tunnel open",
        metadata: ["op": "connect", "to": "\(request.hostname):\(request.port)", "for": "\(request.target)"])
    } else {
      _ = Glibc.close(pair[1])  // cancelled or timed out meanwhile
      beginFree(tunnel)
    }
  }

  func timeout(_ request: TunnelRequest) -> RemoteError {
    RemoteError(
      host: request.target, operation: "connect", kind: .timeout,
      message: "bastion \(mux.hop.host) did not open a connection to \(request.hostname):\(request.port) in time")
  }

  /// After a pass without progress: `true` when libssh2 already holds data (or an EOF) for a
  /// tunnel, read off the socket by another channel's call after that tunnel's turn.
  func brigadeHasWork() -> Bool {
    for tunnel in tunnels {
      guard let ch = tunnel.channel.rawChannel else { continue }
      switch tunnel.phase {
      case .open:
        if !tunnel.toLocalPending && !tunnel.channelEOF
          && (libssh2_poll_channel_read(ch, 0) != 0 || libssh2_channel_eof(ch) != 0)
        {
          return true
        }
      case .freeing:
        if libssh2_channel_eof(ch) != 0 && blocked == nil { return true }
      }
    }
    return false
  }

  /// The poll timeout: the nearest open or cleanup deadline.
  func pollTimeout() -> Int32 {
    var nearest: ContinuousClock.Instant?
    for request in pending + (inFlight.map { [$0] } ?? []) where !request.isDone {
      nearest = min(nearest ?? request.deadline, request.deadline)
    }
    for tunnel in tunnels where blocked != .free(tunnel.id) {
      if let deadline = tunnel.freeDeadline { nearest = min(nearest ?? deadline, deadline) }
    }
    guard let nearest else { return -1 }
    let remaining = ContinuousClock.now.duration(to: nearest)
    return remaining <= .zero ? 0 : remaining.pollMilliseconds
  }

  /// Fails every tunnel and request after the session broke or the bastion closed.
  func finish(reason: String?) {
    // Recorded before the tunnels end, so that their nodes' errors can name the cause.
    if let reason { mux.markLost(reason) }
    for tunnel in tunnels {
      tunnel.closeLocal()
      tunnel.channel.forget()  // freed with the session: no channel I/O after the loop
    }
    for request in pending + (inFlight.map { [$0] } ?? []) {
      request.complete(
        .failure(mux.lostError(for: request.target, reason: reason ?? "the bastion connection closed")))
    }
    mux.loopEnded(lost: reason)
  }
}

extension SSHConnection {
  /// The loop of a shared bastion: serves every tunnel of `mux` until the bastion is closed or
  /// its connection breaks.
  ///
  /// Runs on this connection's queue for the bastion's whole life, so every libssh2 call of the
  /// session stays there. Waits in `poll()`: no spinning.
  func runBastionLoop(_ mux: SharedBastion) {
    guard let session, let raw = session.rawSession else {
      mux.loopEnded(lost: "the connection is closed")
      return
    }
    let loop = BastionLoop(raw: raw, session: session, mux: mux, logger: logger)
    let sessionFD = session.socket.fd
    let wakeFD = mux.wake.readFD
    var idleChecked = false
    var peerClosed = false
    while loop.lost == nil && !mux.isStopping {
      loop.progress = false
      loop.sessionEvents = 0
      // A half-sent packet goes first; nothing else may send until it is out.
      if let blocked = loop.blocked {
        switch blocked {
        case .open: loop.driveOpen()
        case .read(let id), .write(let id), .eof(let id), .free(let id):
          if let tunnel = loop.tunnels.first(where: { $0.id == id }) { loop.serve(tunnel) } else { loop.blocked = nil }
        }
      }
      if !loop.tunnels.isEmpty {
        loop.rotation = (loop.rotation + 1) % loop.tunnels.count
        for index in 0..<loop.tunnels.count {
          loop.serve(loop.tunnels[(loop.rotation + index) % loop.tunnels.count])
        }
      }
      loop.driveOpen()
      loop.tunnels.removeAll { $0.channel.rawChannel == nil }
      if loop.lost != nil { break }
      if loop.progress {
        idleChecked = false
        continue
      }
      if !idleChecked && loop.brigadeHasWork() {
        idleChecked = true
        continue
      }
      idleChecked = false

      var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
      // With nothing to read the session is only watched for the server hanging up.
      let watchOnly = loop.sessionEvents == 0
      let watch = peerClosed ? 0 : pollReadHangup
      fds.append(pollfd(fd: sessionFD, events: watchOnly ? watch : loop.sessionEvents, revents: 0))
      for tunnel in loop.tunnels where tunnel.phase == .open && tunnel.localFD >= 0 {
        var events: Int16 = 0
        if !tunnel.toRemotePending && !tunnel.localEOF { events |= Int16(POLLIN) }
        if tunnel.toLocalPending { events |= Int16(POLLOUT) }
        fds.append(pollfd(fd: tunnel.localFD, events: events, revents: 0))
      }
      let rc = poll(&fds, nfds_t(fds.count), loop.pollTimeout())
      if rc < 0 && errno != EINTR {
        loop.lost = "poll: \(String(cString: strerror(errno)))"
        break
      }
      if fds[0].revents != 0 { mux.wake.drain() }
      if watchOnly && fds[1].revents & Int16(POLLHUP | POLLERR) != 0 {
        loop.lost = "the connection broke"
      } else if watchOnly && fds[1].revents & pollReadHangup != 0 {
        // Idle: nothing would read what is left, so the hangup is final. Busy: the tunnels'
        // next reads get what the server sent before it and then the disconnect itself.
        if loop.tunnels.isEmpty && loop.inFlight == nil { loop.lost = "the server closed the connection" }
        peerClosed = true
      }
    }
    let reason = loop.lost
    if let reason {
      logger.debug("bastion connection lost", metadata: ["op": "tunnel", "error": "\(reason)"])
    }
    loop.finish(reason: reason)
  }
}
