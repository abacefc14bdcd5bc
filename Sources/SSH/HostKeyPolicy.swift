/// A host key a server offered during the handshake, with the name it is looked up under.
public struct OfferedHostKey: Sendable, Equatable {
  /// The address or DNS name that was dialled.
  public var hostname: String
  /// The TCP port that was dialled.
  public var port: Int
  /// The key type named inside the blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …), `unknown` if unreadable.
  public var keyType: String
  /// The public-key blob in SSH wire format.
  public var key: [UInt8]

  /// Creates an offered key; the key type is read from the blob.
  public init(hostname: String, port: Int, key: [UInt8]) {
    self.hostname = hostname
    self.port = port
    self.key = key
    keyType = KnownHosts.keyType(ofBlob: key) ?? "unknown"
  }

  /// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
  public var lookupName: String { KnownHosts.lookupName(host: hostname, port: port) }

  /// `SHA256:<base64 without padding>`, exactly as `ssh` and `ssh-keygen -l` print it.
  public var fingerprint: String { KnownHosts.fingerprint(ofBlob: key) }
}

/// Why a host key was refused. Its description is the message shown to the user.
public struct HostKeyError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The reason, with where in `known_hosts` it was found.
  public enum Reason: Sendable, Equatable {
    /// No line of the host: `searched` are the files consulted.
    case unknown(searched: [String])
    /// The host is known only with keys of other types (strict mode).
    case typeMismatch(knownTypes: [String], searched: [String])
    /// `file`:`line` records another key for the host. When `oldKeyType` differs from the offered
    /// type, accept-new refused to record a key of a new type for a known host.
    case changed(file: String, line: Int, oldKeyType: String, oldFingerprint: String)
    /// The offered key is marked `@revoked` at `file`:`line`.
    case revoked(file: String, line: Int)
    /// A `known_hosts` file could not be read.
    case unreadable(file: String, message: String)
    /// The accepted key could not be written to `file`.
    case cannotRecord(file: String, message: String)
  }

  /// The host's name as `known_hosts` spells it (`host` or `[host]:port`).
  public var lookupName: String
  /// `hostname:port` as dialled.
  public var address: String
  /// The offered key's type.
  public var offeredKeyType: String
  /// The offered key's `SHA256:` fingerprint.
  public var offeredFingerprint: String
  public var reason: Reason

  /// The error for `offered`, refused for `reason`.
  public init(_ offered: OfferedHostKey, _ reason: Reason) {
    lookupName = offered.lookupName
    address = "\(offered.hostname):\(offered.port)"
    offeredKeyType = offered.keyType
    offeredFingerprint = offered.fingerprint
    self.reason = reason
  }

  public var description: String {
    let shown = "\(offeredKeyType) key \(offeredFingerprint)"
    switch reason {
    case .unknown(let searched):
      return notKnown(shown: shown, note: "", searched: searched)
    case .typeMismatch(let knownTypes, let searched):
      return notKnown(
        shown: shown, note: " (known_hosts has only \(knownTypes.joined(separator: ", ")) keys for it)",
        searched: searched)
    case .changed(let file, let line, let oldKeyType, let oldFingerprint):
      var message = "HOST KEY CHANGED: \(address) now offers \(shown), but \(file):\(line) records "
      if oldKeyType == offeredKeyType {
        message += "a different \(oldKeyType) key (\(oldFingerprint)) for \(lookupName). "
        message += "Someone may be intercepting the connection, or the host was reinstalled; "
      } else {
        message += "a \(oldKeyType) key (\(oldFingerprint)) for \(lookupName), and a key of a new type is not recorded "
        message += "for a known host (a substituted key type can hide an interception); "
      }
      return message + "verify, then remove the old line (ssh-keygen -R '\(lookupName)' -f \(file))"
    case .revoked(let file, let line):
      return "the \(shown) offered by \(address) is marked @revoked in \(file):\(line)"
    case .unreadable(_, let message):
      return "cannot read known_hosts file \(message)"
    case .cannotRecord(_, let message):
      return "cannot record the new host key: \(message)"
    }
  }

  private func notKnown(shown: String, note: String, searched: [String]) -> String {
    "host key of \(lookupName) is not known\(note): the server offers \(shown). Not found in "
      + "\(searched.joined(separator: ", ")). Check the fingerprint, then add the key or "
      + "connect with --accept-new-host-keys"
  }
}

/// What a ``HostKeyPolicy`` decided for an offered key.
public enum HostKeyDecision: Sendable, Equatable {
  /// A line at `file`:`line` vouches for the key.
  case accept(file: String, line: Int)
  /// The host is unknown and the policy records the key: the `entry` line is (or was) appended to `file`.
  case acceptAndRecord(file: String, entry: String)
  /// The key is refused.
  case reject(HostKeyError)
}

