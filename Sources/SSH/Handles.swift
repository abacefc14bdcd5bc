internal import CLibSSH2

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A libssh2 `LIBSSH2_SESSION *`.
typealias RawSession = OpaquePointer
/// A libssh2 `LIBSSH2_CHANNEL *`.
typealias RawChannel = OpaquePointer
/// A libssh2 `LIBSSH2_SFTP *`.
typealias RawSFTP = OpaquePointer
/// A libssh2 `LIBSSH2_SFTP_HANDLE *`.
typealias RawSFTPFile = OpaquePointer

/// libssh2 return codes worth naming (an open set, like GRDB's `ResultCode`).
struct LibSSH2Code: RawRepresentable, Hashable, Sendable {
  var rawValue: Int32
  static let eagain = LibSSH2Code(rawValue: LIBSSH2_ERROR_EAGAIN)
  static let file = LibSSH2Code(rawValue: LIBSSH2_ERROR_FILE)
  static let publickeyUnverified = LibSSH2Code(rawValue: LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
  static let authenticationFailed = LibSSH2Code(rawValue: LIBSSH2_ERROR_AUTHENTICATION_FAILED)
  static let sftpProtocol = LibSSH2Code(rawValue: LIBSSH2_ERROR_SFTP_PROTOCOL)
  static let channelFailure = LibSSH2Code(rawValue: LIBSSH2_ERROR_CHANNEL_FAILURE)
  static let socketSend = LibSSH2Code(rawValue: LIBSSH2_ERROR_SOCKET_SEND)
  static let socketRecv = LibSSH2Code(rawValue: LIBSSH2_ERROR_SOCKET_RECV)
  static let socketDisconnect = LibSSH2Code(rawValue: LIBSSH2_ERROR_SOCKET_DISCONNECT)
  static let bannerRecv = LibSSH2Code(rawValue: LIBSSH2_ERROR_BANNER_RECV)
  static let keyExchange = LibSSH2Code(rawValue: LIBSSH2_ERROR_KEX_FAILURE)

  /// `true` for errors that mean the transport itself broke.
  var isTransportFailure: Bool {
    [.socketSend, .socketRecv, .socketDisconnect, .bannerRecv].contains(self)
  }
}

/// Owns one connected socket file descriptor; `deinit` only closes it.
final class SocketHandle {
  private(set) var fd: Int32

  init(fd: Int32) { self.fd = fd }

  /// Closes the descriptor. Idempotent.
  func close() {
    if fd >= 0 { _ = Glibc.close(fd) }
    fd = -1
  }

  deinit { close() }
}

@available(*, unavailable) extension SocketHandle: Sendable {}

/// Owns one `LIBSSH2_SESSION`; holds its socket so the descriptor outlives the session.
///
/// `deinit` only frees. The orderly goodbye (`libssh2_session_disconnect_ex`) happens in
/// ``SSHConnection/close()``.
final class SessionHandle {
  private(set) var rawSession: RawSession?
  let socket: SocketHandle

  init?(socket: SocketHandle) {
    _ = LibSSH2.initialized
    guard let raw = libssh2_session_init_ex(nil, nil, nil, nil) else { return nil }
    rawSession = raw
    self.socket = socket
    // > "the session is set to blocking mode by default" (libssh2_session_set_blocking.md):
    // every call of ours is non-blocking and waits on the socket with poll().
    libssh2_session_set_blocking(raw, 0)
  }

  /// Frees the session (after a disconnect, or when giving up). Idempotent.
  func free() {
    guard let raw = rawSession else { return }
    rawSession = nil
    // A session whose peer is gone must not wait for it while freeing.
    if socket.fd >= 0 { _ = shutdown(socket.fd, Int32(SHUT_RDWR)) }
    libssh2_session_free(raw)
  }

  deinit { free() }
}

@available(*, unavailable) extension SessionHandle: Sendable {}

/// Owns one `LIBSSH2_CHANNEL`; keeps its session alive.
final class ChannelHandle {
  private(set) var rawChannel: RawChannel?
  let session: SessionHandle

  init(rawChannel: RawChannel, session: SessionHandle) {
    self.rawChannel = rawChannel
    self.session = session
  }

  /// Marks the channel freed (after `libssh2_channel_free` returned 0 or was abandoned).
  func forget() { rawChannel = nil }

  /// Frees the channel. Idempotent.
  func free() {
    guard let raw = rawChannel else { return }
    rawChannel = nil
    if session.rawSession != nil { libssh2_channel_free(raw) }
  }

  deinit { free() }
}

@available(*, unavailable) extension ChannelHandle: Sendable {}

/// Owns one `LIBSSH2_SFTP` subsystem; keeps its session alive.
final class SFTPHandle {
  private(set) var rawSFTP: RawSFTP?
  let session: SessionHandle

  init(rawSFTP: RawSFTP, session: SessionHandle) {
    self.rawSFTP = rawSFTP
    self.session = session
  }

  /// Marks the handle shut down (after `libssh2_sftp_shutdown` succeeded or was abandoned).
  func forget() { rawSFTP = nil }

  deinit {
    if let raw = rawSFTP, session.rawSession != nil { _ = libssh2_sftp_shutdown(raw) }
  }
}

@available(*, unavailable) extension SFTPHandle: Sendable {}

/// Owns one open SFTP file handle; keeps its SFTP subsystem alive.
final class SFTPFileHandle {
  private(set) var rawFile: RawSFTPFile?
  let sftp: SFTPHandle

  init(rawFile: RawSFTPFile, sftp: SFTPHandle) {
    self.rawFile = rawFile
    self.sftp = sftp
  }

  /// Marks the handle closed (after `libssh2_sftp_close_handle`).
  func forget() { rawFile = nil }

  deinit {
    if let raw = rawFile, sftp.rawSFTP != nil { _ = libssh2_sftp_close_handle(raw) }
  }
}

@available(*, unavailable) extension SFTPFileHandle: Sendable {}

/// Owns one `LIBSSH2_AGENT`; keeps its session alive.
final class AgentHandle {
  let rawAgent: OpaquePointer
  let session: SessionHandle
  var connected = false

  init?(session: SessionHandle) {
    guard let raw = session.rawSession, let agent = libssh2_agent_init(raw) else { return nil }
    rawAgent = agent
    self.session = session
  }

  deinit {
    if connected { _ = libssh2_agent_disconnect(rawAgent) }
    libssh2_agent_free(rawAgent)
  }
}

@available(*, unavailable) extension AgentHandle: Sendable {}
