/// An error that happened while acting on one node: which node, which operation, what went wrong.
///
/// Its description reads `Unable to <operation> on <host>: <message>`. Secrets never appear in
/// `message`.
public struct RemoteError: Error, Sendable, CustomStringConvertible, Equatable {
  /// What class of failure this is; lets callers tell "unreachable" from "failed".
  public struct Kind: Hashable, Sendable, CustomStringConvertible {
    private let raw: String
    private init(_ raw: String) { self.raw = raw }
    public var description: String { raw }

    /// TCP connect, DNS or proxy hop failed: the node was not reached.
    public static let unreachable = Kind("unreachable")
    /// The server's host key is unknown or changed.
    public static let hostKey = Kind("host key")
    /// No authentication method was accepted.
    public static let authentication = Kind("authentication")
    /// Privilege escalation (sudo) failed.
    public static let become = Kind("become")
    /// A remote command ran but did not succeed.
    public static let commandFailed = Kind("command failed")
    /// An operation ran out of time.
    public static let timeout = Kind("timeout")
    /// A protocol-level or library failure.
    public static let protocolError = Kind("protocol")
    /// A file operation failed.
    public static let file = Kind("file")
    /// The operation was cancelled (Ctrl-C).
    public static let cancelled = Kind("cancelled")
    /// A command wrote more to stdout or stderr than its ``OutputLimits`` allow.
    public static let outputTooLarge = Kind("output too large")
    /// The server stopped answering on an open connection (keepalives unanswered).
    public static let connectionLost = Kind("connection lost")
  }

  public var host: HostID
  public var operation: String
  public var kind: Kind
  public var message: String

  public init(host: HostID, operation: String, kind: Kind, message: String) {
    self.host = host
    self.operation = operation
    self.kind = kind
    self.message = message
  }

  public var description: String { "Unable to \(operation) on \(host): \(message)" }

  /// A command on one line, shortened to 80 characters, for operation names.
  public static func abbreviate(_ command: String) -> String {
    let oneLine = command.split(whereSeparator: \.isNewline).joined(separator: " ")
    return oneLine.count > 80 ? String(oneLine.prefix(77)) + "..." : oneLine
  }

  /// `true` when the node could not be reached or logged into (the recap's "unreachable").
  public var isUnreachable: Bool {
    kind == .unreachable || kind == .hostKey || kind == .authentication || kind == .timeout && operation == "connect"
  }
}
