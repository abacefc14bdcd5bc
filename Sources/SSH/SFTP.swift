internal import CLibSSH2
import Logging
public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// SFTP status codes (draft-ietf-secsh-filexfer-02 §7) as words.
func sftpStatusText(_ status: UInt) -> String {
  switch status {
  case 1: return "end of file"
  case 2: return "no such file"
  case 3: return "permission denied"
  case 4: return "failure"
  case 5: return "bad message"
  case 8: return "operation unsupported"
  case 10: return "no such path"
  case 11: return "file already exists"
  case 12: return "write protected"
  case 14: return "no space on filesystem"
  default: return "SFTP status \(status)"
  }
}

extension SSHConnection {
  /// The SFTP subsystem, started on first use.
  func sftpSubsystem(deadline: ContinuousClock.Instant?, token: CancelToken?, operation: String) throws -> (
    SFTPHandle, RawSFTP, RawSession
  ) {
    let (session, raw) = try liveSession(operation)
    if let sftp, let rawSFTP = sftp.rawSFTP { return (sftp, rawSFTP, raw) }
    guard let rawSFTP = try retryPointer(raw: raw, deadline: deadline, token: token, { libssh2_sftp_init(raw) }) else {
      throw failure(
        operation, kind: .file, rc: libssh2_session_last_errno(raw), context: "cannot start the SFTP subsystem")
    }
    let handle = SFTPHandle(rawSFTP: rawSFTP, session: session)
    sftp = handle
    return (handle, rawSFTP, raw)
  }

  /// An error for a failed SFTP call, with the server's SFTP status where there is one.
  func sftpFailure(_ operation: String, rawSFTP: RawSFTP, raw: RawSession, rc: Int32, context: String) -> RemoteError {
    if rc == LIBSSH2_ERROR_SFTP_PROTOCOL {
      let status = libssh2_sftp_last_error(rawSFTP)
      return RemoteError(
        host: host, operation: operation, kind: .file, message: "\(context): \(sftpStatusText(status)) (libssh2 \(rc))")
    }
    return failure(operation, kind: .file, rc: rc, context: context)
  }

  /// The SFTP status of the last failed call, when it was a protocol-level failure.
  func sftpStatus(rawSFTP: RawSFTP, raw: RawSession) -> UInt? {
    libssh2_session_last_errno(raw) == LIBSSH2_ERROR_SFTP_PROTOCOL ? libssh2_sftp_last_error(rawSFTP) : nil
  }

  /// Opens a remote file over SFTP.
  func openFile(
    _ path: String, flags: Int32, mode: Int32, deadline: ContinuousClock.Instant?, token: CancelToken?,
    operation: String
  ) throws -> SFTPFileHandle {
    let (sftp, rawSFTP, raw) = try sftpSubsystem(deadline: deadline, token: token, operation: operation)
    let file = try retryPointer(raw: raw, deadline: deadline, token: token) {
      libssh2_sftp_open_ex(rawSFTP, path, UInt32(path.utf8.count), UInt(flags), Int(mode), LIBSSH2_SFTP_OPENFILE)
    }
    guard let file else {
      throw sftpFailure(
        operation, rawSFTP: rawSFTP, raw: raw, rc: libssh2_session_last_errno(raw), context: "cannot open \(path)")
    }
    return SFTPFileHandle(rawFile: file, sftp: sftp)
  }

  /// Closes an SFTP file handle (retrying on EAGAIN).
  func closeFile(_ file: SFTPFileHandle, deadline: ContinuousClock.Instant?) {
    guard let rawFile = file.rawFile, let raw = session?.rawSession else { return }
    let limit = deadline ?? ContinuousClock.now + Self.cleanupTimeout
    _ = try? retry(raw: raw, deadline: limit, token: nil) { libssh2_sftp_close_handle(rawFile) }
    file.forget()
  }

