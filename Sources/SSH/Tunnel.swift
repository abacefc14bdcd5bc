internal import CLibSSH2
import Logging
import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension SSHConnection {
  /// On a bastion: opens a direct-tcpip channel to `hostname:port` and returns one end of a
  /// socketpair whose other end ``runTunnelPump()`` bridges to that channel.
  ///
  /// libssh2 sessions need a socket descriptor, so the next hop's session runs over the
  /// socketpair. - Throws: ``RemoteError`` `.unreachable` (attributed to `targetHost`).
  func openTunnel(to hostname: String, port: Int, for targetHost: HostID) async throws -> Int32 {
    try await withCancellation(operation: "connect") { token in
      let (session, raw) = try liveSession("connect")
      let deadline = ContinuousClock.now + options.connectTimeout
      let channel = try retryPointer(raw: raw, deadline: deadline, token: token) {
        libssh2_channel_direct_tcpip_ex(raw, hostname, Int32(port), "127.0.0.1", 22)
      }
      guard let channel else {
        let rc = libssh2_session_last_errno(raw)
        throw RemoteError(
          host: targetHost, operation: "connect", kind: .unreachable,
          message:
            "bastion \(host) could not open a connection to \(hostname):\(port): \(lastErrorMessage()) (libssh2 \(rc))")
      }
      var pair: [Int32] = [-1, -1]
      guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
        _ = libssh2_channel_free(channel)
        throw RemoteError(
          host: targetHost, operation: "connect", kind: .protocolError,
          message: "socketpair: \(String(cString: strerror(errno)))")
      }
      for fd in pair { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
      tunnelChannel = ChannelHandle(rawChannel: channel, session: session)
      tunnelLocalFD = pair[0]
      logger.debug("tunnel open", metadata: ["op": "connect", "to": "\(hostname):\(port)"])
      return pair[1]
    }
  }

  /// Bridges the tunnel's socketpair end and the direct-tcpip channel until both sides end.
  ///
  /// Runs on the bastion's own queue for the life of the tunnel (the bastion connection is
  /// dedicated to it), so every libssh2 call stays on that queue. Waits in `poll()`: no spinning.
  func runTunnelPump() async {
    guard let channel = tunnelChannel, let ch = channel.rawChannel, let session, let raw = session.rawSession else {
      return
    }
    let localFD = tunnelLocalFD
    let sessionFD = session.socket.fd
    let stopFD = tunnelStop.readFD
    let capacity = 64 * 1024
    var toLocal: [UInt8] = []
    var toLocalOffset = 0
    var toRemote: [UInt8] = []
    var toRemoteOffset = 0
    var localEOF = false
    var channelEOF = false
    var eofSent = false
    var localWriteShut = false
    var graceDeadline: ContinuousClock.Instant?
    var buffer = [UInt8](repeating: 0, count: capacity)

    pump: while true {
      var progress = false
      var sessionEvents: Int16 = 0
      // channel → socketpair
      if toLocalOffset == toLocal.count && !channelEOF {
        let count = buffer.withUnsafeMutableBytes {
          libssh2_channel_read_ex(ch, 0, $0.baseAddress?.assumingMemoryBound(to: CChar.self), capacity)
        }
        if count > 0 {
          toLocal = Array(buffer[0..<count])
          toLocalOffset = 0
          progress = true
        } else if count == Int(LIBSSH2_ERROR_EAGAIN) {
          sessionEvents |= Int16(POLLIN)
        } else if count < 0 {
          break pump
        } else if libssh2_channel_eof(ch) != 0 {
          channelEOF = true
          progress = true
        } else {
          sessionEvents |= Int16(POLLIN)
        }
      }
      if toLocalOffset < toLocal.count {
        let written = toLocal.withUnsafeBytes {
          Glibc.write(localFD, $0.baseAddress?.advanced(by: toLocalOffset), $0.count - toLocalOffset)
        }
        if written > 0 {
          toLocalOffset += written
          progress = true
        } else if written < 0 && errno != EAGAIN && errno != EINTR {
          break pump  // the next hop's session is gone
        }
      }
      if channelEOF && toLocalOffset == toLocal.count && !localWriteShut {
        _ = shutdown(localFD, Int32(SHUT_WR))
        localWriteShut = true
      }
      // socketpair → channel
      if toRemoteOffset == toRemote.count && !localEOF {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(localFD, $0.baseAddress, capacity) }
        if count > 0 {
          toRemote = Array(buffer[0..<count])
          toRemoteOffset = 0
          progress = true
        } else if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
          localEOF = true
          progress = true
          graceDeadline = ContinuousClock.now + Self.cleanupTimeout
        }
      }
      if toRemoteOffset < toRemote.count {
        let written = toRemote.withUnsafeBytes {
          libssh2_channel_write_ex(
            ch, 0, $0.baseAddress?.advanced(by: toRemoteOffset).assumingMemoryBound(to: CChar.self),
            $0.count - toRemoteOffset)
        }
        if written > 0 {
          toRemoteOffset += written
          progress = true
        } else if written == Int(LIBSSH2_ERROR_EAGAIN) {
          sessionEvents |= directionEvents(raw)
        } else {
          break pump
        }
      }
      if localEOF && toRemoteOffset == toRemote.count && !eofSent {
        let rc = libssh2_channel_send_eof(ch)
        if rc == LIBSSH2_ERROR_EAGAIN { sessionEvents |= directionEvents(raw) } else { eofSent = true }
      }
      if localEOF && eofSent && channelEOF && toLocalOffset == toLocal.count { break pump }
      if progress { continue }

      var timeout: Int32 = -1
      if let graceDeadline {
        let remaining = ContinuousClock.now.duration(to: graceDeadline)
        if remaining <= .zero { break pump }
        timeout = remaining.pollMilliseconds
      }
      var localEvents: Int16 = 0
      if toRemoteOffset == toRemote.count && !localEOF { localEvents |= Int16(POLLIN) }
      if toLocalOffset < toLocal.count { localEvents |= Int16(POLLOUT) }
      var fds = [
        pollfd(fd: sessionFD, events: sessionEvents, revents: 0),
        pollfd(fd: localFD, events: localEvents, revents: 0),
        pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
      ]
      let rc = poll(&fds, nfds_t(fds.count), timeout)
      if rc < 0 && errno != EINTR { break pump }
      if fds[2].revents != 0 { break pump }
      if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 && sessionEvents == 0 { break pump }
    }

    _ = Glibc.close(localFD)
    tunnelLocalFD = -1
    abandon(channel, raw: raw)
    tunnelChannel = nil
    logger.debug("tunnel closed", metadata: ["op": "close"])
  }

  /// poll() events for the directions libssh2 last blocked on.
  func directionEvents(_ raw: RawSession) -> Int16 {
    let directions = libssh2_session_block_directions(raw)
    var events: Int16 = 0
    if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
    if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
    return events == 0 ? Int16(POLLIN) : events
  }
}
