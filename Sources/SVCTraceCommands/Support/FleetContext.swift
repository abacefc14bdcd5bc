import ArgumentParser
package import Fleet
import Foundation
import Inventory
import Logging
import SSH
import SVCTraceCore

/// Everything a fleet command needs, built once from the shared options: the selected hosts, a
/// connector, a runner, the terminal and a logger. Secrets are asked for here, before any fan-out.
package struct FleetContext {
  package var hosts: [FleetHost]
  package var connector: SSHConnector
  package var runner: FleetRunner
  package var terminal: Terminal
  var logger: Logger

  /// Loads the inventory, applies `--limit`, resolves connection settings and prompts for secrets.
  /// - Throws: ``ValidationError`` for unusable options, `InventoryError` (file:line) for a bad inventory.
  package static func make(
    _ options: FleetOptions, label: String, environment: [String: String] = ProcessInfo.processInfo.environment
  )
    throws -> FleetContext
  {
    let logger = Logging.make(verbose: options.verbose)
    let terminal = Terminal.current(environment: environment)
    var paths = options.inventory
    if paths.isEmpty, let fromEnvironment = environment["SVCTRACE_INVENTORY"] { paths = [fromEnvironment] }
    guard !paths.isEmpty else {
      throw ValidationError("No inventory: give -i FILE (an Ansible INI or YAML inventory) or set SVCTRACE_INVENTORY.")
    }
    let inventory = try Inventory.load(paths: paths)
    let selected = try inventory.select(options.limit)
    guard !selected.isEmpty else {
      throw ValidationError(
        "No hosts selected (inventory \(paths.joined(separator: ", ")), limit \(options.limit ?? "all")).")
    }

    let home = environment["HOME"] ?? "/root"
    var sshConfig: SSHConfig?
    if let path = options.sshConfig {
      sshConfig = try SSHConfig.load(path: path)
    } else if FileManager.default.fileExists(atPath: home + "/.ssh/config") {
      sshConfig = try SSHConfig.load(path: home + "/.ssh/config")
    }

    var overrides = ConnectionOverrides()
    overrides.user = options.user
    overrides.identityFiles = options.privateKeys
    overrides.become = options.become
    overrides.becomeUser = options.becomeUser
    overrides.jump = options.jump
    overrides.password = environment["SVCTRACE_SSH_PASSWORD"]
    overrides.becomePassword = environment["SVCTRACE_BECOME_PASSWORD"]
    if options.askPass { overrides.password = try Secrets.prompt("SSH password: ") }
    if options.askBecomePass { overrides.becomePassword = try Secrets.prompt("BECOME password: ") }
    let localUser = environment["USER"] ?? environment["LOGNAME"] ?? "root"
    let hosts = try HostResolver(sshConfig: sshConfig, overrides: overrides, localUser: localUser).resolve(selected)

    var sshOptions = SSHOptions()
    sshOptions.knownHostsFiles = options.knownHosts.isEmpty ? [home + "/.ssh/known_hosts"] : options.knownHosts
    sshOptions.acceptNewHostKeys = options.acceptNewHostKeys
    sshOptions.connectTimeout = .seconds(options.connectTimeout)
    sshOptions.agentSocket = environment["SSH_AUTH_SOCK"]
    sshOptions.keyPassphrase = try Secrets.keyPassphrase(for: hosts, home: home, environment: environment)

    let runner = FleetRunner(
      forks: options.forks, hostTimeout: options.hostTimeoutDuration,
      progress: ProgressReporter(label: label, terminal: terminal), logger: logger)
    return FleetContext(
      hosts: hosts, connector: SSHConnector(options: sshOptions, logger: logger), runner: runner,
      terminal: terminal, logger: logger)
  }
}

/// Logger setup: only the executable chooses handlers and levels (swift-log's rule).
enum Logging {
  static func make(verbose: Bool) -> Logger {
    LoggingBootstrap.once
    var logger = Logger(label: "svctrace")
    logger.logLevel = verbose ? .debug : .notice
    return logger
  }
}

private enum LoggingBootstrap {
  static let once: Void = LoggingSystem.bootstrap(StreamLogHandler.standardError)
}
