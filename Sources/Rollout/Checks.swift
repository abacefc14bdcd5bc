import Foundation
public import SVCTraceCore

/// One verify check on one node.
public struct CheckResult: Sendable, Hashable, Codable {
  /// Check verdicts, worst last.
  public enum Status: String, Sendable, Hashable, Codable, Comparable {
    case pass, warn, fail

    public static func < (lhs: Status, rhs: Status) -> Bool {
      let order: [Status] = [.pass, .warn, .fail]
      return (order.firstIndex(of: lhs) ?? 0) < (order.firstIndex(of: rhs) ?? 0)
    }
  }

  /// Check group: `dataplane`, `rsyslog`, `logrotate`, `disk`, `expiry`, `canary`.
  public var group: String
  /// Short name of the check (`rules present`).
  public var name: String
  public var status: Status
  /// What was seen.
  public var evidence: String
  /// What to do about a warn/fail; empty on pass.
  public var hint: String

  public init(group: String, name: String, status: Status, evidence: String, hint: String = "") {
    self.group = group
    self.name = name
    self.status = status
    self.evidence = evidence
    self.hint = hint
  }
}

/// Options of the per-node checks.
public struct CheckOptions: Sendable, Hashable {
  /// Warn when the log was not written for this long (only matters when traffic exists).
  public var freshness: Duration = .seconds(3600)
  /// Warn when the log's filesystem fills up within this many hours at the current growth rate.
  public var minHoursUntilFull: Double = 24
  /// Warn when less than this many bytes are free.
  public var minFreeBytes: UInt64 = 512 * 1024 * 1024

  public init() {}
}

/// The per-node checks behind `svctrace verify`.
public enum NodeChecks {
  /// Runs every check group (dataplane, rsyslog, logrotate, disk, expiry) on one node.
  /// - Throws: ``RemoteError`` only when the session itself fails.
  public static func checkNode(_ session: any RemoteSession, settings: RolloutSettings, options: CheckOptions = CheckOptions())
    async throws -> [CheckResult]
  {
    let probe = try await NodeProber.probe(session, settings: settings)
    var results: [CheckResult] = []
    // Dataplane.
    let plan: NodePlan
    switch probe.dataplane {
    case .failure(let error):
      results.append(
        CheckResult(
          group: "dataplane", name: "detected", status: .fail, evidence: error.reason,
          hint: "svctrace cannot trace this node's dataplane"))
      return results + (try await fileChecks(session, probe: probe, settings: settings, options: options))
    case .success(let dataplane):
      results.append(
        CheckResult(
          group: "dataplane", name: "detected", status: .pass,
          evidence: "kube-proxy \(dataplane.mode.rawValue) mode, backend \(dataplane.backend.rawValue); "
            + dataplane.evidence.joined(separator: "; ")))
      do { plan = try NodeRollout.plan(probe: probe, settings: settings) } catch {
        results.append(CheckResult(group: "dataplane", name: "rules", status: .fail, evidence: error.reason))
        return results
      }
    }
    results += ruleChecks(plan)
    let legacyRules = NodeRollout.legacyRules(probe)
    let legacyLines = probe.legacyConfigLines
    if legacyRules.isEmpty && legacyLines.isEmpty {
      results.append(CheckResult(group: "dataplane", name: "old script leftovers", status: .pass, evidence: "none"))
    } else {
      results.append(
        CheckResult(
          group: "dataplane", name: "old script leftovers", status: .warn,
          evidence: (legacyRules + legacyLines).joined(separator: "; "),
          hint: "run `svctrace remove --legacy` (then `svctrace install`) to remove the old domeos rules and config lines"))
    }
    // rsyslog.
    results.append(
      CheckResult(
        group: "rsyslog", name: "running", status: probe.rsyslogActive ? .pass : .fail,
        evidence: probe.rsyslogActive ? "rsyslog is active" : "`\(settings.commands.rsyslogIsActive)` failed",
        hint: probe.rsyslogActive ? "" : "start rsyslog (systemctl restart rsyslog) or run `svctrace install`"))
    if let dropIn = plan.files.first(where: { $0.path == settings.rsyslogDropInPath }) {
      let status: CheckResult.Status = dropIn.current == nil ? .fail : (dropIn.changes ? .fail : .pass)
      results.append(
        CheckResult(
          group: "rsyslog", name: "drop-in", status: status,
          evidence: dropIn.current == nil
            ? "\(dropIn.path) missing" : (dropIn.changes ? "\(dropIn.path) differs:\n" + dropIn.diff : "\(dropIn.path) as installed"),
          hint: status == .pass ? "" : "run `svctrace install` to rewrite it"))
    }
    let validate = try await session.run(settings.commands.rsyslogValidate + " 2>&1", stdin: nil, timeout: .seconds(60))
    results.append(
      CheckResult(
        group: "rsyslog", name: "config valid", status: validate.succeeded ? .pass : .fail,
        evidence: validate.succeeded ? "rsyslogd -N1 ok" : validate.failureSummary + " " + validate.stdoutText.suffix(300),
        hint: validate.succeeded ? "" : "fix the rsyslog configuration reported by `rsyslogd -N1`"))
    // logrotate.
    if let rotate = plan.files.first(where: { $0.path == settings.logrotatePath }) {
      let names = rotate.current.map { String(decoding: $0, as: UTF8.self).contains(settings.logPath + " {") } ?? false
      let status: CheckResult.Status = rotate.current == nil || !names ? .fail : (rotate.changes ? .warn : .pass)
      results.append(
        CheckResult(
          group: "logrotate", name: "entry", status: status,
          evidence: rotate.current == nil
            ? "\(rotate.path) missing"
            : (names ? "\(rotate.path) rotates \(settings.logPath)" : "\(rotate.path) does not name \(settings.logPath)"),
          hint: status == .pass ? "" : "run `svctrace install` to rewrite it"))
      if rotate.current != nil {
        let debug = try await session.run(
          settings.commands.logrotateDebug + " " + ShellQuote.quote(rotate.path) + " 2>&1", stdin: nil, timeout: .seconds(60))
        let errorLine = debug.stdoutText.split(separator: "\n").first { $0.contains("error") }
        let ok = debug.succeeded && errorLine == nil
        results.append(
          CheckResult(
            group: "logrotate", name: "valid", status: ok ? .pass : .fail,
            evidence: ok ? "logrotate -d ok" : String(errorLine ?? Substring(debug.failureSummary)),
            hint: ok ? "" : "fix the error `logrotate -d \(rotate.path)` reports"))
      }
    }
    results += try await fileChecks(session, probe: probe, settings: settings, options: options)
    return results
  }

