import Fleet
import Foundation
import Rollout
import SVCTraceCommands
import SVCTraceCore

/// The OpenSSH shell-script floor of `bench fleet`: one POSIX `sh` script per node, sent with
/// `ssh node sh -s < script`, making the edits `svctrace install` makes, the way the Ansible
/// playbook (bench/ansible/install.yml) makes them but in one round trip: detect the dataplane and
/// refuse a mismatch, write the state directory, `state.json`, `remove.sh`, load the rules
/// (iptables: one `iptables-restore --noflush` of svctrace's chains, `-D` of old jumps, the rules
/// and jumps, and the same with `ip6tables-restore` when the node has IPv6 rules; nftables mode:
/// `nft -f` of `table inet svctrace` when missing), write the rsyslog drop-in after `rsyslogd -N1
/// -f` validated it, validate the whole configuration and restart rsyslog, write the logrotate
/// entry and check it with `logrotate -d`, write and start the scope's refresh (`refresh.sh`) and
/// run its first round.
extension Fixture {
  /// A fixture from its variables and files (the playbook's `vars.json` and file names).
  init(vars: [String: any Sendable], files: [String: [UInt8]]) {
    self.vars = vars
    self.files = files
  }

  /// The script for this node. The file contents travel base64-encoded in here-documents.
  /// - Throws: ``BenchmarkFailure`` when a variable the script needs is missing or names no backend.
  func shellScript() throws -> String {
    func string(_ name: String) throws -> String {
      guard let value = vars[name] as? String, !value.isEmpty else {
        throw BenchmarkFailure("fixture variable \(name) is missing")
      }
      return value
    }
    let backend = try string("svct_backend")
    let stateDirectory = try string("svct_state_dir")
    let dropIn = try string("svct_dropin")
    let logrotate = try string("svct_logrotate")
    func quote(_ value: String) throws -> String { try ShellQuote.quote(value) }
    let quotedBackend = try quote(backend)
    let quotedState = try quote(stateDirectory)
    var script = """
      set -eu
      umask 022
      if nft list table ip kube-proxy >/dev/null 2>&1 || nft list table ip6 kube-proxy >/dev/null 2>&1; then
        backend=nftables
      else
        legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c -e '^-A KUBE-' -e '^:KUBE-' || true)
        nft=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c -e '^-A KUBE-' -e '^:KUBE-' || true)
        if [ "$legacy" -gt "$nft" ]; then backend=iptables-legacy; else backend=iptables-nft; fi
      fi
      [ "$backend" = \(quotedBackend) ] || { echo "detected $backend, rendered for \(backend)" >&2; exit 1; }
      mkdir -p \(quotedState)
      chmod 0755 \(quotedState)

      """
    /// Writes `bytes` to `path` through a temporary file and a rename.
    func write(_ name: String, to path: String, mode: String, validate: String? = nil) throws {
      let temporary = try quote(path + ".svct-floor")
      let destination = try quote(path)
      script += "base64 -d > \(temporary) <<'SVCT_EOF'\n"
      script += Data(files[name] ?? []).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
      script += "\nSVCT_EOF\nchmod \(mode) \(temporary)\n"
      if let validate { script += "\(validate) \(temporary) >/dev/null\n" }
      script += "mv -f \(temporary) \(destination)\n"
    }
    try write("state.json", to: stateDirectory + "/state.json", mode: "0644")
    try write("remove.sh", to: stateDirectory + "/remove.sh", mode: "0755")
    let refreshStart = vars["svct_refresh_start"] as? String ?? ""
    if backend == "nftables" {
      script += "nft list table inet svctrace >/dev/null 2>&1 || base64 -d <<'SVCT_EOF' | nft -f -\n"
      script += Data(files["svctrace.nft"] ?? []).base64EncodedString(options: [
        .lineLength76Characters, .endLineWithLineFeed,
      ])
      script += "\nSVCT_EOF\n"
    } else {
      // One restore per family: IPv4 always (as the playbook), IPv6 when the node has rules for it.
      let jumps = "'^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*--comment svctrace( |$)'"
      for family in IPFamily.allCases {
        let names = Fixture.iptablesNames(family)
        let chains = vars[names.chains] as? [String] ?? []
        let rules = files[names.rules] ?? []
        guard family == .ipv4 || !chains.isEmpty || !rules.isEmpty else { continue }
        guard let tool = Dataplane.Backend(rawValue: backend)?.binary(family) else {
          throw BenchmarkFailure("fixture variable svct_backend is \(backend), not a dataplane backend")
        }
        script += "{\n  echo '*mangle'\n"
        for chain in chains {
          let line = try quote(":\(chain) - [0:0]")
          script += "  echo \(line)\n"
        }
        script += "  \(tool)-save -t mangle | { grep -E -e \(jumps) || true; } | sed 's/^-A /-D /'\n"
        script += "  base64 -d <<'SVCT_EOF'\n"
        script += Data(rules).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        script += "\nSVCT_EOF\n  echo\n  echo COMMIT\n} | \(tool)-restore --noflush\n"
      }
    }
    try write("rsyslog.conf", to: dropIn, mode: "0644", validate: "rsyslogd -N1 -f")
    script += "rsyslogd -N1 >/dev/null 2>&1\nsystemctl restart rsyslog\nsystemctl is-active --quiet rsyslog\n"
    try write("logrotate", to: logrotate, mode: "0644")
    let quotedLogrotate = try quote(logrotate)
    script += "logrotate -d \(quotedLogrotate) >/dev/null 2>&1\n"
    if !refreshStart.isEmpty {
      // The scope's refresh, as svctrace's apply leaves it: its script, started, one round run.
      try write("refresh.sh", to: stateDirectory + "/refresh.sh", mode: "0755")
      script += "( set +eu\n\(refreshStart)\n) </dev/null >/dev/null 2>&1\n"
      script += "/bin/sh \(try quote(stateDirectory + "/refresh.sh")) --wait </dev/null >/dev/null 2>&1 || true\n"
    }
    return script
  }
}

