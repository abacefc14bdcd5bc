import ArgumentParser
import Fleet
import Rollout
import SVCTraceCore

extension SVCTrace {
  /// `svctrace install`: make every node record its Service forwarding.
  struct Install: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Roll out LOG rules, an rsyslog drop-in and a logrotate entry on every selected node.",
      discussion: """
        Per node, svctrace detects the dataplane (iptables-legacy or iptables-nft \
        as kube-proxy uses it; kube-proxy's iptables, nftables or IPVS mode; \
        eBPF replacements are refused) and writes:
          • its own chains in the mangle table (or `table inet svctrace` in
            nftables mode) logging the first packet of every new connection to
            a Service before DNAT (SVCT:PRE, destination = VIP) and after it
            (SVCT:POST, destination = pod), selected by conntrack state, not
            the 0x4000 mark: pod-originated, host, NodePort, hairpin and
            hostNetwork traffic are all recorded;
          • /etc/rsyslog.d/10-svctrace.conf sending those lines, and only
            those, to the log file;
          • /etc/logrotate.d/svctrace rotating that file;
          • /var/lib/svctrace/refresh.sh, run every 15 s (--refresh) by a
            systemd timer or a detached loop, adding new load-balancer and
            external IPs (every new Service address without a Service CIDR)
            to the rules, with no command run.
        The Service CIDR is learned from all nodes before any is changed: ServiceCIDR \
        objects, else kube-apiserver's --service-cluster-ip-range, else kube-proxy's \
        cluster-ips-check chain (--service-cidr overrides; nodes that disagree fail).
        Idempotent: a second run changes nothing; a drifted node is repaired. If any step fails, the \
        node is put back exactly as it was and reported failed; the other nodes carry on.

        Examples:
          svctrace install -i hosts.ini --check --diff   # changes nothing
          svctrace install -i hosts.ini --become --serial 5 --max-fail-percent 20
          svctrace install -i hosts.ini --services 10.96.0.10:80/tcp --for 2h
          svctrace install -i hosts.ini --max-rate 500/s

        Exit status: 0 when every node is installed (or would be, with --check), 1 otherwise, 2 on usage errors.
        """)

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var rollout: RolloutOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Report per node what would change; change nothing.")
    var check = false

    @Flag(help: "Show unified diffs of files and the rule lines added and removed.")
    var diff = false

    @Option(help: ArgumentHelp("Roll out in batches of N nodes.", valueName: "n"))
    var serial: Int?

    @Option(help: ArgumentHelp("Stop after a batch once more than P% of nodes failed.", valueName: "percent"))
    var maxFailPercent: Double?

    @Option(
      name: .customLong("for"),
      help: ArgumentHelp(
        "Time-boxed capture: the node removes everything by itself after this long (e.g. 2h), even if this workstation is gone.",
        valueName: "duration"))
    var captureFor: String?

    func validate() throws {
      if let serial, serial < 1 { throw ValidationError("--serial must be at least 1.") }
      if let maxFailPercent, !(0...100).contains(maxFailPercent) {
        throw ValidationError("--max-fail-percent takes 0 to 100.")
      }
      if let captureFor {
        do { _ = try RolloutSettings.parseDuration(captureFor) } catch { throw ValidationError("--for: \(error)") }
      }
    }

    func run() async throws {
      var context = try FleetContext.make(fleet, label: check ? "install --check" : "install")
      context.runner.serial = serial
      context.runner.maxFailPercent = maxFailPercent
      var cliSettings = rollout.overrides
      cliSettings[RolloutSettings.Key.captureFor] = captureFor
      let overrides = cliSettings
      let (check, diff, json) = (self.check, self.diff, output.json)
      let terminal = context.terminal
      let pool = SessionPool(context.connector)
      let (hosts, runner) = (context.hosts, context.runner)
      let printDiff: (@Sendable (HostID, String) -> Void)? =
        diff && !json ? { @Sendable host, text in RolloutOutput.printDiff(host, text, terminal: terminal) } : nil
      do {
        let results = try await withInterruptCancellation {
          await InstallOperation.run(
            hosts: hosts, runner: runner, connector: pool, overrides: overrides, check: check, includeDiff: diff,
            printDiff: printDiff)
        }
        await pool.closeAll()
        try Output.finish(results, json: json, terminal: terminal, command: "install")
      } catch let interrupted as InterruptedExit<[HostResult<InstallReport>]> {
        await pool.closeAll()
        try Output.finish(interrupted.value, json: json, terminal: terminal, command: "install", interrupted: true)
      }
    }
  }

  /// `svctrace remove`: take back exactly what install added.
  struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Remove svctrace's rules, chains, tables, drop-in, logrotate entry and expiry from every selected node.",
      discussion: """
        Removes exactly what svctrace added (and, for iptables-nft, base chains and tables it created) and \
        restarts rsyslog. Collected log files stay unless --purge-logs. --legacy also removes the old \
        DomeOS script's LOG rules (domeos prefixes), its kern.* line in /etc/rsyslog.conf and its line in \
        /etc/logrotate.d/syslog.

        Examples:
          svctrace remove -i hosts.ini
          svctrace remove -i hosts.ini --legacy --purge-logs

        Exit status: 0 when every node is clean, 1 otherwise, 2 on usage errors.
        """)

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    @Option(
      help: ArgumentHelp("The log file install wrote (svctrace_log_path); used by --purge-logs.", valueName: "path"))
    var logPath: String?

    @Flag(help: "Also delete the collected log files on the nodes.")
    var purgeLogs = false

    @Flag(help: "Also remove the old add_iptables_log.sh script's rules and config lines.")
    var legacy = false

    func run() async throws {
      let context = try FleetContext.make(fleet, label: "remove")
      let overrides = logPath.map { [RolloutSettings.Key.logPath: $0] } ?? [:]
      let (purgeLogs, legacy) = (self.purgeLogs, self.legacy)
      try await runFleet(context, json: output.json, command: "remove") { session, host in
        let settings = try RolloutSettings(variables: host.vars, overrides: overrides)
        let report = await NodeRollout.remove(session, settings: settings, purgeLogs: purgeLogs, legacy: legacy)
        if let failure = report.failure { throw failure }
        let steps = report.steps.map { "\($0.name)\($0.detail.isEmpty ? "" : ": \($0.detail)")" }
        return HostOutcome(
          changed: report.changed, message: report.changed ? steps.joined(separator: "; ") : "nothing to remove",
          payload: steps)
      }
    }
  }
}

