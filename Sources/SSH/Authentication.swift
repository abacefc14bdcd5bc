internal import CLibSSH2
import Logging
import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What can be learnt from a private key file without its passphrase.
struct KeyFileInfo {
  /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, … or `nil` when not recognisable.
  var keyType: String?
  /// `true` when the private key is encrypted with a passphrase.
  var encrypted: Bool

  /// Inspects an OpenSSH (`openssh-key-v1`) or PEM private key, and its `.pub` neighbour.
  static func inspect(path: String) -> KeyFileInfo? {
    guard let bytes = try? KnownHosts.readWholeFile(path) else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    var info = KeyFileInfo(keyType: nil, encrypted: false)
    if let pub = try? KnownHosts.readWholeFile(path + ".pub") {
      let fields = String(decoding: pub, as: UTF8.self).split(separator: " ")
      if let first = fields.first { info.keyType = String(first) }
    }
    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
      let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
      guard let blob = KnownHosts.base64Decode(body) else { return info }
      var reader = SSHWireReader(bytes: blob)
      guard reader.skip(prefix: Array("openssh-key-v1\0".utf8)), let cipher = reader.string() else { return info }
      info.encrypted = String(decoding: cipher, as: UTF8.self) != "none"
      _ = reader.string()  // kdfname
      _ = reader.string()  // kdfoptions
      _ = reader.uint32()  // number of keys
      if let publicKey = reader.string(), let type = KnownHosts.keyType(ofBlob: publicKey) { info.keyType = type }
    } else {
      info.encrypted = text.contains("ENCRYPTED")
      if text.contains("BEGIN RSA PRIVATE KEY") { info.keyType = info.keyType ?? "ssh-rsa" }
      if text.contains("BEGIN EC PRIVATE KEY") { info.keyType = info.keyType ?? "ecdsa" }
    }
    return info
  }
}

/// Reads SSH wire-format fields (RFC 4251 §5).
struct SSHWireReader {
  var bytes: [UInt8]
  var offset = 0

  mutating func skip(prefix: [UInt8]) -> Bool {
    guard bytes.count >= prefix.count, Array(bytes[0..<prefix.count]) == prefix else { return false }
    offset = prefix.count
    return true
  }

