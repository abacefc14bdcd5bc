internal import CLibSSH2
import Logging
import SVCTraceCore

/// Host-key algorithms libssh2 1.10 can verify, in `ssh`'s order of preference.
let supportedHostKeyAlgorithms = [
  "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
]

extension SSHConnection {
  /// Asks the server for the key type we already trust (like `ssh` orders HostKeyAlgorithms).
  ///
  /// > "LIBSSH2_METHOD_HOSTKEY: Public key algorithms" … "prefs: Coma delimited list of preferred
  /// > methods to use with the most preferred listed first" (libssh2_session_method_pref.md)
  /// - Throws: ``RemoteError`` (`.hostKey`) when a `known_hosts` file cannot be read.
  func preferKnownHostKeyAlgorithms(raw: RawSession) throws {
    let knownTypes: Set<String>
    do {
      knownTypes = try options.hostKeyPolicy.knownKeyTypes(
        lookupName: KnownHosts.lookupName(host: target.hostname, port: target.port))
    } catch {
      throw RemoteError(
        host: host, operation: "verify host key", kind: .hostKey, message: "cannot read known_hosts file \(error)")
    }
    // Known types first, in ssh's own order of preference (not file order), then the rest.
    let known = supportedHostKeyAlgorithms.filter { knownTypes.contains($0) }
    guard !known.isEmpty else { return }
    let preference = (known + supportedHostKeyAlgorithms.filter { !known.contains($0) }).joined(separator: ",")
    let rc = libssh2_session_method_pref(raw, LIBSSH2_METHOD_HOSTKEY, preference)
    logger.trace("host key preference", metadata: ["op": "connect", "prefs": "\(preference)", "rc": "\(rc)"])
  }

  /// Checks the server's key with the ``HostKeyPolicy`` of ``SSHOptions`` before any authentication.
  ///
  /// libssh2 only supplies the offered key (`libssh2_session_hostkey`); the decision is the policy's.
  /// - Throws: ``RemoteError`` (`.hostKey`) whose message is the ``HostKeyError``'s.
  func verifyHostKey(raw: RawSession) throws {
    let operation = "verify host key"
    var length = 0
    var type: Int32 = 0
    guard let keyPointer = libssh2_session_hostkey(raw, &length, &type), length > 0 else {
      throw failure(operation, kind: .protocolError, rc: libssh2_session_last_errno(raw), context: "no host key")
    }
    let blob = keyPointer.withMemoryRebound(to: UInt8.self, capacity: length) {
      Array(UnsafeBufferPointer(start: $0, count: length))
    }
    let offered = OfferedHostKey(hostname: target.hostname, port: target.port, key: blob)
    hostKeyFingerprint = offered.fingerprint
    hostKeyType = offered.keyType
    let decision: HostKeyDecision
    do { decision = try options.hostKeyPolicy.verify(offered) } catch {
      throw RemoteError(host: host, operation: operation, kind: .hostKey, message: error.description)
    }
    switch decision {
    case .accept(let file, let line):
      logger.debug(
        "host key verified",
        metadata: ["op": "verify host key", "fingerprint": "\(offered.fingerprint)", "known": "\(file):\(line)"])
    case .acceptAndRecord(let file, _):
      logger.info(
        "new host key recorded",
        metadata: ["op": "verify host key", "file": "\(file)", "fingerprint": "\(offered.fingerprint)"])
    case .reject(let error):
      throw RemoteError(host: host, operation: operation, kind: .hostKey, message: error.description)
    }
  }
}
