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
      StoreCommand.self,
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
      let status = exitStatus(for: error, root: Root.self)
      if error is InventoryError {
        FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
        exit(status)
      }
      if error is any InterruptedRun {
        FileHandle.standardError.write(Data("Interrupted.\n".utf8))
        exit(status)
      }
      if status == usageStatus {
        let message = Root.fullMessage(for: error)
        if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        exit(status)
      }
      Root.exit(withError: error)
    }
  }

  /// The exit status for usage errors: bad flags, a bad or missing inventory.
  static let usageStatus: Int32 = 2

  /// The exit status `svctrace` ends with for an error that stopped a command.
  ///
  /// Usage errors (`ValidationError`, argument parsing, ``InventoryError``) give 2; an
  /// interrupted run gives 130; `ExitCode` keeps its value; every other (runtime) error gives 1.
  static func exitStatus(for error: any Error) -> Int32 { exitStatus(for: error, root: SVCTrace.self) }

  /// ``exitStatus(for:)`` for the root command `root` (whose `exitCode(for:)` maps parser errors).
  static func exitStatus<Root: ParsableCommand>(for error: any Error, root: Root.Type) -> Int32 {
    if error is InventoryError { return usageStatus }
    if error is any InterruptedRun { return 130 }
    let code = Root.exitCode(for: error)
    return code == .validationFailure ? usageStatus : code.rawValue
  }
}
