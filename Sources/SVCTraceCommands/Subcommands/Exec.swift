import ArgumentParser
import Fleet
import SVCTraceCore

extension SVCTrace {
  /// `svctrace exec`: an ad hoc command on every selected host.
  struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a shell command on every selected host and show the output grouped per host.",
      discussion: """
        The command runs through the node's /bin/sh -c; with --become it runs as root through sudo \
        (the sudo password, if any, goes on standard input, never on a command line).

        Examples:
          svctrace exec -i hosts.ini -- uptime
          svctrace exec -i hosts.ini --become -- 'iptables -t mangle -S'
          svctrace exec -i hosts.ini --json -- cat /etc/os-release

        Exit status: 0 when the command exited 0 on every host, 1 otherwise, 2 on usage errors.
        """)

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    @Option(help: ArgumentHelp("Per-host command timeout. Default: 300 seconds.", valueName: "seconds"))
    var commandTimeout: Int?

    @Argument(parsing: .postTerminator, help: "The command line, after --.")
    var command: [String] = []

    func validate() throws {
      guard !command.isEmpty else {
        throw ValidationError("Give the command after --, e.g. svctrace exec -i hosts.ini -- uptime")
      }
    }

    func run() async throws {
      let line = command.joined(separator: " ")
      let timeout = commandTimeout.map { Duration.seconds($0) }
      let context = try FleetContext.make(fleet, label: "exec")
      let json = output.json
      let terminal = context.terminal
      try await runFleet(context, json: json, command: "exec") { session, host in
        let result = try await session.run(line, stdin: nil, timeout: timeout)
        let payload = ExecOutput(result)
        if !json { printGrouped(host.id, result, terminal: terminal) }
        guard result.succeeded else {
          throw RemoteError(
            host: host.id, operation: "run `\(line)`", kind: .commandFailed, message: result.failureSummary)
        }
        return HostOutcome(payload: payload)
      }
    }
  }
}

/// A command's output as `exec --json` reports it.
struct ExecOutput: Codable, Sendable {
  var exitStatus: Int32
  var signal: String?
  var stdout: String
  var stderr: String

  init(_ result: CommandResult) {
    exitStatus = result.exitStatus
    signal = result.exitSignal
    stdout = result.stdoutText
    stderr = result.stderrText
  }
}

/// Prints one host's output as a block, so concurrent hosts never interleave lines.
///
/// The output is the remote's: control sequences are shown escaped, never sent to the terminal.
private func printGrouped(_ host: HostID, _ result: CommandResult, terminal: Terminal) {
  let status = result.exitSignal.map { "SIG\(TerminalText.sanitize($0))" } ?? String(result.exitStatus)
  var block = terminal.paint("── \(host) (exit \(status))", .bold) + "\n"
  let stdout = TerminalText.sanitize(result.stdout)
  let stderr = TerminalText.sanitize(result.stderr)
  if !stdout.isEmpty { block += stdout.hasSuffix("\n") ? stdout : stdout + "\n" }
  if !stderr.isEmpty { block += terminal.paint(stderr.hasSuffix("\n") ? stderr : stderr + "\n", .red) }
  OutputLock.print(block)
}
