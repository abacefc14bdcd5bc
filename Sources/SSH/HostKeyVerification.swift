internal import CLibSSH2
import Logging
import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Host-key algorithms libssh2 1.10 can verify, in `ssh`'s order of preference.
let supportedHostKeyAlgorithms = [
  "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
]

extension SSHConnection {
  /// Reads every configured `known_hosts` file.
  func loadKnownHosts() throws -> [KnownHostEntry] {
    var entries: [KnownHostEntry] = []
    for file in options.knownHostsFiles {
      do { entries += try KnownHosts.load(path: file) } catch {
        throw RemoteError(
          host: host, operation: "verify host key", kind: .hostKey, message: "cannot read known_hosts file \(error)")
      }
    }
    return entries
  }

  /// Asks the server for the key type we already trust (like `ssh` orders HostKeyAlgorithms).
  ///
  /// > "LIBSSH2_METHOD_HOSTKEY: Public key algorithms" … "prefs: Coma delimited list of preferred
  /// > methods to use with the most preferred listed first" (libssh2_session_method_pref.md)
  func preferKnownHostKeyAlgorithms(raw: RawSession, entries: [KnownHostEntry], lookupName: String) {
    // Known types first, in ssh's own order of preference (not file order), then the rest.
    let knownTypes = Set(entries.filter { $0.marker == nil && $0.matches(lookupName) }.map(\.keyType))
    let known = supportedHostKeyAlgorithms.filter { knownTypes.contains($0) }
    guard !known.isEmpty else { return }
    let preference = (known + supportedHostKeyAlgorithms.filter { !known.contains($0) }).joined(separator: ",")
    let rc = libssh2_session_method_pref(raw, LIBSSH2_METHOD_HOSTKEY, preference)
    logger.trace("host key preference", metadata: ["op": "connect", "prefs": "\(preference)", "rc": "\(rc)"])
  }

