public import SVCTraceCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Where and as whom to connect.
public struct SSHTarget: Sendable, Equatable {
  /// The inventory name, used in every error and log line.
  public var host: HostID
  /// The address or DNS name to dial.
  public var hostname: String
  /// TCP port, 22 by default.
  public var port: Int
  /// Login user.
  public var user: String
  /// Private key files to try, in order (`~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` by default).
  public var identityFiles: [String]
  /// Password for `password` / `keyboard-interactive` auth; never logged or shown.
  public var password: String?
  /// Bastion chain (`ProxyJump`), outermost first; each hop is dialled through the previous one.
  public var proxyJump: [SSHTarget]

  /// Creates a target; `identityFiles` defaults to the standard key files in `~/.ssh`.
  public init(
    host: HostID, hostname: String, port: Int = 22, user: String = SSHTarget.currentUserName,
    identityFiles: [String] = SSHTarget.defaultIdentityFiles, password: String? = nil, proxyJump: [SSHTarget] = []
  ) {
    self.host = host
    self.hostname = hostname
    self.port = port
    self.user = user
    self.identityFiles = identityFiles
    self.password = password
    self.proxyJump = proxyJump
  }

  /// `~/.ssh/id_ed25519` and `~/.ssh/id_ecdsa`, like `ssh`'s defaults minus RSA (see the RSA note).
  public static var defaultIdentityFiles: [String] {
    ["\(homeDirectory)/.ssh/id_ed25519", "\(homeDirectory)/.ssh/id_ecdsa"]
  }

  /// `$HOME`, or the password database's home directory, or `/`.
  public static var homeDirectory: String {
    if let home = getenv("HOME") { return String(cString: home) }
    if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
    return "/"
  }

  /// The name of the local user (`$USER`, else the password database).
  public static var currentUserName: String {
    if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    if let user = getenv("USER") { return String(cString: user) }
    return "root"
  }

  /// This target without its bastion chain (one hop of a chain).
  var withoutJumps: SSHTarget {
    var copy = self
    copy.proxyJump = []
    return copy
  }

  public static func == (lhs: SSHTarget, rhs: SSHTarget) -> Bool {
    lhs.host == rhs.host && lhs.hostname == rhs.hostname && lhs.port == rhs.port && lhs.user == rhs.user
      && lhs.identityFiles == rhs.identityFiles && lhs.password == rhs.password && lhs.proxyJump == rhs.proxyJump
  }
}

extension SSHTarget: CustomStringConvertible {
  /// `user@hostname:port` (never the password).
  public var description: String { "\(user)@\(hostname):\(port)" }
}

/// Connection-wide settings shared by every host of a run.
public struct SSHOptions: Sendable {
  /// `known_hosts` files to consult; the first one is where accepted keys are written.
  public var knownHostsFiles: [String]
  /// Record unknown host keys instead of failing (`StrictHostKeyChecking=accept-new`).
  public var acceptNewHostKeys: Bool
  /// Limit for TCP connect plus SSH handshake.
  public var connectTimeout: Duration
  /// Default per-command (and per-SFTP-call) timeout when `run` is given none; `nil` for no limit.
  public var commandTimeout: Duration?
  /// Bytes of stdout and stderr a command may write before it is abandoned (`run` without limits).
  public var outputLimits: OutputLimits
  /// How often to send an SSH keepalive while waiting on the server; `nil` sends none.
  /// Also the TCP keepalive idle time and probe interval of the socket.
  public var keepaliveInterval: Duration?
  /// How many keepalive intervals may pass without any data from the server before the
  /// connection is declared lost (like OpenSSH's `ServerAliveCountMax`).
  public var keepaliveCountMax: Int
  /// ssh-agent socket (`SSH_AUTH_SOCK` by default); `nil` skips the agent.
  public var agentSocket: String?
  /// Passphrase for encrypted key files (`SVCTRACE_KEY_PASSPHRASE` by default); never shown.
  public var keyPassphrase: String?
  /// The shared bastion connections of the run: every target behind the same ProxyJump chain
  /// goes through one connection to its bastion. `nil`: each connection has its own.
  public var bastions: BastionPool?

  /// Creates options with `ssh`-like defaults taken from the environment.
  public init(
    knownHostsFiles: [String] = ["\(SSHTarget.homeDirectory)/.ssh/known_hosts"], acceptNewHostKeys: Bool = false,
    connectTimeout: Duration = .seconds(10), commandTimeout: Duration? = RemoteDefaults.commandTimeout,
    outputLimits: OutputLimits = .standard, keepaliveInterval: Duration? = .seconds(15), keepaliveCountMax: Int = 3,
    agentSocket: String? = SSHOptions.environment("SSH_AUTH_SOCK"),
    keyPassphrase: String? = SSHOptions.environment("SVCTRACE_KEY_PASSPHRASE")
  ) {
    self.knownHostsFiles = knownHostsFiles
    self.acceptNewHostKeys = acceptNewHostKeys
    self.connectTimeout = connectTimeout
    self.commandTimeout = commandTimeout
    self.outputLimits = outputLimits
    self.keepaliveInterval = keepaliveInterval
    self.keepaliveCountMax = max(1, keepaliveCountMax)
    self.agentSocket = agentSocket
    self.keyPassphrase = keyPassphrase
  }

  /// The host-key policy these options describe: accept-new or strict, over ``knownHostsFiles``.
  public var hostKeyPolicy: HostKeyPolicy {
    HostKeyPolicy(mode: acceptNewHostKeys ? .acceptNew : .strict, knownHostsFiles: knownHostsFiles)
  }

  /// A non-empty environment variable, or `nil`.
  public static func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let string = String(cString: value)
    return string.isEmpty ? nil : string
  }
}
