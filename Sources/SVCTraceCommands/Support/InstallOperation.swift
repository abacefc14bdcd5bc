import Fleet
import Rollout
import SVCTraceCore

/// `install` over a fleet: two fan-outs with a barrier between them.
///
/// 1. Every node is probed (one exec each, read-only), without `--serial` batches.
/// 2. The cluster's Service CIDRs are resolved from all the replies
///    (``NodeRollout/resolveClusterScope(_:)``): a worker knows none itself, the control plane does.
///    Nodes that disagree make every node that needs the answer fail, naming them. When none of
///    these nodes knows one, each node keeps the scope its last install recorded in `state.json`.
/// 3. Each probed node is planned from its own probe with that answer and, unless `check`, applied
///    (one more exec where something changes), in `--serial` batches.
///
/// Pass a ``SessionPool`` as `connector` so that both fan-outs share one session per node; the
/// caller closes it.
enum InstallOperation {
  static func run(
    hosts: [FleetHost], runner: FleetRunner, connector: any SessionConnector, overrides: [String: String],
    check: Bool, includeDiff: Bool, printDiff: (@Sendable (HostID, String) -> Void)?
  ) async -> [HostResult<InstallReport>] {
    var probeRunner = runner
    probeRunner.serial = nil
    probeRunner.maxFailPercent = nil
    let probed = await probeRunner.run(hosts, connector: connector) { session, host in
      let settings = try RolloutSettings(variables: host.vars, overrides: overrides)
      return HostOutcome(changed: false, payload: try await NodeProber.probe(session, settings: settings))
    }
    var found: [HostID: NodeProbe] = [:]
    var failures: [HostID: HostResult<InstallReport>] = [:]
    for result in probed {
      if let probe = result.payload {
        found[result.host] = probe
      } else {
        failures[result.host] = HostResult(
          host: result.host, status: result.status, message: result.message, seconds: result.seconds)
      }
    }
    let probes = found
    let resolution = NodeRollout.resolveClusterScope(hosts.compactMap { probes[$0.id] })
    let planned = await runner.run(hosts.filter { probes[$0.id] != nil }, connector: connector) { session, host in
      guard let probe = probes[host.id] else { throw CancellationError() }
      var settings = try RolloutSettings(variables: host.vars, overrides: overrides)
      if settings.serviceCIDRs == nil {
        switch resolution {
        // Nothing found among these nodes (`--limit node2`, a worker): the node's own probe and
        // the scope its last install recorded decide (NodeRollout.scopeCIDRs).
        case .success(let cidrs) where cidrs.source == .learnedHosts: break
        case .success(let cidrs): settings.clusterServiceCIDRs = cidrs
        case .failure(let conflict):
          throw RolloutError(
            host: host.id, operation: "choose the Service CIDR", kind: .unexpectedOutput, reason: conflict.description)
        }
      }
      let plan = try NodeRollout.plan(probe: probe, settings: settings)
      printDiff?(host.id, plan.diffText)
      var report = InstallReport(plan: plan, includeDiff: includeDiff)
      if check {
        return HostOutcome(changed: plan.hasChanges, message: report.line(checkOnly: true), payload: report)
      }
      let applied = await NodeRollout.apply(plan, session: session)
      report.steps = applied.steps.map {
        "\($0.name): \($0.outcome.rawValue)\($0.detail.isEmpty ? "" : " (\($0.detail))")"
      }
      if let failure = applied.failure { throw failure }
      return HostOutcome(changed: applied.changed, message: report.line(checkOnly: false), payload: report)
    }
    var byHost = failures
    for result in planned { byHost[result.host] = result }
    return hosts.compactMap { byHost[$0.id] }
  }
}