  /// Rules present, complete, same backend, at position 1, not duplicated.
  static func ruleChecks(_ plan: NodePlan) -> [CheckResult] {
    var results: [CheckResult] = []
    let backend = plan.dataplane.backend
    if backend == .nftables {
      let present = plan.nftCurrent != nil
      let same = NFTText.normalize(plan.nftCurrent ?? "") == NFTText.normalize(plan.nftDesired ?? "")
      results.append(
        CheckResult(
          group: "dataplane", name: "rules", status: present && same ? .pass : .fail,
          evidence: !present ? "table inet svctrace missing" : (same ? "table inet svctrace complete" : "table inet svctrace differs: "
            + (plan.ruleChanges.first.map { "+\($0.added.count) -\($0.removed.count) lines" } ?? "")),
          hint: present && same ? "" : "run `svctrace install` to restore the rules"))
    }
    for target in plan.iptables {
      let location = target.location
      if target.backend != backend {
        results.append(
          CheckResult(
            group: "dataplane", name: "same backend", status: .fail,
            evidence: "svctrace rules found in \(location), but kube-proxy uses \(backend.rawValue)",
            hint: "run `svctrace install`: it removes rules from the other backend"))
        continue
      }
      let current = target.current
      let desired = target.desired
      if current.isEmpty {
        results.append(
          CheckResult(
            group: "dataplane", name: "rules present", status: .fail, evidence: "no svctrace rules in \(location)",
            hint: "run `svctrace install` (rules are lost on reboot or a full iptables flush)"))
        continue
      }
      let duplicates = Dictionary(grouping: current.jumps, by: \.chain).filter { $0.value.count > 1 }.keys.sorted()
      let misplaced = current.jumps.filter { $0.position != 1 }.map { "\($0.chain) at \($0.position)" }
      let missing = Set(desired.jumps.map(\.chain)).subtracting(current.jumps.map(\.chain)).sorted()
      let rulesSame = desired.chains.allSatisfy { current.rules[$0] == desired.rules[$0] } && current.chains == desired.chains
      results.append(
        CheckResult(
          group: "dataplane", name: "rules complete", status: rulesSame && missing.isEmpty ? .pass : .fail,
          evidence: rulesSame && missing.isEmpty
            ? "\(location): \(current.chains.count) chains, \(current.jumps.count) jumps"
            : "\(location): " + (missing.isEmpty ? "chain rules differ from the rendered set" : "missing jumps from " + missing.joined(separator: ", ")),
          hint: rulesSame && missing.isEmpty ? "" : "run `svctrace install` to repair"))
      results.append(
        CheckResult(
          group: "dataplane", name: "rules positioned", status: misplaced.isEmpty ? .pass : .fail,
          evidence: misplaced.isEmpty ? "every jump is rule 1 of its chain" : "jumps not first: " + misplaced.joined(separator: ", "),
          hint: misplaced.isEmpty ? "" : "run `svctrace install` to move them back to position 1"))
      results.append(
        CheckResult(
          group: "dataplane", name: "not duplicated", status: duplicates.isEmpty ? .pass : .warn,
          evidence: duplicates.isEmpty ? "one jump per chain" : "several svctrace jumps in " + duplicates.joined(separator: ", "),
          hint: duplicates.isEmpty ? "" : "run `svctrace install` to deduplicate (lines would be logged twice)"))
    }
    return results
  }

