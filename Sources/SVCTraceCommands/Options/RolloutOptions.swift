import ArgumentParser
import Rollout

/// Per-run rollout settings; each overrides the inventory's `svctrace_*` variable of the same meaning.
struct RolloutOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "File rsyslog writes svctrace's lines to (svctrace_log_path). Default: /var/log/iptables.log.", valueName: "path")
  )
  var logPath: String?

  @Option(
    help: ArgumentHelp(
      "Service network(s), comma-separated (svctrace_service_cidr). Default: learn Service addresses from kube-proxy's rules.",
      valueName: "cidr"))
  var serviceCIDR: String?

  @Option(help: ArgumentHelp("NodePort range (svctrace_nodeport_range). Default: 30000-32767.", valueName: "range"))
  var nodePortRange: String?

  @Option(
    help: ArgumentHelp("Log only these Services, as VIP:PORT[/proto],… (svctrace_services).", valueName: "list"))
  var services: String?

  @Option(
    help: ArgumentHelp(
      "Volume guard: at most N lines per second/minute per rule, e.g. 200/s (svctrace_max_rate).", valueName: "rate"))
  var maxRate: String?

  /// The command-line values as settings overrides (keys as the inventory variables).
  var overrides: [String: String] {
    var values: [String: String] = [:]
    values[RolloutSettings.Key.logPath] = logPath
    values[RolloutSettings.Key.serviceCIDR] = serviceCIDR
    values[RolloutSettings.Key.nodePortRange] = nodePortRange
    values[RolloutSettings.Key.services] = services
    values[RolloutSettings.Key.maxRate] = maxRate
    return values
  }

  func validate() throws {
    do {
      _ = try RolloutSettings(variables: [:], overrides: overrides)
    } catch {
      throw ValidationError("\(error)")
    }
  }
}