/// Decides whether to trust a server's host key, over a list of OpenSSH `known_hosts` files
/// (like swift-nio-ssh's `validateHostKey`, but synchronous and without a session).
///
/// The files are read with svctrace's own parser: plain and hashed (`|1|salt|hash`) host
/// fields, `[host]:port` for ports other than 22, `@revoked` lines refuse their key for every
/// host, `@cert-authority` lines are not host keys and are ignored. Only lines of the offered
/// key's type vouch for it or contradict it. A changed key is always refused, naming the file
/// and line of the old key.
public struct HostKeyPolicy: Sendable, Equatable {
  /// How to treat a host that has no key in `known_hosts`.
  public enum Mode: Sendable, Equatable {
    /// Refuse it (`StrictHostKeyChecking=yes`).
    case strict
    /// Record its key in the first file (`StrictHostKeyChecking=accept-new`), unless the host is
    /// already known with a key of another type.
    case acceptNew
  }

  public var mode: Mode
  /// The files to consult; accepted keys are appended to the first one.
  public var knownHostsFiles: [String]

  /// Creates a policy over `knownHostsFiles`.
  public init(mode: Mode, knownHostsFiles: [String]) {
    self.mode = mode
    self.knownHostsFiles = knownHostsFiles
  }

  /// Decides for `offered` against the files as they are now, without writing anything.
  public func decide(_ offered: OfferedHostKey) -> HostKeyDecision {
    do { return decide(offered, entries: try entries()) } catch {
      return .reject(HostKeyError(offered, .unreadable(file: error.path, message: "\(error)")))
    }
  }

  /// Decides for `offered` and, for ``HostKeyDecision/acceptAndRecord(file:entry:)``, appends the
  /// line under an exclusive lock of the file, deciding again on what the file holds then (a
  /// parallel first contact may have recorded the same key, or another one, meanwhile).
  ///
  /// - Returns: ``HostKeyDecision/accept(file:line:)`` or ``HostKeyDecision/acceptAndRecord(file:entry:)``.
  /// - Throws: ``HostKeyError`` for every refusal.
  public func verify(_ offered: OfferedHostKey) throws(HostKeyError) -> HostKeyDecision {
    let decision = decide(offered)
    guard case .acceptAndRecord(let file, _) = decision else {
      if case .reject(let error) = decision { throw error }
      return decision
    }
    // Under the lock: the other files as read a moment ago, the written one as it is now.
    let others: [KnownHostEntry]
    do { others = try entries(skippingFirst: true) } catch {
      throw HostKeyError(offered, .unreadable(file: error.path, message: "\(error)"))
    }
    var final = decision
    do {
      _ = try KnownHosts.appendLocked(to: file) { (current) throws(HostKeyError) -> String? in
        final = decide(offered, entries: current + others)
        switch final {
        case .accept: return nil
        case .acceptAndRecord(_, let line): return line
        case .reject(let error): throw error
        }
      }
    } catch {
      switch error {
      case .rejected(let rejection): throw rejection
      case .io(let io): throw HostKeyError(offered, .cannotRecord(file: file, message: "\(io)"))
      }
    }
    return final
  }

  /// The key types `known_hosts` holds for `lookupName` (ordinary lines only), to prefer in the handshake.
  func knownKeyTypes(lookupName: String) throws(KnownHostsReadError) -> Set<String> {
    Set(try entries().filter { $0.marker == nil && $0.matches(lookupName) }.map(\.keyType))
  }

  /// Every line of every file, in file order.
  func entries(skippingFirst: Bool = false) throws(KnownHostsReadError) -> [KnownHostEntry] {
    var entries: [KnownHostEntry] = []
    for file in knownHostsFiles.dropFirst(skippingFirst ? 1 : 0) { entries += try KnownHosts.load(path: file) }
    return entries
  }

  /// The decision over already-read lines (pure).
  func decide(_ offered: OfferedHostKey, entries: [KnownHostEntry]) -> HostKeyDecision {
    if let revoked = entries.first(where: { $0.marker == "@revoked" && $0.key == offered.key }) {
      return .reject(HostKeyError(offered, .revoked(file: revoked.file, line: revoked.line)))
    }
    let lookupName = offered.lookupName
    let forHost = entries.filter { $0.marker == nil && $0.matches(lookupName) }
    let sameType = forHost.filter { $0.keyType == offered.keyType }
    if let match = sameType.first(where: { $0.key == offered.key }) {
      return .accept(file: match.file, line: match.line)
    }
    if let old = sameType.first {
      return .reject(HostKeyError(offered, .changed(old)))
    }
    if let other = forHost.first {
      switch mode {
      case .strict:
        let types = Set(forHost.map(\.keyType)).sorted()
        return .reject(HostKeyError(offered, .typeMismatch(knownTypes: types, searched: knownHostsFiles)))
      case .acceptNew:
        return .reject(HostKeyError(offered, .changed(other)))
      }
    }
    guard mode == .acceptNew, let file = knownHostsFiles.first else {
      return .reject(HostKeyError(offered, .unknown(searched: knownHostsFiles)))
    }
    let line = KnownHosts.line(host: offered.hostname, port: offered.port, keyType: offered.keyType, key: offered.key)
    return .acceptAndRecord(file: file, entry: line)
  }
}

extension HostKeyError.Reason {
  /// `changed` naming `old`'s file, line, type and fingerprint.
  static func changed(_ old: KnownHostEntry) -> Self {
    .changed(
      file: old.file, line: old.line, oldKeyType: old.keyType, oldFingerprint: KnownHosts.fingerprint(ofBlob: old.key))
  }
}
