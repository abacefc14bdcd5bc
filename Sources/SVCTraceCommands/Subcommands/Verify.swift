import ArgumentParser
import Fleet
import Foundation
import Logs
import Rollout
import SVCTraceCore
import Store

extension SVCTrace {
  /// `svctrace verify`: is every node still recording, with the evidence.
  struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check, node by node, that everything install put in place is there and works.",
      discussion: """
        Check groups, each pass, warn or fail with its evidence:
          access     reachable, host key matching, authenticated, become works
          dataplane  kube-proxy mode and backend; svctrace's rules present,
                     complete, first in their chains, not duplicated, in
                     kube-proxy's backend; leftovers of the old script
          rsyslog    running; drop-in as install writes it; rsyslogd -N1;
                     the log file's owner and freshness
          logrotate  entry present, valid (logrotate -d), naming the file
          disk       free space and hours until full at the growth rate
          loss       lines lost since the last verify (collect's count: the LOG
                     rules' packet counters against the lines in the file), with
                     the likely cause: disk full, rsyslog stopped, rsyslog rate
                     limiting, kernel ring buffer overrun (when the store exists)
          clock      node clock offset to this workstation, with its bound
          expiry     time left on a time-boxed capture (install --for)
          canary     with --canary: a real connection from each node to a
                     Service, and both of its lines in the node's log

        Examples:
          svctrace verify -i hosts.ini
          svctrace verify -i hosts.ini --canary --canary-service 10.96.0.10:80
          svctrace verify -i hosts.ini --format junit --output verify.xml
          svctrace verify -i hosts.ini --format html --output fleet.html

        Exit status: 0 when no check failed (warnings allowed), 1 when any
        failed, 2 on usage errors.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
      case table, json, junit, html
    }

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var rollout: RolloutOptions
    @OptionGroup var storeOptions: StoreOptions

    @Option(help: "Output format: table, json, junit or html.")
    var format: Format = .table

    @Option(help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
    var output: String?

    @Flag(help: "Prove the whole pipeline: connect from each node to a Service and find both lines in the log.")
    var canary = false

    @Option(
      help: ArgumentHelp(
        "The Service the canary connects to. Default: a TCP ClusterIP from kube-proxy's rules.", valueName: "vip:port"))
    var canaryService: String?

    @Option(help: ArgumentHelp("Warn when a node's clock is off by more than this many milliseconds.", valueName: "ms"))
    var maxClockOffset: Int = 1000

    @Option(
      help: ArgumentHelp("Warn when the log's filesystem would fill up within this many hours.", valueName: "hours"))
    var minHoursUntilFull: Double = 24

    func validate() throws {
      if format == .html && output == nil { throw ValidationError("--format html needs --output FILE.") }
    }

    func run() async throws {
      let context = try FleetContext.make(fleet, label: "verify")
      var options = VerifyOptions()
      options.canary = canary
      options.canaryService = canaryService
      options.maxClockOffsetMicros = Int64(maxClockOffset) * 1000
      options.minHoursUntilFull = minHoursUntilFull
      let checkOptions = options
      let overrides = rollout.overrides
      // The loss check reads the store collect writes; without one there is nothing to check.
      let store: (any TraceStoring)? =
        storeOptions.isPostgres || FileManager.default.fileExists(atPath: storeOptions.path)
        ? try await storeOptions.open() : nil
      let results: [HostResult<[CheckResult]>]
      var interrupted = false
      do {
        results = try await withInterruptCancellation { [context] in
          await context.runner.run(context.hosts, connector: context.connector) { session, host in
            let settings = try RolloutSettings(variables: host.vars, overrides: overrides)
            let note =
              host.become.enabled
              ? "logged in as \(host.user), become \(host.become.user)" : "logged in as \(host.user)"
            var loss: LostLines?
            var unchecked: CheckResult?
            if let store {
              do {
                loss = try await Self.lostLines(host.id, store: store)
              } catch {
                // A store this user may only read (a team store's reader role): the rest still runs.
                unchecked = CheckResult(
                  group: "loss", name: "lines", status: .warn, evidence: "not checked: \(error)",
                  fix:
                    "Give verify a store it may write (it records each check); `svctrace collect` prints the losses too."
                )
              }
            }
            var checks = await Verifier.check(
              session, settings: settings, options: checkOptions, becomeNote: note, loss: loss)
            if let unchecked { checks.append(unchecked) }
            return HostOutcome<[CheckResult]>(payload: checks)
          }
        }
      } catch let stop as InterruptedExit<[HostResult<[CheckResult]>]> {
        // Report what was checked before Ctrl-C, then exit 130.
        results = stop.value
        interrupted = true
      }
      let nodes = results.map { result -> FleetReport.Node in
        if let checks = result.payload { return FleetReport.Node(host: result.host.name, checks: checks) }
        return FleetReport.Node(
          host: result.host.name,
          checks: [
            CheckResult(
              group: "access", name: result.status == .unreachable ? "reachable" : "run", status: .fail,
              evidence: result.message ?? result.status.rawValue, fix: Self.accessFix(result.message ?? ""))
          ])
      }
      let groups = Verifier.groups.filter { ($0 != "canary" || canary) && ($0 != "loss" || store != nil) }
      let report = FleetReport(generatedAt: Date(), groups: groups, nodes: nodes)
      let text: String
      switch format {
      case .table:
        text =
          report.renderTable(
            terminal: output == nil ? context.terminal : Terminal(stdoutIsTTY: false, stderrIsTTY: false, color: false))
          + "\n"
      case .json: text = try Output.json(report) + "\n"
      case .junit: text = report.renderJUnit()
      case .html: text = report.renderHTML()
      }
      if let output {
        do {
          try text.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
          throw CommandFailure(operation: "write the report to \(output)", reason: error.localizedDescription)
        }
        let counts = report.counts
        print(
          "verify: \(nodes.count) nodes: \(counts[.pass] ?? 0) pass, \(counts[.warn] ?? 0) warn, \(counts[.fail] ?? 0) fail; report written to \(output)"
        )
      } else {
        print(text, terminator: "")
      }
      if interrupted { throw ExitCode(130) }
      if report.nodes.contains(where: { $0.status == .fail }) { throw ExitCode.failure }
    }

    /// The node's lost lines since its last check, marking this check in the store.
    static func lostLines(_ node: HostID, store: any TraceStoring) async throws -> LostLines {
      let check = try await store.checkLoss(node: node, atMicros: ClockOffset.wallClockMicros())
      return LostLines(
        windows: check.intervals.map {
          LostLines.Window(
            fromMicros: $0.fromMicros, untilMicros: $0.untilMicros, packets: $0.packets, lost: $0.lost,
            rsyslogRunning: $0.rsyslogRunning)
        }, accounted: check.accounted, previousCheckMicros: check.previousCheckMicros)
    }

    static func accessFix(_ message: String) -> String {
      if message.contains("HOST KEY CHANGED") {
        return "Verify the new key out of band, then update known_hosts as the message says."
      }
      if message.contains("not known") {
        return "Check the fingerprint, then add it to known_hosts or rerun with --accept-new-host-keys."
      }
      if message.contains("sudo") { return "Fix sudo for the login user, or give the become password (-K)." }
      if message.contains("authenticat") {
        return "Check the user and key (ansible_user, ansible_ssh_private_key_file) or agent."
      }
      return "Check that the node is up and sshd listens (svctrace ping)."
    }
  }
}
