public import Logging
public import SSH
public import SVCTraceCore

/// Connects to hosts over SSH (libssh2) and wraps each session for privilege escalation.
///
/// Hosts behind the same ProxyJump chain share one connection to the bastion when
/// ``SSHOptions/bastions`` is set (``init(options:logger:)`` sets a pool when there is none);
/// ``finishRun()`` closes the bastion connections no host uses any more.
public struct SSHConnector: SessionConnector {
  public var options: SSHOptions
  public var logger: Logger

  public init(options: SSHOptions, logger: Logger) {
    var options = options
    if options.bastions == nil { options.bastions = BastionPool() }
    self.options = options
    self.logger = logger
  }

  /// Closes the bastion connections that no host of the finished fan-out still uses.
  public func finishRun() async {
    await options.bastions?.closeIdle()
  }

  public func connect(_ host: FleetHost) async throws -> any RemoteSession {
    let connection = try await SSHConnection.connect(Self.target(host), options: options, logger: logger)
    guard host.become.enabled else { return connection }
    // No probe here: the first command learns how to become (and reports sudo's refusal), so
    // that privilege escalation costs no extra round trip.
    return BecomeSession(base: connection, config: host.become)
  }

  /// The SSH module's view of a fleet host.
  static func target(_ host: FleetHost) -> SSHTarget {
    SSHTarget(
      host: host.id, hostname: host.address, port: host.port, user: host.user,
      identityFiles: host.identityFiles.isEmpty ? SSHTarget.defaultIdentityFiles : host.identityFiles,
      password: host.password,
      proxyJump: host.jumpHosts.map(target))
  }
}
