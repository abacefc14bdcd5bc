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
      svctrace reads your Ansible inventory and, over SSH, on every node:
        install   adds LOG rules around kube-proxy's DNAT, an rsyslog
                  drop-in and a logrotate entry (remove takes them back)
        verify    checks that packet → kernel log → file works, with evidence
        collect   pulls the node logs into a local store and correlates them
        trace     answers: client → Service VIP:port → node → pod IP:port

      On a cluster:
        svctrace ping    -i hosts.ini --become
        svctrace install -i hosts.ini --become
        svctrace verify  -i hosts.ini --become --canary
        svctrace collect -i hosts.ini --become
        svctrace trace   --client 10.244.1.10:40000
      No cluster at hand? scripts/demo runs it all on a namespace testbed.

      Exit status: 0 success, 1 a host or check failed, 2 usage error,
      130 interrupted.
      """,
    version: "0.1.0",
    subcommands: [
      Ping.self, Exec.self, Install.self, Remove.self, Verify.self, Collect.self, Trace.self, Stats.self, Prune.self,
    ]
  )

  public init() {}
}

/// What the `svctrace` executable calls: parses the command line and runs the chosen command.
public enum Main {
  /// Parses, runs, and exits with svctrace's exit codes (usage errors exit 2, not 64).
  public static func run() async {
    await run(SVCTrace.self)
  }

  /// Parses the command line for `root` (svctrace, or svctrace-bench), runs the chosen command
  /// and exits with svctrace's exit codes.
  package static func run<Root: ParsableCommand>(_ root: Root.Type) async {
    do {
      var command = try Root.parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch {
      let code = Root.exitCode(for: error)
      if error is InventoryError {
        FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
        exit(2)
      }
      if code == .validationFailure {
        let message = Root.fullMessage(for: error)
        if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        exit(2)
      }
      Root.exit(withError: error)
    }
  }
}