  /// Log file exists/fresh, disk space and growth, expiry.
  static func fileChecks(_ session: any RemoteSession, probe: NodeProbe, settings: RolloutSettings, options: CheckOptions)
    async throws -> [CheckResult]
  {
    var results: [CheckResult] = []
    let log = ShellQuote.quote(settings.logPath)
    let dir = ShellQuote.quote((settings.logPath as NSString).deletingLastPathComponent)
    let output = try await session.run(
      "date +%s; stat -c '%s %Y %U %a' \(log) 2>/dev/null || echo missing; df -P \(dir) | tail -1; head -c 40 \(log) 2>/dev/null")
    let lines = output.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let now = lines.first.flatMap { Int64($0) } ?? Int64(Date().timeIntervalSince1970)
    let statWords = lines.count > 1 ? lines[1].split(separator: " ").map(String.init) : []
    let size = statWords.count == 4 ? UInt64(statWords[0]) : nil
    let mtime = statWords.count == 4 ? Int64(statWords[1]) : nil
    if let size, let mtime {
      let age = now - mtime
      let fresh = age <= options.freshness.components.seconds
      results.append(
        CheckResult(
          group: "rsyslog", name: "log file", status: fresh ? .pass : .warn,
          evidence: "\(settings.logPath): \(size) bytes, owner \(statWords[2]), mode \(statWords[3]), last written \(age)s ago",
          hint: fresh ? "" : "no line for a while: fine without Service traffic; otherwise run `svctrace verify --canary`"))
    } else {
      results.append(
        CheckResult(
          group: "rsyslog", name: "log file", status: .warn, evidence: "\(settings.logPath) does not exist yet",
          hint: "rsyslog creates it with the first logged connection; run `svctrace verify --canary` to prove the pipeline"))
    }
    // df -P: Filesystem 1024-blocks Used Available Capacity Mounted
    let dfWords = lines.count > 2 ? lines[2].split(separator: " ").map(String.init) : []
    if dfWords.count >= 6, let available = UInt64(dfWords[3]) {
      let free = available * 1024
      var evidence = "\(free / 1_048_576) MiB free on \(dfWords[5])"
      var status: CheckResult.Status = free < options.minFreeBytes ? .warn : .pass
      // Growth rate from the first line's RFC 3339 time to now.
      let head = lines.count > 3 ? lines[3] : ""
      if let size, size > 0, let first = ISO8601DateFormatter().date(from: String(head.prefix(19)) + "Z")
        ?? parseRFC3339Prefix(head)
      {
        let seconds = max(1, Double(now) - first.timeIntervalSince1970)
        let rate = Double(size) / seconds
        let hours = Double(free) / max(rate, 1e-9) / 3600
        evidence += String(format: ", log grows %.1f KiB/h → full in %.0f h", rate * 3600 / 1024, hours)
        if hours < options.minHoursUntilFull { status = .warn }
      }
      results.append(
        CheckResult(
          group: "disk", name: "free space", status: status, evidence: evidence,
          hint: status == .pass ? "" : "free space, lower svctrace_rotate_size, or use --max-rate / --services"))
    } else {
      results.append(CheckResult(group: "disk", name: "free space", status: .warn, evidence: "df -P gave no answer"))
    }
    if let expiry = probe.expiry {
      let left = expiry.timeIntervalSince1970 - Double(now)
      results.append(
        CheckResult(
          group: "expiry", name: "time left", status: left > 0 ? .pass : .warn,
          evidence: left > 0 ? "capture ends in \(Int(left / 60)) min (\(expiry))" : "expiry time passed \(Int(-left))s ago",
          hint: left > 0 ? "" : "the expiry did not run: run `svctrace remove`"))
    } else {
      results.append(CheckResult(group: "expiry", name: "time left", status: .pass, evidence: "no time-boxed capture"))
    }
    return results
  }

