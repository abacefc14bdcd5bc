public import ArgumentParser
import Foundation
import Inventory

#if canImport(Glibc)
  import Glibc
#endif

/// The root command: subcommands only.
public struct SVCTrace: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "svctrace",
    abstract: "Find which pod served a request to a Kubernetes Service, and through which node.",
    discussion: """
      svctrace reads your Ansible inventory, connects to every node over SSH and:
        1. install   rolls out iptables LOG rules around kube-proxy's DNAT, an rsyslog drop-in and a logrotate entry
        2. verify    checks, node by node, that the whole pipeline (packet → kernel log → file) works
        3. collect   pulls the node logs incrementally into a local store and correlates them
        4. trace     answers: client → Service VIP:port → node → pod IP:port

      Start with:  svctrace ping -i hosts.ini
      Every subcommand has examples: svctrace help <subcommand>
      Exit status: 0 success, 1 a host or check failed, 2 usage error, 130 interrupted.
      """,
    version: "0.1.0",
    subcommands: [Ping.self, Exec.self, Install.self, Remove.self, Collect.self, Trace.self, Stats.self, Prune.self, Bench.self]
  )

  public init() {}
}

/// What the `svctrace` executable calls: parses the command line and runs the chosen command.
public enum Main {
  /// Parses, runs, and exits with svctrace's exit codes (usage errors exit 2, not 64).
  public static func run() async {
    do {
      var command = try SVCTrace.parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch {
      let code = SVCTrace.exitCode(for: error)
      if error is InventoryError {
        FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
        exit(2)
      }
      if code == .validationFailure {
        let message = SVCTrace.fullMessage(for: error)
        if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        exit(2)
      }
      SVCTrace.exit(withError: error)
    }
  }
}