/// What `install` reports per node.
struct InstallReport: Codable, Sendable {
  var mode: String
  var backend: String
  var services: Int
  /// Where the scope's Service CIDRs came from (`service CIDR 10.96.0.0/12 from ServiceCIDR objects (node1)`).
  var scope: String
  var changes: [String]
  var steps: [String] = []
  var diff: String?

  init(plan: NodePlan, includeDiff: Bool) {
    mode = plan.dataplane.mode.rawValue
    backend = plan.dataplane.backend.rawValue
    services = plan.dataplane.services.count
    scope = plan.scopeSource.summary
    changes = plan.summary
    diff = includeDiff ? plan.diffText : nil
  }

  func line(checkOnly: Bool) -> String {
    let dataplane = "kube-proxy \(mode) on \(backend), \(services) services; \(scope)"
    if changes.isEmpty { return "\(dataplane); up to date" }
    return "\(dataplane); \(checkOnly ? "would change: " : "changed: ")" + changes.joined(separator: ", ")
  }
}

enum RolloutOutput {
  /// Prints a node's diff as one block.
  static func printDiff(_ host: HostID, _ diff: String, terminal: Terminal) {
    guard !diff.isEmpty else { return }
    var block = terminal.paint("── \(host) diff", .bold) + "\n"
    // The old side quotes the node's files: their control characters are shown escaped.
    for line in diff.split(separator: "\n", omittingEmptySubsequences: false).map({ TerminalText.sanitize(String($0)) })
    {
      if line.hasPrefix("+") && !line.hasPrefix("+++") {
        block += terminal.paint(line, .green) + "\n"
      } else if line.hasPrefix("-") && !line.hasPrefix("---") {
        block += terminal.paint(line, .red) + "\n"
      } else if !line.isEmpty {
        block += line + "\n"
      }
    }
    OutputLock.print(block)
  }
}
