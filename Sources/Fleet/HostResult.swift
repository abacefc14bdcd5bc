public import SVCTraceCore

/// How one host fared in a fleet operation, as the recap prints it.
public enum HostStatus: String, Codable, Sendable, CaseIterable {
  /// Reached, and nothing needed changing.
  case ok
  /// Reached, and something was changed.
  case changed
  /// Reached, but the operation failed (the node was left as it was where that applies).
  case failed
  /// Not reached: connection, host key or authentication failed.
  case unreachable
  /// Not attempted (an earlier batch exceeded `--max-fail-percent`, or cancelled before start).
  case skipped

  /// `true` for outcomes that make the command exit non-zero.
  public var isFailure: Bool { self == .failed || self == .unreachable || self == .skipped }
}

/// What a per-host operation returns when it succeeds.
public struct HostOutcome<Payload: Sendable>: Sendable {
  public var changed: Bool
  public var message: String?
  public var payload: Payload?

  public init(changed: Bool = false, message: String? = nil, payload: Payload? = nil) {
    self.changed = changed
    self.message = message
    self.payload = payload
  }
}

/// One host's row in the recap: status, reason and the operation's own result.
public struct HostResult<Payload: Sendable>: Sendable {
  public var host: HostID
  public var status: HostStatus
  /// Why it failed, or a short note on what changed.
  public var message: String?
  /// Wall time spent on this host, connection included.
  public var seconds: Double
  public var payload: Payload?

  public init(host: HostID, status: HostStatus, message: String? = nil, seconds: Double = 0, payload: Payload? = nil) {
    self.host = host
    self.status = status
    self.message = message
    self.seconds = seconds
    self.payload = payload
  }
}

extension HostResult: Encodable where Payload: Encodable {
  private enum CodingKeys: String, CodingKey { case host, status, message, seconds, result }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(host, forKey: .host)
    try container.encode(status, forKey: .status)
    try container.encodeIfPresent(message, forKey: .message)
    try container.encode((seconds * 1000).rounded() / 1000, forKey: .seconds)
    try container.encodeIfPresent(payload, forKey: .result)
  }
}