  private static func parseRFC3339Prefix(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return text.split(separator: " ").first.flatMap { formatter.date(from: String($0)) }
  }

  /// Opens a TCP connection from the node to a Service and waits (≤ ~5 s) for its PRE and POST lines.
  ///
  /// `service` defaults to the first TCP ClusterIP in kube-proxy's rules. The client port is taken
  /// from the connecting process (python3, else bash's /dev/tcp with `ss`), then the log is polled for
  /// `SPT=<port>` lines with both prefixes.
  /// - Throws: ``RemoteError`` when the session fails.
  public static func canary(_ session: any RemoteSession, settings: RolloutSettings, service: ServiceAddress? = nil)
    async throws -> CheckResult
  {
    var target = service
    if target == nil {
      let probe = try await NodeProber.probe(session, settings: settings)
      target = (try? probe.dataplane.get())?.services.first { $0.isClusterIP && $0.address.proto == .tcp }?.address
    }
    guard let target else {
      return CheckResult(
        group: "canary", name: "pipeline", status: .fail, evidence: "no TCP Service address found in kube-proxy's rules",
        hint: "pass --canary-service VIP:PORT")
    }
    let address = ShellQuote.quote(target.addressText)
    let script = """
      if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket,sys
      s=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.settimeout(3)
      try:
          s.connect((sys.argv[1], int(sys.argv[2])))
      except OSError:
          pass
      print(s.getsockname()[1])' \(address) \(target.port)
      else
        timeout 3 bash -c 'exec 3<>/dev/tcp/'\(address)'/\(target.port); ss -tnH state all dst '\(address)' | awk "{print \\$4}" | sed "s/.*://" | head -1' 2>/dev/null
      fi
      """
    let connect = try await session.run(script, stdin: nil, timeout: .seconds(10))
    guard let port = UInt16(connect.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)), port > 0 else {
      return CheckResult(
        group: "canary", name: "pipeline", status: .fail,
        evidence: "could not open a connection to \(target): \(connect.failureSummary)",
        hint: "check that the Service has endpoints")
    }
    let log = ShellQuote.quote(settings.logPath)
    let poll = """
      for i in $(seq 25); do
        pre=$(grep -c 'SVCT:PRE .*SPT=\(port) ' \(log) 2>/dev/null); post=$(grep -c 'SVCT:POST .*SPT=\(port) ' \(log) 2>/dev/null)
        if [ "${pre:-0}" -gt 0 ] && [ "${post:-0}" -gt 0 ]; then echo "found $pre $post"; exit 0; fi
        sleep 0.2
      done
      echo "missing ${pre:-0} ${post:-0}"
      """
    let result = try await session.run(poll, stdin: nil, timeout: .seconds(15))
    let words = result.stdoutText.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
    if words.first == "found" {
      return CheckResult(
        group: "canary", name: "pipeline", status: .pass,
        evidence: "connection to \(target) from port \(port): PRE and POST lines in \(settings.logPath)")
    }
    let pre = words.count > 1 ? words[1] : "0"
    let post = words.count > 2 ? words[2] : "0"
    return CheckResult(
      group: "canary", name: "pipeline", status: .fail,
      evidence: "connection to \(target) from port \(port): \(pre) PRE and \(post) POST lines after 5 s",
      hint: pre == "0" && post == "0"
        ? "nothing reached the file: check rules (`svctrace install`), rsyslog running, nf_log (sysctl net.netfilter.nf_log_all_netns for container nodes)"
        : "only one side logged: check the rules' position and backend")
  }
}
