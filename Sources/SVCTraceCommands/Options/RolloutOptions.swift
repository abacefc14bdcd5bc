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
      "Service network(s), comma-separated (svctrace_service_cidr). Default: learned from ServiceCIDR objects, "
        + "else kube-apiserver's --service-cluster-ip-range, else kube-proxy's cluster-ips-check chain, "
        + "else the Service addresses kube-proxy's rules hold.",
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

  @Option(
    help: ArgumentHelp(
      "How often the node-side refresh adds new load-balancer and external IPs (every Service address without a "
        + "Service CIDR) to the rules, e.g. 15s or 1m; off for none (svctrace_refresh). Default: 15s.",
      valueName: "interval|off"))
  var refresh: String?

  /// The command-line values as settings overrides (keys as the inventory variables).
  var overrides: [String: String] {
    var values: [String: String] = [:]
    values[RolloutSettings.Key.logPath] = logPath
    values[RolloutSettings.Key.serviceCIDR] = serviceCIDR
    values[RolloutSettings.Key.nodePortRange] = nodePortRange
    values[RolloutSettings.Key.services] = services
    values[RolloutSettings.Key.maxRate] = maxRate
    values[RolloutSettings.Key.refresh] = refresh
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
