internal import CLibSSH2
import Logging
public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

extension SSHConnection {
  /// Runs `command` on the host and returns its exit status, signal, stdout and stderr.
  ///
  /// stdout and stream 1 (stderr) are read in the same loop until EOF, so neither stream can
  /// stall the other; `stdin` is written, then EOF is sent.
  /// - Throws: ``RemoteError`` `.timeout` (channel closed), `.cancelled`, `.protocolError`.
  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?) async throws -> CommandResult {
    try await run(command, stdin: stdin, timeout: timeout, limits: options.outputLimits)
  }

  /// Runs `command` keeping at most `limits` bytes of stdout and of stderr.
  ///
  /// Past a limit the loop stops reading, the channel is closed and `.outputTooLarge` is thrown.
  public func run(_ command: String, stdin: [UInt8]?, timeout: Duration?, limits: OutputLimits) async throws
    -> CommandResult
  {
    let operation = "exec `\(Self.abbreviate(command))`"
    let limit = timeout ?? options.commandTimeout
    let deadline = limit.map { ContinuousClock.now + $0 }
    let start = ContinuousClock.now
    let result = try await withCancellation(operation: operation) { token in
      do {
        return try execute(
          command, stdin: stdin, limits: limits, deadline: deadline, token: token, operation: operation)
      } catch WaitInterruption.timeout {
        throw RemoteError(
          host: host, operation: operation, kind: .timeout,
          message: "the command did not finish within \(limit.map { "\($0)" } ?? "its time limit"); channel closed")
      }
    }
    logger.debug(
      "exec finished",
      metadata: [
        "op": "exec", "duration": "\(ContinuousClock.now - start)", "status": "\(result.exitStatus)",
        "stdout": "\(result.stdout.count)", "stderr": "\(result.stderr.count)",
      ])
    return result
  }

  /// A command shortened for error messages.
  static func abbreviate(_ command: String) -> String { RemoteError.abbreviate(command) }

  /// Opens a session channel (retrying on EAGAIN).
  func openSessionChannel(
    session: SessionHandle, raw: RawSession, deadline: ContinuousClock.Instant?, token: CancelToken?, operation: String
  ) throws -> ChannelHandle {
    let channel = try retryPointer(raw: raw, deadline: deadline, token: token) {
      libssh2_channel_open_ex(raw, "session", 7, 2 * 1024 * 1024, 32768, nil, 0)
    }
    guard let channel else {
      throw failure(
        operation, kind: .protocolError, rc: libssh2_session_last_errno(raw), context: "cannot open a channel")
    }
    return ChannelHandle(rawChannel: channel, session: session)
  }

  /// The synchronous exec loop; runs on the connection's queue.
  func execute(
    _ command: String, stdin: [UInt8]?, limits: OutputLimits, deadline: ContinuousClock.Instant?, token: CancelToken?,
    operation: String
  ) throws -> CommandResult {
    let (session, raw) = try liveSession(operation)
    let channel = try openSessionChannel(
      session: session, raw: raw, deadline: deadline, token: token, operation: operation)
    guard let ch = channel.rawChannel else {
      throw RemoteError(host: host, operation: operation, kind: .protocolError, message: "no channel")
    }
    do {
      let rc = try retry(raw: raw, deadline: deadline, token: token) {
        libssh2_channel_process_startup(ch, "exec", 4, command, UInt32(command.utf8.count))
      }
      guard rc == 0 else { throw failure(operation, kind: .protocolError, rc: rc, context: "cannot start the command") }

      var stdout: [UInt8] = []
      var stderr: [UInt8] = []
      let input = stdin ?? []
      var inputOffset = 0
      var eofSent = false
      let capacity = 256 * 1024
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
      defer { buffer.deallocate() }
      let base = buffer.baseAddress?.assumingMemoryBound(to: CChar.self)
      // The call (0 write, 1 EOF, 2 + stream read) that returned EAGAIN with a packet half
      // sent: libssh2 refuses any other packet (LIBSSH2_ERROR_BAD_USE, a failed window
      // adjustment) until that same call is repeated and the packet is out.
      var halfSent: Int?
      func settle(_ call: Int, _ rc: Int) -> Int {
        let stillSending =
          rc == Int(LIBSSH2_ERROR_EAGAIN)
          && libssh2_session_block_directions(raw) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0
        if stillSending {
          halfSent = call
        } else if halfSent == call {
          halfSent = nil
        }
        return rc
      }

      while true {
        var progress = false
        if !eofSent {
          if inputOffset < input.count {
            if halfSent == nil || halfSent == 0 {
              let written = settle(
                0,
                input.withUnsafeBytes { bytes in
                  libssh2_channel_write_ex(
                    ch, 0, bytes.baseAddress?.advanced(by: inputOffset).assumingMemoryBound(to: CChar.self),
                    bytes.count - inputOffset)
                })
              if written > 0 {
                inputOffset += written
                progress = true
              } else if written < 0 && written != Int(LIBSSH2_ERROR_EAGAIN) {
                eofSent = true  // the command closed its stdin or exited; stop feeding it
              }
              // 0: the remote window is full (libssh2 says so with 0 when it read a packet
              // meanwhile, EAGAIN otherwise); a window adjustment will come.
            }
          } else if halfSent == nil || halfSent == 1 {
            let rc = settle(1, Int(libssh2_channel_send_eof(ch)))
            if rc != Int(LIBSSH2_ERROR_EAGAIN) { eofSent = true }
          }
        }
        // > "a return value of zero (0) can in fact be a legitimate value and only signals that
        // > no payload data was read" (libssh2_channel_read_ex.md): EOF is libssh2_channel_eof.
        for stream: Int32 in [0, 1] where halfSent == nil || halfSent == 2 + Int(stream) {
          let count = settle(2 + Int(stream), libssh2_channel_read_ex(ch, stream, base, capacity))
          if count > 0 {
            if stream == 0 {
              stdout.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            } else {
              stderr.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
            if let error = limits.violation(
              stdout: stdout.count, stderr: stderr.count, host: host, operation: operation)
            {
              throw error  // the catch below closes the channel
            }
            progress = true
          } else if count < 0 && count != Int(LIBSSH2_ERROR_EAGAIN) {
            throw failure(operation, kind: .protocolError, rc: Int32(clamping: count), context: "reading output failed")
          }
        }
        if libssh2_channel_eof(ch) != 0 { break }
        if !progress { try waitSession(raw: raw, deadline: deadline, token: token) }
      }

      var rc2 = try retry(raw: raw, deadline: deadline, token: token) { libssh2_channel_close(ch) }
      if rc2 == 0 { rc2 = try retry(raw: raw, deadline: deadline, token: token) { libssh2_channel_wait_closed(ch) } }
      let status = libssh2_channel_get_exit_status(ch)
      var signalPointer: UnsafeMutablePointer<CChar>?
      var signalLength = 0
      libssh2_channel_get_exit_signal(ch, &signalPointer, &signalLength, nil, nil, nil, nil)
      var signal: String?
      if let signalPointer {
        if signalLength > 0 { signal = String(cString: signalPointer) }
        libssh2_free(raw, signalPointer)
      }
      _ = try retry(raw: raw, deadline: deadline, token: token) { libssh2_channel_free(ch) }
      channel.forget()
      return CommandResult(exitStatus: signal == nil ? status : -1, exitSignal: signal, stdout: stdout, stderr: stderr)
    } catch {
      abandon(channel, raw: raw)
      throw error
    }
  }

  /// Closes and frees a channel after an error, timeout or cancellation, waiting at most
  /// ``cleanupTimeout`` and ignoring cancellation.
  func abandon(_ channel: ChannelHandle, raw: RawSession) {
    guard let ch = channel.rawChannel else { return }
    let deadline = ContinuousClock.now + Self.cleanupTimeout
    _ = try? retry(raw: raw, deadline: deadline, token: nil) { libssh2_channel_close(ch) }
    _ = try? retry(raw: raw, deadline: deadline, token: nil) { libssh2_channel_free(ch) }
    channel.forget()
  }
}