  mutating func uint32() -> UInt32? {
    guard offset + 4 <= bytes.count else { return nil }
    let value = bytes[offset..<(offset + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    offset += 4
    return value
  }

  mutating func string() -> [UInt8]? {
    guard let length = uint32(), Int(length) <= bytes.count - offset else { return nil }
    let value = Array(bytes[offset..<(offset + Int(length))])
    offset += Int(length)
    return value
  }
}

extension SSHConnection {
  /// Authenticates like `ssh`: agent keys, then key files, then password / keyboard-interactive.
  ///
  /// - Throws: ``RemoteError`` `.authentication` listing what was tried and why each failed.
  func authenticate(raw: RawSession, session: SessionHandle, deadline: ContinuousClock.Instant, token: CancelToken)
    throws
  {
    let operation = "authenticate"
    let user = target.user
    let userLength = UInt32(user.utf8.count)
    let listPointer = try retryPointer(raw: raw, deadline: deadline, token: token) {
      libssh2_userauth_list(raw, user, userLength)
    }
    guard let listPointer else {
      if libssh2_userauth_authenticated(raw) != 0 { return }  // "none" was accepted
      throw failure(
        operation, kind: .authentication, rc: libssh2_session_last_errno(raw), context: "cannot list auth methods")
    }
    var methods = String(cString: listPointer).split(separator: ",").map(String.init)
    logger.debug(
      "server auth methods", metadata: ["op": "\(operation)", "methods": "\(methods.joined(separator: ","))"])
    var tried: [String] = []
    var rsaRejected: [String] = []

    if methods.contains("publickey") {
      if let socketPath = options.agentSocket {
        if try authenticateWithAgent(
          raw: raw, session: session, socketPath: socketPath, deadline: deadline, token: token, tried: &tried)
        {
          return
        }
      }
      for file in target.identityFiles {
        guard access(file, R_OK) == 0 else {
          tried.append("key \(file): not readable")
          continue
        }
        let info = KeyFileInfo.inspect(path: file)
        if info?.encrypted == true && options.keyPassphrase == nil {
          tried.append("key \(file): passphrase-protected and no passphrase given (SVCTRACE_KEY_PASSPHRASE)")
          continue
        }
        let publicKey = access(file + ".pub", R_OK) == 0 ? file + ".pub" : nil
        let passphrase = options.keyPassphrase
        let rc = try retry(raw: raw, deadline: deadline, token: token) {
          libssh2_userauth_publickey_fromfile_ex(raw, user, userLength, publicKey, file, passphrase)
        }
        if rc == 0 {
          logger.debug("authenticated", metadata: ["op": "\(operation)", "method": "publickey", "key": "\(file)"])
          return
        }
        let code = LibSSH2Code(rawValue: rc)
        let message = lastErrorMessage()
        if code == .file {
          tried.append(
            "key \(file): cannot load it: \(message) (libssh2 \(rc))"
              + (info?.encrypted == true ? "; wrong passphrase?" : ""))
        } else if info?.keyType == "ssh-rsa" && LibSSH2.signsRSAWithSHA1Only
          && (code == .publickeyUnverified || code == .authenticationFailed)
        {
          rsaRejected.append(file)
          tried.append("key \(file) (ssh-rsa): rejected: \(message) (libssh2 \(rc))")
        } else {
          tried.append("key \(file): rejected: \(message) (libssh2 \(rc))")
        }
        if libssh2_userauth_authenticated(raw) != 0 { return }
      }
    } else {
      tried.append("publickey: not offered by the server")
    }

    if let password = target.password {
      if methods.contains("password") {
        let rc = try retry(raw: raw, deadline: deadline, token: token) {
          libssh2_userauth_password_ex(raw, user, userLength, password, UInt32(password.utf8.count), nil)
        }
        if rc == 0 { return }
        tried.append("password: rejected: \(lastErrorMessage()) (libssh2 \(rc))")
        // The server may now offer other methods.
        if let again = libssh2_userauth_list(raw, user, userLength) {
          methods = String(cString: again).split(separator: ",").map(String.init)
        }
      }
      if methods.contains("keyboard-interactive") {
        guard let secret = strdup(password) else {
          throw RemoteError(host: host, operation: operation, kind: .authentication, message: "out of memory")
        }
        svctrace_session_set_abstract(raw, secret)
        let rc = try retry(raw: raw, deadline: deadline, token: token) {
          svctrace_userauth_kbdint(raw, user, userLength)
        }
        svctrace_session_set_abstract(raw, nil)
        memset(secret, 0, strlen(secret))
        free(secret)
        if rc == 0 { return }
        tried.append("keyboard-interactive: rejected: \(lastErrorMessage()) (libssh2 \(rc))")
      }
      if !methods.contains("password") && !methods.contains("keyboard-interactive") {
        tried.append("password: not offered by the server")
      }
    } else if methods.contains("password") || methods.contains("keyboard-interactive") {
      tried.append("password: none given (inventory ansible_password or SVCTRACE_SSH_PASSWORD)")
    }

    var message =
      "no authentication method was accepted for user \(user) (server offers \(methods.joined(separator: ","))). Tried: "
      + (tried.isEmpty ? "nothing" : tried.joined(separator: "; "))
    if !rsaRejected.isEmpty {
      message +=
        ". Note: this libssh2 (\(LibSSH2.version)) can only sign RSA keys with SHA-1 (ssh-rsa), which OpenSSH 8.8 and "
        + "later reject by default; if \(rsaRejected.joined(separator: ", ")) is authorized on the server, that is why. "
        + "Fix: use an ed25519 key (ssh-keygen -t ed25519), or build svctrace against libssh2 >= 1.11"
    }
    throw RemoteError(host: host, operation: operation, kind: .authentication, message: message)
  }

  /// Tries every identity of the ssh-agent at `socketPath`; `true` when one was accepted.
  func authenticateWithAgent(
    raw: RawSession, session: SessionHandle, socketPath: String, deadline: ContinuousClock.Instant, token: CancelToken,
    tried: inout [String]
  ) throws -> Bool {
    guard let agent = AgentHandle(session: session) else {
      tried.append("agent: libssh2_agent_init failed")
      return false
    }
    libssh2_agent_set_identity_path(agent.rawAgent, socketPath)
    var rc = libssh2_agent_connect(agent.rawAgent)
    guard rc == 0 else {
      tried.append("agent \(socketPath): cannot connect: \(lastErrorMessage()) (libssh2 \(rc))")
      return false
    }
    agent.connected = true
    rc = libssh2_agent_list_identities(agent.rawAgent)
    guard rc == 0 else {
      tried.append("agent \(socketPath): cannot list identities: \(lastErrorMessage()) (libssh2 \(rc))")
      return false
    }
    var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
    var count = 0
    while true {
      var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
      rc = libssh2_agent_get_identity(agent.rawAgent, &identity, previous)
      guard rc == 0, let identity else { break }
      count += 1
      let user = target.user
      rc = try retry(raw: raw, deadline: deadline, token: token) {
        libssh2_agent_userauth(agent.rawAgent, user, identity)
      }
      if rc == 0 {
        logger.debug("authenticated", metadata: ["op": "authenticate", "method": "agent"])
        return true
      }
      let comment = identity.pointee.comment.map { String(cString: $0) } ?? "?"
      tried.append("agent key \(comment): rejected (libssh2 \(rc))")
      previous = identity
    }
    if count == 0 { tried.append("agent \(socketPath): no identities") }
    return false
  }
}
