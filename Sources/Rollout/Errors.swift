public import SVCTraceCore

/// A rollout failure on one node: which node, which operation, and why.
///
/// Its description reads `Unable to <operation> on <host>: <reason>`.
public struct RolloutError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The class of failure.
  public enum Kind: String, Sendable, Equatable {
    /// The node's dataplane cannot be traced with netfilter LOG rules (eBPF, IPVS).
    case unsupportedDataplane
    /// No kube-proxy rules were found on the node.
    case noKubeProxy
    /// A node command failed.
    case commandFailed
    /// A node file could not be read or written.
    case file
    /// Node output could not be understood.
    case unexpectedOutput
  }

  /// The node the operation ran on.
  public var host: HostID
  public var operation: String
  public var kind: Kind
  public var reason: String

  public init(host: HostID, operation: String, kind: Kind, reason: String) {
    self.host = host
    self.operation = operation
    self.kind = kind
    self.reason = reason
  }

  public var description: String { "Unable to \(operation) on \(host): \(reason)" }
}
