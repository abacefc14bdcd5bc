package import ArgumentParser

/// Options every fleet command shares: which hosts, how to reach them, how wide to fan out.
package struct FleetOptions: ParsableArguments {
  @Option(
    name: [.customShort("i"), .customLong("inventory")],
    help: ArgumentHelp(
      "Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.",
      valueName: "path"))
  package var inventory: [String] = []

  @Option(
    name: [.customShort("l"), .customLong("limit")],
    help: ArgumentHelp(
      "Ansible host pattern: names, globs, groups, 'a:b' union, 'a:&b' intersection, 'a:!b' exclusion.",
      valueName: "pattern"))
  package var limit: String?

  @Option(name: [.customShort("f"), .long], help: "How many hosts to work on at once.")
  package var forks: Int = 20

  @Option(
    name: .customLong("timeout"),
    help: ArgumentHelp(
      "Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.",
      valueName: "seconds"))
  var hostTimeout: Int = 600

  /// `--timeout` as a duration; `nil` for `--timeout 0` (no limit).
  package var hostTimeoutDuration: Duration? { hostTimeout == 0 ? nil : .seconds(hostTimeout) }

  @Option(help: ArgumentHelp("TCP connect and handshake timeout per host.", valueName: "seconds"))
  package var connectTimeout: Int = 10

  @Option(
    name: .customLong("known-hosts"),
    help: ArgumentHelp("OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.", valueName: "file"))
  package var knownHosts: [String] = []

  @Flag(
    help:
      "Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails."
  )
  var acceptNewHostKeys = false

  @Option(
    name: .customShort("F"),
    help: ArgumentHelp("ssh_config file. Default: ~/.ssh/config if present.", valueName: "file"))
  var sshConfig: String?

  @Option(name: [.customShort("u"), .customLong("user")], help: "Login user for every host (overrides ansible_user).")
  package var user: String?

  @Option(
    name: .customLong("private-key"),
    help: ArgumentHelp("Private key file (repeatable; overrides ansible_ssh_private_key_file).", valueName: "file"))
  package var privateKeys: [String] = []

  @Option(help: ArgumentHelp("Bastion for every host, as for ssh -J: [user@]host[:port][,...].", valueName: "jump"))
  var jump: String?

  @Flag(
    inversion: .prefixedNo,
    help: "Run commands as root through sudo. Default: the inventory's ansible_become.")
  var become: Bool?

  @Option(help: "User to become. Default: root.")
  var becomeUser: String?

  @Flag(
    name: [.customShort("K"), .customLong("ask-become-pass")],
    help: "Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).")
  var askBecomePass = false

  @Flag(
    name: [.customShort("k"), .customLong("ask-pass")],
    help: "Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).")
  var askPass = false

  @Flag(name: .shortAndLong, help: "Log debug details to standard error.")
  var verbose = false

  package init() {}

  package func validate() throws {
    guard forks >= 1 else { throw ValidationError("--forks must be at least 1.") }
    guard hostTimeout >= 0 else { throw ValidationError("--timeout must be 0 (no limit) or a number of seconds.") }
    guard connectTimeout >= 1 else { throw ValidationError("--connect-timeout must be at least 1 second.") }
  }
}

/// `--json` for commands whose per-host results a script would want.
struct OutputOptions: ParsableArguments {
  @Flag(help: "Print the per-host results as one JSON document instead of the recap.")
  var json = false
}
