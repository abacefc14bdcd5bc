internal import CLibSSH2
public import Logging
public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One SSH connection to one host, confined to its own serial queue.
///
/// Every libssh2 call of this connection runs on that queue (the actor's executor), in
/// non-blocking mode; when libssh2 reports `EAGAIN` the queue waits in `poll()` on the socket in
/// the directions `libssh2_session_block_directions` names, plus a wake pipe that cancellation
/// handlers write to. Nothing here blocks Swift's cooperative pool.
public actor SSHConnection: RemoteSession {
  /// The inventory name of the host.
  public nonisolated let host: HostID
  /// Where and as whom this connection was made.
  public nonisolated let target: SSHTarget
  let options: SSHOptions
  var logger: Logger

  private let executor: DispatchQueueExecutor
  /// The actor runs on its private dispatch queue.
  public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

  /// Wakes a blocked `poll` on cancellation.
  nonisolated let wake = WakePipe()

  var session: SessionHandle?
  var sftp: SFTPHandle?
  var closed = false
  /// Set once authenticated when ``SSHOptions/keepaliveInterval`` is set: waits send keepalives.
  var keepaliveActive = false

  /// The host key's fingerprint, `SHA256:<base64 without padding>` as `ssh` prints it.
  public internal(set) var hostKeyFingerprint = ""
  /// The host key's type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
  public internal(set) var hostKeyType = ""

  /// When connected through a bastion: this connection's channel of the shared bastion.
  var tunnel: BastionTunnel?

  /// How long cleanup (channel close, disconnect) may wait after an error or cancellation.
  static let cleanupTimeout: Duration = .seconds(2)

  init(target: SSHTarget, options: SSHOptions, logger: Logger) {
    host = target.host
    self.target = target
    self.options = options
    var logger = logger
    logger[metadataKey: "host"] = "\(target.host)"
    self.logger = logger
    executor = DispatchQueueExecutor(label: "svctrace.ssh.\(target.host)")
  }

  // MARK: Connect

  /// Connects, verifies the host key against `known_hosts` and authenticates.
  ///
  /// With `target.proxyJump`, the next hop is reached through a direct-tcpip channel of the
  /// last bastion, whose connection is shared through ``SSHOptions/bastions`` with every other
  /// target behind the same chain (one bastion login per run); each bastion is verified and
  /// authenticated like any host.
  /// - Throws: ``RemoteError`` (`.unreachable`, `.timeout`, `.hostKey`, `.authentication`,
  ///   `.protocolError`, `.cancelled`).
  public static func connect(_ target: SSHTarget, options: SSHOptions, logger: Logger) async throws -> SSHConnection {
    let start = ContinuousClock.now
    var tunnel: BastionTunnel?
    if let lastHop = target.proxyJump.last {
      var hop = lastHop
      hop.proxyJump = Array(target.proxyJump.dropLast())
      // Without a pool of the run, one for this connection alone: its bastions close with it.
      var hopOptions = options
      let pool = options.bastions ?? BastionPool(closesIdleBastions: true)
      hopOptions.bastions = pool
      tunnel = try await pool.openTunnel(through: hop, to: target, options: hopOptions, logger: logger)
    }
    let connection = SSHConnection(target: target, options: options, logger: logger)
    if let tunnel { await connection.attach(tunnel) }
    do {
      try await connection.start(tunnelFD: tunnel?.fd, since: start)
    } catch {
      await connection.close()
      throw error
    }
    return connection
  }

  /// Runs ``establish(tunnelFD:token:)`` on the connection's queue, cancellable.
  func start(tunnelFD: Int32?, since start: ContinuousClock.Instant) async throws {
    try await withCancellation(operation: "connect") { token in
      try establish(tunnelFD: tunnelFD, token: token)
    }
    logger.debug("connected", metadata: ["op": "connect", "duration": "\(ContinuousClock.now - start)"])
  }

  /// Runs `body` on this connection's queue with a cancellation token wired to the wake pipe;
  /// maps interruptions to ``RemoteError`` for `operation`.
  func withCancellation<T: Sendable>(
    operation: String, _ body: (CancelToken) throws -> T
  ) async throws -> T {
    let token = CancelToken()
    let wake = self.wake
    return try await withTaskCancellationHandler {
      do {
        return try body(token)
      } catch let interruption as WaitInterruption {
        throw throughBastion(mapInterruption(interruption, operation: operation))
      } catch let error as RemoteError {
        throw throughBastion(error)
      }
    } onCancel: {
      wake.fire(token)
    }
  }

  func mapInterruption(_ interruption: WaitInterruption, operation: String) -> RemoteError {
    switch interruption {
    case .cancelled:
      return RemoteError(host: host, operation: operation, kind: .cancelled, message: "cancelled")
    case .timeout:
      return RemoteError(host: host, operation: operation, kind: .timeout, message: "timed out")
    case .pollFailed(let code):
      return RemoteError(
        host: host, operation: operation, kind: .protocolError, message: "poll: \(String(cString: strerror(code)))")
    case .connectionLost(let silence):
      let interval = options.keepaliveInterval.map { "\($0)" } ?? "?"
      return RemoteError(
        host: host, operation: operation, kind: .connectionLost,
        message:
          "no data from the server for \(silence) although keepalives were sent every \(interval); "
          + "connection presumed dead")
    }
  }

  func attach(_ tunnel: BastionTunnel) {
    self.tunnel = tunnel
  }

  /// `error` on a connection whose bastion connection broke, told as that: the node's own
  /// session only saw its tunnel end.
  func throughBastion(_ error: RemoteError) -> RemoteError {
    guard let tunnel, let reason = tunnel.lostReason, error.kind != .cancelled else { return error }
    return tunnel.bastion.lostError(for: host, reason: reason, operation: error.operation)
  }

  /// TCP connect (or take the tunnel's socket), handshake, host-key check, authentication.
  func establish(tunnelFD: Int32?, token: CancelToken) throws {
    let deadline = ContinuousClock.now + options.connectTimeout
    let socket: SocketHandle
    if let tunnelFD {
      socket = SocketHandle(fd: tunnelFD)
    } else {
      socket = try tcpConnect(deadline: deadline, token: token)
    }
    guard let session = SessionHandle(socket: socket) else {
      socket.close()
      throw RemoteError(host: host, operation: "connect", kind: .protocolError, message: "libssh2_session_init failed")
    }
    self.session = session
    guard let raw = session.rawSession else { return }

    try preferKnownHostKeyAlgorithms(raw: raw)

    let rc = try retry(raw: raw, deadline: deadline, token: token) { libssh2_session_handshake(raw, socket.fd) }
    if rc != 0 {
      let code = LibSSH2Code(rawValue: rc)
      throw failure(
        "connect", kind: code.isTransportFailure ? .unreachable : .protocolError, rc: rc,
        context: "SSH handshake with \(target.hostname):\(target.port) failed")
    }
    try verifyHostKey(raw: raw)
    try authenticate(raw: raw, session: session, deadline: ContinuousClock.now + options.connectTimeout, token: token)
    if let interval = options.keepaliveInterval {
      // > "want_reply ... Set non-zero to request that the server send a reply" and an interval
      // > "of 0 disables keepalives" (libssh2_keepalive_config.md): the replies are the traffic
      // > that tells a live server from a dead one in ``waitSession(raw:deadline:token:)``.
      libssh2_keepalive_config(raw, 1, UInt32(clamping: max(2, interval.components.seconds)))
      keepaliveActive = true
    }
  }

  /// Non-blocking TCP connect with a deadline, trying every address `getaddrinfo` returns.
  func tcpConnect(deadline: ContinuousClock.Instant, token: CancelToken) throws -> SocketHandle {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let gai = getaddrinfo(target.hostname, String(target.port), &hints, &list)
    guard gai == 0, let first = list else {
      throw RemoteError(
        host: host, operation: "connect", kind: .unreachable,
        message: "cannot resolve \(target.hostname): \(String(cString: gai_strerror(gai)))")
    }
    defer { freeaddrinfo(list) }
    var lastError = "no address"
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let info = cursor {
      cursor = info.pointee.ai_next
      let fd = socket(
        info.pointee.ai_family,
        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
      if fd < 0 {
        lastError = String(cString: strerror(errno))
        continue
      }
      let handle = SocketHandle(fd: fd)
      var rc = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen)
      if rc != 0 && errno == EINPROGRESS {
        do {
          try waitForSocket(fd, events: Int16(POLLOUT), deadline: deadline, token: token, wake: wake)
        } catch .timeout {
          throw RemoteError(
            host: host, operation: "connect", kind: .timeout,
            message: "TCP connect to \(target.hostname):\(target.port) timed out after \(options.connectTimeout)")
        }
        var soError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
        rc = soError == 0 ? 0 : -1
        errno = soError
      }
      if rc == 0 {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let interval = options.keepaliveInterval { enableTCPKeepalive(fd, interval: interval) }
        return handle
      }
      lastError = String(cString: strerror(errno))
      handle.close()
    }
    throw RemoteError(
      host: host, operation: "connect", kind: .unreachable,
      message: "TCP connect to \(target.hostname):\(target.port): \(lastError)")
  }

  /// TCP keepalive on the socket: the kernel probes an idle connection after `interval` and
  /// drops it after ``SSHOptions/keepaliveCountMax`` unanswered probes (a vanished host, a
  /// dropped route), which surfaces as a socket error in the next libssh2 call.
  func enableTCPKeepalive(_ fd: Int32, interval: Duration) {
    let size = socklen_t(MemoryLayout<Int32>.size)
    var on: Int32 = 1
    var seconds = Int32(clamping: max(1, interval.components.seconds))
    var count = Int32(clamping: options.keepaliveCountMax)
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size)
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &seconds, size)
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &seconds, size)
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
  }

  // MARK: Waiting

  /// Calls `body` until it stops returning `LIBSSH2_ERROR_EAGAIN`, waiting on the socket between.
  func retry(
    raw: RawSession, deadline: ContinuousClock.Instant?, token: CancelToken?, _ body: () -> Int32
  ) throws(WaitInterruption) -> Int32 {
    while true {
      let rc = body()
      if rc != LIBSSH2_ERROR_EAGAIN { return rc }
      try waitSession(raw: raw, deadline: deadline, token: token)
    }
  }

  /// Like ``retry(raw:deadline:token:_:)`` for calls that return a pointer, `nil` on error.
  func retryPointer<P>(
    raw: RawSession, deadline: ContinuousClock.Instant?, token: CancelToken?, _ body: () -> P?
  ) throws(WaitInterruption) -> P? {
    while true {
      if let result = body() { return result }
      guard libssh2_session_last_errno(raw) == LIBSSH2_ERROR_EAGAIN else { return nil }
      try waitSession(raw: raw, deadline: deadline, token: token)
    }
  }

  /// Waits on the session socket in the directions libssh2 is blocked on.
  ///
  /// > "the application should wait for data to be readable on the socket" / "writeable"
  /// > (libssh2_session_block_directions.md)
  ///
  /// Once authenticated, the wait is cut into keepalive intervals: `libssh2_keepalive_send` sends
  /// one when due ("seconds_to_next indicates how many seconds you can sleep after this call
  /// before you need to call it again", libssh2_keepalive_send.md) and the server answers each.
  /// When nothing at all arrives for ``SSHOptions/keepaliveCountMax`` intervals, the server (or
  /// the path to it) is gone: ``WaitInterruption/connectionLost(_:)`` instead of waiting forever.
  func waitSession(raw: RawSession, deadline: ContinuousClock.Instant?, token: CancelToken?) throws(WaitInterruption) {
    let directions = libssh2_session_block_directions(raw)
    var events: Int16 = 0
    if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
    if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
    if events == 0 { events = Int16(POLLIN) }
    let fd = session?.socket.fd ?? -1
    guard keepaliveActive, let interval = options.keepaliveInterval else {
      try waitForSocket(fd, events: events, deadline: deadline, token: token, wake: wake)
      return
    }
    // libssh2 was just blocked: whatever arrived before has been consumed; silence counts from here.
    let quietSince = ContinuousClock.now
    let budget = interval * options.keepaliveCountMax
    while true {
      var secondsToNext: Int32 = 0
      // Not while a packet is half sent: libssh2 would refuse the keepalive, or, half sent
      // itself, make it the packet every other call is refused for (LIBSSH2_ERROR_BAD_USE).
      if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND == 0 {
        _ = libssh2_keepalive_send(raw, &secondsToNext)  // a send failure surfaces in the next libssh2 call
      }
      let now = ContinuousClock.now
      let silence = now - quietSince
      if silence >= budget { throw .connectionLost(silence) }
      var wakeAt = min(now + .seconds(max(1, Int(secondsToNext))), quietSince + budget)
      let deadlineFirst = deadline.map { $0 <= wakeAt } ?? false
      if let deadline, deadlineFirst { wakeAt = deadline }
      do {
        try waitForSocket(fd, events: events, deadline: wakeAt, token: token, wake: wake)
        return
      } catch .timeout where !deadlineFirst {
        continue  // a keepalive is due, or the silence budget is spent
      }
    }
  }

  // MARK: Errors

  /// libssh2's own last error message for this session.
  func lastErrorMessage() -> String {
    guard let raw = session?.rawSession else { return "no session" }
    var message: UnsafeMutablePointer<CChar>?
    var length: Int32 = 0
    libssh2_session_last_error(raw, &message, &length, 0)
    guard let message, length > 0 else { return "unknown error" }
    return String(cString: message)
  }

  /// A ``RemoteError`` with libssh2's message and return code.
  func failure(_ operation: String, kind: RemoteError.Kind, rc: Int32, context: String) -> RemoteError {
    RemoteError(
      host: host, operation: operation, kind: kind, message: "\(context): \(lastErrorMessage()) (libssh2 \(rc))")
  }

  /// The open session, or an error when closed.
  func liveSession(_ operation: String) throws -> (SessionHandle, RawSession) {
    guard !closed, let session, let raw = session.rawSession else {
      throw RemoteError(host: host, operation: operation, kind: .protocolError, message: "the connection is closed")
    }
    return (session, raw)
  }

  // MARK: Close

  /// Closes SFTP, says goodbye to the server, frees the session, then gives the bastion back.
  /// Idempotent.
  public func close() async {
    guard !closed else { return }
    closed = true
    closeBlocking()
    // Our side of the socketpair is closed: the bastion's loop sees EOF and frees the channel.
    if let tunnel { await tunnel.release() }
    tunnel = nil
  }

  func closeBlocking() {
    let deadline = ContinuousClock.now + Self.cleanupTimeout
    if let sftp, let rawSFTP = sftp.rawSFTP, let raw = session?.rawSession {
      _ = try? retry(raw: raw, deadline: deadline, token: nil) { libssh2_sftp_shutdown(rawSFTP) }
      sftp.forget()
    }
    sftp = nil
    if let session, let raw = session.rawSession {
      _ = try? retry(raw: raw, deadline: deadline, token: nil) {
        libssh2_session_disconnect_ex(raw, SSH_DISCONNECT_BY_APPLICATION, "svctrace done", "")
      }
      session.free()
      session.socket.close()
    }
    session = nil
    wake.close()
    logger.trace("closed", metadata: ["op": "close"])
  }
}