  /// Reads up to `maxLength` bytes of a remote file from `offset`, over SFTP.
  ///
  /// Without `maxLength` the whole rest of the file is read, but never more than the stdout
  /// limit of ``SSHOptions/outputLimits``: a larger file is `.outputTooLarge`, not a memory blow-up.
  /// - Throws: ``RemoteError`` `.file` with the SFTP status (no such file, permission denied…).
  public func readFile(_ path: String, offset: UInt64, maxLength: Int?) async throws -> [UInt8] {
    let operation = "read file \(path)"
    let deadline = options.commandTimeout.map { ContinuousClock.now + $0 }
    let cap = options.outputLimits.stdout
    let result = try await withCancellation(operation: operation) { token in
      var result: [UInt8] = []
      try readFileChunks(
        path, offset: offset, maxLength: maxLength ?? (cap + 1), deadline: deadline, token: token,
        operation: operation
      ) {
        result.append(contentsOf: $0)
      }
      return result
    }
    if maxLength == nil && result.count > cap {
      throw RemoteError(
        host: host, operation: operation, kind: .outputTooLarge,
        message: "the file holds more than \(OutputLimits.describe(cap)) past offset \(offset); read it in parts")
    }
    return result
  }

  /// Reads a remote file in chunks of up to 256 KiB, handing each to `body` as it arrives.
  ///
  /// > "may not fill all of buffer" … "returns 0 at EOF" (libssh2_sftp_read.md)
  func readFileChunks(
    _ path: String, offset: UInt64, maxLength: Int?, deadline: ContinuousClock.Instant?, token: CancelToken?,
    operation: String, body: (UnsafeRawBufferPointer) -> Void
  ) throws {
    if maxLength == 0 { return }
    let file = try openFile(
      path, flags: LIBSSH2_FXF_READ, mode: 0, deadline: deadline, token: token, operation: operation)
    defer { closeFile(file, deadline: nil) }
    guard let rawFile = file.rawFile, let raw = session?.rawSession, let rawSFTP = sftp?.rawSFTP else { return }
    libssh2_sftp_seek64(rawFile, offset)
    let capacity = 256 * 1024
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
    defer { buffer.deallocate() }
    var remaining = maxLength ?? Int.max
    while remaining > 0 {
      let want = min(capacity, remaining)
      let count = libssh2_sftp_read(rawFile, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), want)
      if count == Int(LIBSSH2_ERROR_EAGAIN) {
        try waitSession(raw: raw, deadline: deadline, token: token)
        continue
      }
      if count < 0 {
        throw sftpFailure(operation, rawSFTP: rawSFTP, raw: raw, rc: Int32(clamping: count), context: "read failed")
      }
      if count == 0 { break }
      body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
      remaining -= count
    }
  }

  /// Returns size, mode, owner and mtime of a remote path (following symlinks), or `nil` if absent.
  ///
  /// - Throws: ``RemoteError`` `.file` for any failure other than "no such file".
  public func stat(_ path: String) async throws -> RemoteFileStat? {
    let operation = "stat \(path)"
    let deadline = options.commandTimeout.map { ContinuousClock.now + $0 }
    return try await withCancellation(operation: operation) { token in
      try statBlocking(path, deadline: deadline, token: token, operation: operation)
    }
  }

  func statBlocking(_ path: String, deadline: ContinuousClock.Instant?, token: CancelToken?, operation: String) throws
    -> RemoteFileStat?
  {
    let (_, rawSFTP, raw) = try sftpSubsystem(deadline: deadline, token: token, operation: operation)
    var attributes = LIBSSH2_SFTP_ATTRIBUTES()
    let rc = try retry(raw: raw, deadline: deadline, token: token) {
      libssh2_sftp_stat_ex(rawSFTP, path, UInt32(path.utf8.count), LIBSSH2_SFTP_STAT, &attributes)
    }
    if rc != 0 {
      if let status = sftpStatus(rawSFTP: rawSFTP, raw: raw),
        status == LIBSSH2_FX_NO_SUCH_FILE || status == LIBSSH2_FX_NO_SUCH_PATH
      {
        return nil
      }
      throw sftpFailure(operation, rawSFTP: rawSFTP, raw: raw, rc: rc, context: "stat failed")
    }
    return RemoteFileStat(
      size: UInt64(attributes.filesize), inode: nil, mode: UInt32(truncatingIfNeeded: attributes.permissions),
      uid: UInt32(truncatingIfNeeded: attributes.uid), gid: UInt32(truncatingIfNeeded: attributes.gid),
      mtime: Int64(attributes.mtime))
  }

  /// Writes a whole remote file: upload to a temporary file next to `path` over SFTP, then
  /// `mv -f` it into place over exec (posix-rename arrived in libssh2 1.11.1; Debian 12 ships 1.10).
  ///
  /// The new file gets `mode`; when `path` already exists, its owner and group are kept where
  /// the login user may set them (root can; others keep their own ownership).
  /// - Throws: ``RemoteError`` `.file`; the temporary file is removed on failure.
  public func writeFile(_ path: String, contents: [UInt8], mode: UInt32) async throws {
    let operation = "write file \(path)"
    let deadline = options.commandTimeout.map { ContinuousClock.now + $0 }
    try await withCancellation(operation: operation) { token in
      try writeFileBlocking(
        path, contents: contents, mode: mode, deadline: deadline, token: token, operation: operation)
    }
  }

  func writeFileBlocking(
    _ path: String, contents: [UInt8], mode: UInt32, deadline: ContinuousClock.Instant?, token: CancelToken?,
    operation: String
  ) throws {
    let existing = try statBlocking(path, deadline: deadline, token: token, operation: operation)
    if existing?.isDirectory == true {
      throw RemoteError(host: host, operation: operation, kind: .file, message: "\(path) is a directory")
    }
    var components = path.split(separator: "/", omittingEmptySubsequences: false)
    let name = components.popLast().map(String.init) ?? path
    guard !name.isEmpty else {
      throw RemoteError(host: host, operation: operation, kind: .file, message: "not a file path: \(path)")
    }
    let directory = components.joined(separator: "/")
    let temporary =
      (directory.isEmpty && !path.hasPrefix("/") ? "" : directory + "/")
      + ".\(name).svctrace-\(UInt32.random(in: .min ... .max)).tmp"

    let file = try openFile(
      temporary, flags: LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL | LIBSSH2_FXF_TRUNC, mode: 0o600,
      deadline: deadline, token: token, operation: operation)
    var moved = false
    defer {
      closeFile(file, deadline: nil)
      if !moved, let rawSFTP = sftp?.rawSFTP, let raw = session?.rawSession {
        let limit = ContinuousClock.now + Self.cleanupTimeout
        _ = try? retry(raw: raw, deadline: limit, token: nil) {
          libssh2_sftp_unlink_ex(rawSFTP, temporary, UInt32(temporary.utf8.count))
        }
      }
    }
    guard let rawFile = file.rawFile, let raw = session?.rawSession, let rawSFTP = sftp?.rawSFTP else { return }
    var offset = 0
    while offset < contents.count {
      let count = contents.withUnsafeBytes { bytes in
        libssh2_sftp_write(
          rawFile, bytes.baseAddress?.advanced(by: offset).assumingMemoryBound(to: CChar.self),
          min(bytes.count - offset, 256 * 1024))
      }
      if count == Int(LIBSSH2_ERROR_EAGAIN) {
        try waitSession(raw: raw, deadline: deadline, token: token)
        continue
      }
      if count < 0 {
        throw sftpFailure(
          operation, rawSFTP: rawSFTP, raw: raw, rc: Int32(clamping: count), context: "writing \(temporary) failed")
      }
      offset += count
    }
    var attributes = LIBSSH2_SFTP_ATTRIBUTES()
    attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
    attributes.permissions = UInt(mode & 0o7777)
    if let existing {
      attributes.flags |= UInt(LIBSSH2_SFTP_ATTR_UIDGID)
      attributes.uid = UInt(existing.uid)
      attributes.gid = UInt(existing.gid)
    }
    var rc = try retry(raw: raw, deadline: deadline, token: token) {
      libssh2_sftp_fstat_ex(rawFile, &attributes, 1)
    }
    if rc != 0 && existing != nil {
      logger.debug("cannot keep the owner of the replaced file", metadata: ["op": "write file", "path": "\(path)"])
      attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
      rc = try retry(raw: raw, deadline: deadline, token: token) { libssh2_sftp_fstat_ex(rawFile, &attributes, 1) }
    }
    if rc != 0 {
      throw sftpFailure(operation, rawSFTP: rawSFTP, raw: raw, rc: rc, context: "cannot set the mode of \(temporary)")
    }
    closeFile(file, deadline: deadline)
    let move = try execute(
      "mv -f -- \(ShellQuote.quote(temporary)) \(ShellQuote.quote(path))", stdin: nil, limits: options.outputLimits,
      deadline: deadline, token: token, operation: operation)
    guard move.succeeded else {
      throw RemoteError(
        host: host, operation: operation, kind: .file, message: "mv into place failed: \(move.failureSummary)")
    }
    moved = true
  }
}