extension Fixture {
  /// Plans an install on every host of `context` (read-only) the way `svctrace install` does — every
  /// node probed, the cluster's Service CIDRs resolved from all the probes (a worker knows none
  /// itself, the control plane does), each node planned from its own probe with that answer — and
  /// takes each node's fixture out of it.
  /// - Throws: ``BenchmarkFailure`` naming a host whose probe or plan failed, or the nodes that
  ///   disagree on the Service CIDRs.
  static func render(_ context: FleetContext) async throws -> [(host: String, fixture: Fixture)] {
    let probed = await context.runner.run(context.hosts, connector: context.connector) { session, host in
      let settings = try RolloutSettings(variables: host.vars)
      return HostOutcome(payload: try await NodeProber.probe(session, settings: settings))
    }
    var probes: [HostID: NodeProbe] = [:]
    for result in probed {
      guard let probe = result.payload else {
        throw BenchmarkFailure(
          "Cannot render the fixtures for \(result.host): \(result.message ?? result.status.rawValue)")
      }
      probes[result.host] = probe
    }
    let resolution = NodeRollout.resolveClusterScope(context.hosts.compactMap { probes[$0.id] })
    return try context.hosts.compactMap { host in
      guard let probe = probes[host.id] else { return nil }
      var settings = try RolloutSettings(variables: host.vars)
      if settings.serviceCIDRs == nil {
        switch resolution {
        // Nothing found among these nodes: the node's own probe decides, as in svctrace install.
        case .success(let cidrs) where cidrs.source == .learnedHosts: break
        case .success(let cidrs): settings.clusterServiceCIDRs = cidrs
        case .failure(let conflict):
          throw BenchmarkFailure("Cannot render the fixtures for \(host.id): \(conflict.description)")
        }
      }
      do {
        return (host.id.name, try Fixture(plan: try NodeRollout.plan(probe: probe, settings: settings)))
      } catch {
        throw BenchmarkFailure("Cannot render the fixtures for \(host.id): \(error)")
      }
    }
  }
}