  /// Checks the server's key against `known_hosts` before any authentication.
  ///
  /// Unknown keys fail unless `acceptNewHostKeys` (then the key is appended to the first file);
  /// a changed key always fails and names the file and line of the old key.
  func verifyHostKey(raw: RawSession, session: SessionHandle, entries: [KnownHostEntry], lookupName: String) throws {
    let operation = "verify host key"
    var length = 0
    var type: Int32 = 0
    guard let keyPointer = libssh2_session_hostkey(raw, &length, &type), length > 0 else {
      throw failure(operation, kind: .protocolError, rc: libssh2_session_last_errno(raw), context: "no host key")
    }
    let blob = keyPointer.withMemoryRebound(to: UInt8.self, capacity: length) {
      Array(UnsafeBufferPointer(start: $0, count: length))
    }
    let keyType = KnownHosts.keyType(ofBlob: blob) ?? "unknown"
    let fingerprint = KnownHosts.fingerprint(ofBlob: blob)
    hostKeyFingerprint = fingerprint
    hostKeyType = keyType
    let shown = "\(keyType) key \(fingerprint)"
    let address = "\(target.hostname):\(target.port)"

    if let revoked = entries.first(where: { $0.marker == "@revoked" && Base64.decode($0.keyBase64) == blob }) {
      throw RemoteError(
        host: host, operation: operation, kind: .hostKey,
        message: "the \(shown) offered by \(address) is marked @revoked in \(revoked.file):\(revoked.line)")
    }

    // libssh2's check, with the key type in the mask so a line of another type is not a mismatch.
    guard let knownHosts = KnownHostsHandle(session: session) else {
      throw failure(
        operation, kind: .protocolError, rc: libssh2_session_last_errno(raw), context: "libssh2_knownhost_init")
    }
    for entry in entries where entry.marker == nil {
      let rc = libssh2_knownhost_readline(
        knownHosts.rawKnownHosts, entry.text, entry.text.utf8.count, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
      if rc != 0 {
        logger.trace(
          "known_hosts line skipped by libssh2", metadata: ["file": "\(entry.file)", "line": "\(entry.line)"])
      }
    }
    let keyBit: Int32
    switch type {
    case LIBSSH2_HOSTKEY_TYPE_ED25519: keyBit = svctrace_knownhost_key_ed25519()
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: keyBit = svctrace_knownhost_key_ecdsa_256()
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: keyBit = svctrace_knownhost_key_ecdsa_384()
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: keyBit = svctrace_knownhost_key_ecdsa_521()
    case LIBSSH2_HOSTKEY_TYPE_RSA: keyBit = svctrace_knownhost_key_sshrsa()
    case LIBSSH2_HOSTKEY_TYPE_DSS: keyBit = svctrace_knownhost_key_sshdss()
    default:
      throw RemoteError(
        host: host, operation: operation, kind: .hostKey, message: "unsupported host key type \(keyType)")
    }
    let typeMask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keyBit
    var check = libssh2_knownhost_checkp(
      knownHosts.rawKnownHosts, target.hostname, Int32(target.port), keyPointer, length, typeMask, nil)

    // libssh2 also accepts a plain `host` line for a non-22 port; ssh only `[host]:port`.
    let sameType = entries.filter { $0.marker == nil && $0.keyType == keyType && $0.matches(lookupName) }
    let exact = sameType.first { Base64.decode($0.keyBase64) == blob }
    if check == LIBSSH2_KNOWNHOST_CHECK_MATCH && exact == nil { check = LIBSSH2_KNOWNHOST_CHECK_NOTFOUND }
    if check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH && sameType.isEmpty { check = LIBSSH2_KNOWNHOST_CHECK_NOTFOUND }
    if check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && exact != nil { check = LIBSSH2_KNOWNHOST_CHECK_MATCH }
    if check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && exact == nil && !sameType.isEmpty {
      check = LIBSSH2_KNOWNHOST_CHECK_MISMATCH
    }

    switch check {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      logger.debug("host key verified", metadata: ["op": "verify host key", "fingerprint": "\(fingerprint)"])
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
      let old = sameType.first { Base64.decode($0.keyBase64) != blob }
      let recordedAt = old.map { "\($0.file):\($0.line)" } ?? "known_hosts"
      let oldFingerprint = old.flatMap { Base64.decode($0.keyBase64) }.map(KnownHosts.fingerprint(ofBlob:)) ?? "?"
      var message = "HOST KEY CHANGED: \(address) now offers \(shown), but \(recordedAt) records a different "
      message += "\(keyType) key (\(oldFingerprint)) for \(lookupName). Someone may be intercepting the connection, "
      message += "or the host was reinstalled; verify, then remove the old line (ssh-keygen -R '\(lookupName)'"
      if let old { message += " -f \(old.file)" }
      message += ")"
      throw RemoteError(host: host, operation: operation, kind: .hostKey, message: message)
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
      let otherTypes = Set(entries.filter { $0.marker == nil && $0.matches(lookupName) }.map(\.keyType)).sorted()
      let note = otherTypes.isEmpty ? "" : " (known_hosts has only \(otherTypes.joined(separator: ", ")) keys for it)"
      guard options.acceptNewHostKeys, let file = options.knownHostsFiles.first else {
        throw RemoteError(
          host: host, operation: operation, kind: .hostKey,
          message:
            "host key of \(lookupName) is not known\(note): the server offers \(shown). Not found in "
            + "\(options.knownHostsFiles.joined(separator: ", ")). Check the fingerprint, then add the key or "
            + "connect with --accept-new-host-keys")
      }
      let line = KnownHosts.line(host: target.hostname, port: target.port, keyType: keyType, key: blob)
      do { try KnownHosts.append(line: line, to: file) } catch {
        throw RemoteError(
          host: host, operation: operation, kind: .hostKey, message: "cannot record the new host key: \(error)")
      }
      logger.info(
        "new host key recorded",
        metadata: ["op": "verify host key", "file": "\(file)", "fingerprint": "\(fingerprint)"])
    default:
      throw failure(operation, kind: .hostKey, rc: check, context: "known_hosts check failed")
    }
  }
}
