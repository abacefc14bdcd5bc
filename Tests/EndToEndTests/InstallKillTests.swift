import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// SIGKILL of the controller (`svctrace install` / `svctrace remove`) at random moments: every node is
/// always either exactly as before or completely installed, never in between.
@Suite(.serialized, .enabled(if: Lab.isUp, "needs a running testbed (SVCTRACE_LAB); scripts/test brings one up"))
struct InstallKillTests {
  private let fleet = ["-i", Lab.inventory, "--known-hosts", Lab.knownHosts]

  /// Raw node state, read without a probe (a probe would roll back a journal and hide a half-done node):
  /// rulesets without counters or affinity-set expiry times (`nft -s`), every file install touches (and any
  /// journal or backup) with hash, mode, owner (the refresh's status and pid files only by presence: each
  /// round rewrites the status, each start the pid).
  private func rawState(_ node: String) async throws -> String {
    let script = """
      for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do \
        echo "## $s"; $s 2>/dev/null | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]/[0:0]/'; done; \
      echo '## nft'; nft -s list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'; \
      echo '## files'; find /etc/rsyslog.d /etc/logrotate.d /var/lib/svctrace -type f 2>/dev/null | sort \
        | while read -r f; do case "$f" in \
            */refresh.status|*/refresh.pid) echo "present $f" ;; \
            *) echo "$(sha256sum < "$f" | cut -c1-16) $(stat -c '%a %u %g' "$f") $f" ;; esac; done; \
      sha256sum /etc/rsyslog.conf
      """
    let run = try await Lab.onNode(node, script)
    #expect(run.status == 0, "\(node): \(run.stderr)")
    return run.stdout
  }

  /// Starts `svctrace ARGS`, SIGKILLs it after `delay` (if still running) and reaps it.
  /// Returns `true` when it was killed (rather than done already).
  private func killAfter(_ delay: Duration, _ arguments: [String]) async throws -> Bool {
    let process = try await BackgroundProcess.start([Lab.binary] + arguments)
    let deadline = ContinuousClock.now + delay
    while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    let killed = process.isRunning
    if killed { process.signal(SIGKILL) }
    _ = try await process.wait()
    return killed
  }

  /// Waits (bounded) until no node-side bootstrap, apply/remove script or probe has run for 1.5 s: sshd may
  /// still start a command whose bytes reached it before the controller died.
  private func waitForNodeScripts() async throws {
    var quiet = 0
    for _ in 0..<900 {
      // `[y]`: the pattern does not match this shell's own command line.
      let running = try await Lab.run("/bin/sh", ["-c", "pgrep -f 'svctrace-appl[y]' || true"])
      quiet = running.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? quiet + 1 : 0
      if quiet >= 15 { return }
      try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("node-side scripts still running after 90 s")
  }

  private func statuses(_ run: Lab.Run) throws -> [String: String] {
    let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    var result: [String: String] = [:]
    for host in document?["hosts"] as? [[String: Any]] ?? [] {
      result[host["host"] as? String ?? "?"] = host["status"] as? String
    }
    return result
  }

  @Test func killedControllerNeverLeavesANodeHalfChanged() async throws {
    let nodes = try Lab.cluster().nodes.map(\.name)
    try await Lab.svctrace(["remove"] + fleet)
    var before: [String: String] = [:]
    for node in nodes { before[node] = try await rawState(node) }
    let start = ContinuousClock.now
    let install = try await Lab.svctrace(["install"] + fleet)
    let installDuration = ContinuousClock.now - start
    #expect(install.status == 0, "\(install.stdout)\(install.stderr)")
    var installed: [String: String] = [:]
    for node in nodes { installed[node] = try await rawState(node) }
    #expect(installed != before)
    try await withCleanup {
      let rounds = Int(Lab.environment["SVCTRACE_KILL_ROUNDS"] ?? "") ?? 8
      var killedCount = 0
      for round in 0..<(2 * rounds) {
        // Alternate: kill a remove, then an install.
        let command = round % 2 == 0 ? "remove" : "install"
        let maxMilliseconds = max(60, Int(installDuration.components.seconds * 1000) + 300)
        let delay = Duration.milliseconds(Int.random(in: 50...maxMilliseconds))
        if try await killAfter(delay, [command] + fleet) { killedCount += 1 }
        try await waitForNodeScripts()
        var installedNodes: [String] = []
        for node in nodes {
          let now = try await rawState(node)
          if now == before[node] {
            continue
          } else if now == installed[node] {
            installedNodes.append(node)
          } else {
            let versusBefore = lineDiff(before[node] ?? "", now)
            let versusInstalled = lineDiff(installed[node] ?? "", now)
            Issue.record(
              Comment(
                rawValue: "round \(round) (\(command) killed after \(delay)): \(node) is half-changed:\n"
                  + "vs before:\n\(versusBefore)\nvs installed:\n\(versusInstalled)"))
          }
        }
        // A completely installed node is one where install plans no change.
        let check = try await Lab.svctrace(["install", "--check", "--json"] + fleet)
        let planned = try statuses(check)
        for node in installedNodes {
          #expect(
            planned[node] == "ok", "round \(round): \(node) plans changes after a killed \(command): \(check.stdout)")
        }
      }
      #expect(killedCount >= rounds, "only \(killedCount) of \(2 * rounds) runs were killed before they finished")
    } cleanup: {
      _ = try? await Lab.svctrace(["remove"] + fleet)
    }
  }
}
