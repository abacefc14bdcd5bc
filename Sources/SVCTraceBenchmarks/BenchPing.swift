import ArgumentParser
import Fleet
import Foundation
import SVCTraceCommands
import SVCTraceCore
import Subprocess
import SystemPackage

/// `svctrace-bench ping`: svctrace's fan-out next to OpenSSH run in parallel with `xargs -P`.
struct BenchPing: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ping",
    abstract: "Time `svctrace ping` over the fleet next to parallel OpenSSH (`xargs -P N ssh …`).",
    discussion: """
      Both sides connect to every selected host with strict host-key checking, authenticate with the \
      same key and run the same fact-gathering commands; each side runs --rounds times and the \
      median wall time is compared. Goal: svctrace no slower than parallel OpenSSH.
      """)

  @OptionGroup var fleet: FleetOptions

  @Option(help: "How many times to run each side.")
  var rounds = 3

  func run() async throws {
    let context = try FleetContext.make(fleet, label: "bench ping")
    let hosts = context.hosts
    guard let key = hosts.first?.identityFiles.first ?? fleet.privateKeys.first else {
      throw ValidationError(
        "bench ping needs a private key file (inventory ansible_ssh_private_key_file or --private-key) so OpenSSH uses the same one."
      )
    }
    let knownHosts =
      fleet.knownHosts.first ?? (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.ssh/known_hosts"
    let svctracePath = try SVCTraceExecutable.path()

    var svctraceArguments = ["ping", "--forks", String(fleet.forks), "--known-hosts", knownHosts]
    for path in fleet.inventory { svctraceArguments += ["-i", path] }
    if let limit = fleet.limit { svctraceArguments += ["--limit", limit] }

    let list = hosts.map { "\($0.user)@\($0.address) \($0.port)" }.joined(separator: "\n") + "\n"
    // The OpenSSH side runs the same facts and clock reads, one ssh process per host.
    let facts =
      ". /etc/os-release; uname -r; iptables -V; command -v rsyslogd logrotate; id -un; date +%s%N; date +%s%N"
    let script = FileManager.default.temporaryDirectory.appendingPathComponent("svctrace-bench-ssh-\(getpid()).sh").path
    try """
    #!/bin/sh
    exec ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\(ShellQuote.quote(knownHosts)) \
      -o ConnectTimeout=\(fleet.connectTimeout) -i \(ShellQuote.quote(key)) -p "$2" "$1" \(ShellQuote.quote(facts)) >/dev/null
    """.write(toFile: script, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: script) }
    _ = chmod(script, 0o755)
    let sshCommand = try "xargs -P \(fleet.forks) -L 1 \(ShellQuote.quote(script))"

    var ours: [Double] = []
    var theirs: [Double] = []
    for round in 1...max(1, rounds) {
      Terminal.writeError("round \(round)/\(rounds): svctrace…")
      let (ourTime, ourStatus) = try await timed(svctracePath, svctraceArguments, stdin: "")
      Terminal.writeError(" openssh…\n")
      let (theirTime, theirStatus) = try await timed("/bin/sh", ["-c", sshCommand], stdin: list)
      guard ourStatus.isSuccess, theirStatus.isSuccess else {
        throw BenchmarkFailure(
          "A side failed (svctrace \(ourStatus), openssh \(theirStatus)); run `svctrace ping` to see which hosts.")
      }
      ours.append(ourTime)
      theirs.append(theirTime)
    }
    let ourMedian = ours.sorted()[ours.count / 2]
    let theirMedian = theirs.sorted()[theirs.count / 2]
    print("bench ping: \(hosts.count) hosts, forks \(fleet.forks), \(rounds) rounds (median wall time)")
    print(
      "  svctrace ping                 \(Output.decimal(ourMedian)) s   (\(Output.decimal(ourMedian / Double(hosts.count) * 1000)) ms/host)"
    )
    print("  openssh ssh, xargs -P \(fleet.forks)      \(Output.decimal(theirMedian)) s")
    print(
      "  ratio openssh/svctrace        \(Output.decimal(theirMedian / ourMedian))x  (>= 1 means svctrace is as fast or faster)"
    )
    print("  peak memory (this process)    \(ResourceUsage.peakRSSKiB() / 1024) MB")
  }

  /// Runs `executable` with `stdin` on its standard input and its output discarded; returns the
  /// wall time and how it ended.
  private func timed(_ executable: String, _ arguments: [String], stdin: String) async throws -> (
    Double, TerminationStatus
  ) {
    let clock = ContinuousClock()
    let start = clock.now
    let result = try await Subprocess.run(
      .path(FilePath(executable)), arguments: Arguments(arguments), input: .string(stdin), output: .discarded,
      error: .discarded)
    return ((clock.now - start).seconds, result.terminationStatus)
  }
}
