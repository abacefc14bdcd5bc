import ArgumentParser
import Fleet
import Foundation
import Rollout
import SVCTraceCommands
import SVCTraceCore
import Subprocess
import SystemPackage

/// `svctrace-bench install`: `svctrace install` next to an Ansible playbook making the same changes.
struct BenchInstall: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "install",
    abstract: "Time `svctrace install` over the fleet next to an Ansible playbook that makes the same changes.",
    discussion: """
      Per round: `svctrace remove` (untimed), `svctrace install` (timed), `svctrace remove` (untimed), \
      `ansible-playbook -i INV bench/ansible/install.yml -f FORKS` (timed), then `svctrace install \
      --check` must report 0 changes on every node (proof that the playbook made the same changes), \
      then `svctrace remove`. Both sides use the same inventory, --limit and forks; the median wall \
      time over the rounds is compared. Goal: svctrace at least 10x faster.

      ansible-core is installed from PyPI into a virtualenv (--venv, reused when present). The \
      playbook's per-node desired contents (drop-in, logrotate entry, state files, rules) are written \
      to bench/ansible/fixtures/ from svctrace's renderer before the timed runs; Ansible itself \
      connects, detects the dataplane, compares, writes, applies, restarts rsyslog and checks. \
      Nodes that had svctrace installed before the benchmark get it back at the end.

      Example:
        svctrace-bench install -i /var/lib/svctrace-lab/inventory.ini --known-hosts /var/lib/svctrace-lab/known_hosts --rounds 3
      """)

  @OptionGroup var fleet: FleetOptions

  @Option(help: "How many times to run each side.")
  var rounds = 3

  @Option(
    help: ArgumentHelp(
      "The playbook. Default: bench/ansible/install.yml of the repository this binary was built in.", valueName: "file")
  )
  var playbook: String?

  @Option(
    help: ArgumentHelp("Python virtualenv holding ansible-core (created with pip when missing).", valueName: "dir"))
  var venv = "/var/cache/svctrace-bench/ansible-venv"

  @Option(help: ArgumentHelp("Where ansible.cfg and the run logs go.", valueName: "dir"))
  var workDir = "/var/cache/svctrace-bench"

  func validate() throws {
    guard (1...50).contains(rounds) else { throw ValidationError("--rounds takes 1 to 50.") }
  }

  func run() async throws {
    var context = try FleetContext.make(fleet, label: "bench install")
    context.runner.progress = nil
    let hosts = context.hosts
    let knownHosts =
      fleet.knownHosts.first ?? (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.ssh/known_hosts"
    let svctracePath = try SVCTraceExecutable.path()
    let playbookPath = try playbook ?? Self.findPlaybook(from: try SVCTraceExecutable.benchPath())
    guard FileManager.default.fileExists(atPath: playbookPath) else {
      throw ValidationError("Playbook \(playbookPath) not found (give --playbook).")
    }
    let fixtures = URL(fileURLWithPath: playbookPath).deletingLastPathComponent().appendingPathComponent("fixtures")
      .path
    let logs = workDir + "/logs"
    try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)

    let ansible = try await ensureAnsible()
    let config = workDir + "/ansible.cfg"
    try ansibleConfig(knownHosts: knownHosts).write(toFile: config, atomically: true, encoding: .utf8)

    var common = ["--forks", String(fleet.forks), "--known-hosts", knownHosts]
    for path in fleet.inventory { common += ["-i", path] }
    if let limit = fleet.limit { common += ["--limit", limit] }
    for key in fleet.privateKeys { common += ["--private-key", key] }
    if let user = fleet.user { common += ["--user", user] }
    var ansibleArguments = ["-f", String(fleet.forks), playbookPath]
    for path in fleet.inventory { ansibleArguments += ["-i", path] }
    if let limit = fleet.limit { ansibleArguments += ["--limit", limit] }
    if let key = fleet.privateKeys.first { ansibleArguments += ["--private-key", key] }
    if let user = fleet.user { ansibleArguments += ["--user", user] }

    // Which nodes had svctrace before we started: they get it back at the end.
    let before = await probeInstalled(context)
    let hadSvctrace = before.filter(\.value).map(\.key).sorted()
    Terminal.writeError(
      "bench install: \(hosts.count) hosts, forks \(fleet.forks), \(rounds) rounds; svctrace installed before on "
        + (hadSvctrace.isEmpty ? "no node" : hadSvctrace.joined(separator: ", ")) + "\n")

    func svctrace(_ verb: [String], log: String) async throws -> SpawnResult {
      try await Spawn.run(svctracePath, verb + common, log: logs + "/" + log)
    }
    func mustSucceed(_ result: SpawnResult, _ what: String) throws {
      guard result.status == 0 else {
        throw BenchmarkFailure("\(what) failed (exit \(result.status)); see \(result.log):\n\(result.tail)")
      }
    }

    var ours: [Double] = []
    var theirs: [Double] = []
    var ourPeak = 0
    var theirPeak = 0
    var verified: [String] = []
    var failures: [String] = []
    /// Leaves the nodes as found: svctrace removed, reinstalled where it was installed before.
    func cleanup() async throws {
      Terminal.writeError("cleanup: remove…")
      try mustSucceed(try await svctrace(["remove"], log: "remove-final.log"), "svctrace remove")
      if !hadSvctrace.isEmpty {
        Terminal.writeError(" reinstall on \(hadSvctrace.joined(separator: ","))…")
        var arguments = ["install"] + common
        if let index = arguments.firstIndex(of: "--limit") {
          arguments[index + 1] = hadSvctrace.joined(separator: ":")
        } else {
          arguments += ["--limit", hadSvctrace.joined(separator: ":")]
        }
        try mustSucceed(
          try await Spawn.run(svctracePath, arguments, log: logs + "/reinstall.log"), "svctrace install (restore)")
      }
      Terminal.writeError("\n")
    }

    /// One ansible-playbook run with its own ControlPersist directory, closed afterwards.
    func runPlaybook(tag: String) async throws -> SpawnResult {
      let controlDir = workDir + "/cp-\(getpid())-\(tag)"
      try FileManager.default.createDirectory(atPath: controlDir, withIntermediateDirectories: true)
      do {
        let result = try await Spawn.run(
          ansible + "/bin/ansible-playbook", ansibleArguments, log: logs + "/ansible-\(tag).log",
          environment: ["ANSIBLE_CONFIG": config, "ANSIBLE_SSH_CONTROL_PATH_DIR": controlDir, "ANSIBLE_NOCOLOR": "1"])
        await Self.closeControlMasters(in: controlDir)
        return result
      } catch {
        await Self.closeControlMasters(in: controlDir)
        throw error
      }
    }

    var converseVerified = false
    do {
      for round in 1...rounds {
        Terminal.writeError("round \(round)/\(rounds): remove…")
        try mustSucceed(try await svctrace(["remove"], log: "remove-\(round)a.log"), "svctrace remove")
        if round == 1 {
          Terminal.writeError(" fixtures…")
          try await writeFixtures(context, to: fixtures)
        }
        Terminal.writeError(" svctrace install…")
        let mine = try await svctrace(["install"], log: "svctrace-install-\(round).log")
        try mustSucceed(mine, "svctrace install")
        Terminal.writeError(" \(Output.decimal(mine.seconds)) s;")
        if round == 1 {
          // The converse proof, once: on nodes svctrace just installed the playbook must change nothing.
          Terminal.writeError(" ansible-playbook on it (untimed)…")
          let converse = try await runPlaybook(tag: "converse")
          try mustSucceed(converse, "ansible-playbook (on svctrace's install)")
          let changed = Self.changedHosts(playbookLog: converse.log)
          if changed.isEmpty {
            converseVerified = true
            Terminal.writeError(" changed=0;")
          } else {
            failures.append("ansible-playbook after svctrace install changed: " + changed.joined(separator: ", "))
          }
        }
        Terminal.writeError(" remove…")
        try mustSucceed(try await svctrace(["remove"], log: "remove-\(round)b.log"), "svctrace remove")
        Terminal.writeError(" ansible-playbook…")
        let theirsResult = try await runPlaybook(tag: String(round))
        try mustSucceed(theirsResult, "ansible-playbook")
        Terminal.writeError(" \(Output.decimal(theirsResult.seconds)) s; verify…")
        let check = try await svctrace(["install", "--check", "--json"], log: "verify-\(round).log")
        let pending = try Self.pendingChanges(checkOutput: check.log)
        if pending.isEmpty {
          verified.append("round \(round)")
          Terminal.writeError(" 0 changes\n")
        } else {
          failures += pending.map { "round \(round): \($0)" }
          Terminal.writeError(" \(pending.count) node(s) differ\n")
        }
        ours.append(mine.seconds)
        theirs.append(theirsResult.seconds)
        ourPeak = max(ourPeak, mine.maxRSSKilobytes)
        theirPeak = max(theirPeak, theirsResult.maxRSSKilobytes)
      }
    } catch {
      Terminal.writeError("\n")
      do { try await cleanup() } catch { Terminal.writeError("cleanup failed too: \(error)\n") }
      throw error
    }
    try await cleanup()

    let ourMedian = ours.sorted()[ours.count / 2]
    let theirMedian = theirs.sorted()[theirs.count / 2]
    let count = Double(hosts.count)
    print("bench install: \(hosts.count) hosts, forks \(fleet.forks), \(rounds) rounds (median wall time)")
    print(
      "  svctrace install              \(Output.decimal(ourMedian)) s   (\(Output.decimal(ourMedian / count)) s/node)   peak RSS \(ourPeak / 1024) MB"
    )
    print(
      "  ansible-playbook install.yml  \(Output.decimal(theirMedian)) s   (\(Output.decimal(theirMedian / count)) s/node)   peak RSS \(theirPeak / 1024) MB (largest process)"
    )
    print("  ratio ansible/svctrace        \(Output.decimal(theirMedian / ourMedian))x  (goal >= 10x)")
    print(
      "  rounds: svctrace " + ours.map(Output.decimal).joined(separator: " ") + " s; ansible "
        + theirs.map(Output.decimal).joined(separator: " ") + " s")
    if failures.isEmpty {
      print(
        "  ansible result verified: svctrace --check reports 0 changes on \(hosts.count) nodes (\(verified.count) of \(rounds) rounds)"
      )
      if converseVerified {
        print(
          "  and conversely: the playbook on svctrace's install reports changed=0 on \(hosts.count) nodes (round 1)")
      }
    } else {
      print("  ansible result NOT verified: svctrace --check after the playbook still reports changes:")
      for failure in failures { print("    " + failure) }
      throw ExitCode.failure
    }
  }

  // MARK: Steps

  /// Finds `bench/ansible/install.yml` above the binary (`.build/<triple>/<config>/svctrace-bench` → repo root).
  static func findPlaybook(from executable: String) throws -> String {
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    while directory.path != "/" {
      let candidate = directory.appendingPathComponent("bench/ansible/install.yml").path
      if FileManager.default.fileExists(atPath: candidate) { return candidate }
      directory.deleteLastPathComponent()
    }
    throw ValidationError("Cannot find bench/ansible/install.yml above \(executable); give --playbook.")
  }

  /// Stops the OpenSSH ControlPersist masters Ansible left in `directory` (so no round reuses another's
  /// connections) and removes the directory.
  static func closeControlMasters(in directory: String) async {
    let sockets = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for socket in sockets {
      _ = try? await Subprocess.run(
        .path("/usr/bin/ssh"),
        arguments: ["-o", "ControlPath=" + directory + "/" + socket, "-O", "exit", "svctrace-bench"],
        output: .discarded, error: .discarded)
    }
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Returns the virtualenv with `ansible-playbook`, creating it with `pip install ansible-core` if needed.
  /// - Throws: ``BenchmarkFailure`` when the virtualenv cannot be made or pip fails.
  private func ensureAnsible() async throws -> String {
    if FileManager.default.isExecutableFile(atPath: venv + "/bin/ansible-playbook") { return venv }
    Terminal.writeError("creating \(venv) and installing ansible-core from PyPI…\n")
    try FileManager.default.createDirectory(
      atPath: URL(fileURLWithPath: venv).deletingLastPathComponent().path, withIntermediateDirectories: true)
    let log = workDir + "/pip.log"
    let create = try await Spawn.run("/usr/bin/python3", ["-m", "venv", venv], log: log)
    guard create.status == 0 else {
      throw BenchmarkFailure(
        "python3 -m venv \(venv) failed (exit \(create.status); Debian needs python3-venv):\n\(create.tail)")
    }
    let pip = try await Spawn.run(venv + "/bin/pip", ["install", "--quiet", "ansible-core"], log: log)
    guard pip.status == 0, FileManager.default.isExecutableFile(atPath: venv + "/bin/ansible-playbook") else {
      throw BenchmarkFailure(
        "pip install ansible-core into \(venv) failed (exit \(pip.status)); is PyPI reachable?\n\(pip.tail)")
    }
    return venv
  }

  /// ansible.cfg: strict host keys against the same known_hosts, same forks, pipelining, no fact gathering.
  private func ansibleConfig(knownHosts: String) -> String {
    """
    # Written by svctrace-bench install.
    [defaults]
    forks = \(fleet.forks)
    host_key_checking = True
    gathering = explicit
    interpreter_python = /usr/bin/python3
    retry_files_enabled = False
    timeout = \(fleet.connectTimeout)

    [ssh_connection]
    pipelining = True
    ssh_common_args = -o UserKnownHostsFile=\(knownHosts) -o StrictHostKeyChecking=yes

    """
  }

  /// `true` per host when svctrace's rules or files are present (read-only probe).
  private func probeInstalled(_ context: FleetContext) async -> [String: Bool] {
    let results = await context.runner.run(context.hosts, connector: context.connector) { session, host in
      let settings = try RolloutSettings(variables: host.vars)
      let probe = try await NodeProber.probe(session, settings: settings)
      return HostOutcome(payload: !NodeRollout.presentArtifacts(probe, settings: settings).isEmpty)
    }
    return Dictionary(results.map { ($0.host.name, $0.payload ?? false) }, uniquingKeysWith: { $0 || $1 })
  }

  /// Writes per host what svctrace would install (from its renderer) as the playbook's fixtures.
  private func writeFixtures(_ context: FleetContext, to directory: String) async throws {
    let fixtures = try await Fixture.render(context)
    try? FileManager.default.removeItem(atPath: directory)
    for (host, fixture) in fixtures { try fixture.write(to: directory + "/" + host) }
  }

  /// Hosts that a playbook run reported `changed=N` (N > 0) for in its PLAY RECAP.
  static func changedHosts(playbookLog path: String) -> [String] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    guard let recap = text.range(of: "PLAY RECAP") else { return ["no PLAY RECAP in \(path)"] }
    return text[recap.upperBound...].split(separator: "\n").compactMap { line in
      let words = line.split(separator: " ")
      guard let host = words.first, words.contains(where: { $0.hasPrefix("changed=") }) else { return nil }
      return words.contains("changed=0") ? nil : String(host)
    }
  }

  /// Hosts for which `install --check --json` (its output in `checkOutput`) still reports changes.
  static func pendingChanges(checkOutput path: String) throws -> [String] {
    struct Document: Decodable {
      struct Host: Decodable {
        var host: String
        var status: String
        var message: String?
      }
      var hosts: [Host]
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    // The log holds stderr too; the JSON document starts at the first "{" line.
    let text = String(decoding: data, as: UTF8.self)
    guard let start = text.range(of: "\n{") ?? (text.hasPrefix("{") ? text.range(of: "{") : nil) else {
      return ["no JSON from svctrace install --check (see \(path))"]
    }
    let document = try JSONDecoder().decode(Document.self, from: Data(text[start.lowerBound...].utf8))
    return document.hosts.filter { $0.status != "ok" }.map { "\($0.host) \($0.status): \($0.message ?? "")" }
  }
}

/// What the playbook needs for one node: svctrace's rendered files and rules.
struct Fixture: Sendable {
  var vars: [String: any Sendable]
  var files: [String: [UInt8]]

  /// The fixture's names for one family's mangle rules: the restore body's file, the variables
  /// with svctrace's chains and with the lines the playbook compares (`mangle.rules`,
  /// `svct_iptables_chains`, `svct_iptables_expected`; `mangle6.rules`, `svct_ip6tables_…` for IPv6).
  static func iptablesNames(_ family: IPFamily) -> (rules: String, chains: String, expected: String) {
    switch family {
    case .ipv4: ("mangle.rules", "svct_iptables_chains", "svct_iptables_expected")
    case .ipv6: ("mangle6.rules", "svct_ip6tables_chains", "svct_ip6tables_expected")
    }
  }

  /// The refresh-owned iptables chains, whose rules the playbook does not compare.
  static let refreshChains = [RefreshScript.preChain, RefreshScript.postChain]

  /// Takes the desired contents out of an install plan: the files, and on an iptables backend the
  /// mangle rules of both families (the IPv6 ones go to ip6tables).
  /// - Throws: ``ShellQuoteError`` when the refresh's start command cannot be quoted.
  init(plan: NodePlan) throws {
    let settings = plan.settings
    func desired(_ path: String) -> [UInt8] { plan.files.first { $0.path == path }?.desired ?? [] }
    files = [
      "state.json": desired(settings.statePath),
      "remove.sh": desired(settings.removeScriptPath),
      "rsyslog.conf": desired(settings.rsyslogDropInPath),
      "logrotate": desired(settings.logrotatePath),
    ]
    var vars: [String: any Sendable] = [
      "svct_backend": plan.dataplane.backend.rawValue,
      "svct_state_dir": settings.stateDirectory,
      "svct_dropin": settings.rsyslogDropInPath,
      "svct_logrotate": settings.logrotatePath,
    ]
    // The scope's refresh: its script, and the command that (re)starts it as svctrace's apply does.
    vars["svct_refresh_start"] = ""
    if case .start(let method, let interval)? = plan.refreshAction {
      files["refresh.sh"] = desired(settings.refreshScriptPath)
      vars["svct_refresh_start"] = try RefreshScript.start(settings: settings, method: method, interval: interval)
    }
    if let table = plan.nftDesired {
      files["svctrace.nft"] = Array(Renderer.nftApplyFile(table: table).utf8)
    }
    // iptables backends: per family the restore body, the chains and the lines the playbook
    // compares (none in nftables mode, where no IptablesTarget is for the detected backend).
    for family in IPFamily.allCases {
      let desired =
        plan.iptables.first { $0.backend == plan.dataplane.backend && $0.family == family }?.desired
        ?? IptablesRuleState()
      let names = Self.iptablesNames(family)
      // The restore body: rules of svctrace's chains, then the jumps (header, chains and -D lines
      // come from the template or the floor script).
      var body: [String] = []
      for chain in desired.chains { body += (desired.rules[chain] ?? []).map { "-A \(chain) \($0)" } }
      for jump in desired.jumps.sorted(by: { ($0.position, $0.chain) < ($1.position, $1.chain) }) {
        body.append("-I \(jump.chain) \(jump.position) \(jump.spec)")
      }
      if plan.nftDesired == nil { files[names.rules] = Array(body.joined(separator: "\n").utf8) }
      // The compared lines leave out the rules of the refresh-owned chains: the refresh fills them
      // (load-balancer and external IPs) and svctrace install keeps whatever is there.
      var expected = desired.chains.map { ":\($0) - [0:0]" }
      expected += desired.jumps.map { "-A \($0.chain) \($0.spec)" }
      for chain in desired.chains where !Self.refreshChains.contains(chain) {
        expected += (desired.rules[chain] ?? []).map { "-A \(chain) \($0)" }
      }
      vars[names.chains] = desired.chains
      vars[names.expected] = expected
    }
    vars["svct_refresh_chains"] = Self.refreshChains
    self.vars = vars
  }

  /// Writes `vars.json` and the files into `directory`.
  func write(to directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let json = try JSONSerialization.data(withJSONObject: vars, options: [.prettyPrinted, .sortedKeys])
    try json.write(to: URL(fileURLWithPath: directory + "/vars.json"))
    for (name, bytes) in files {
      try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
    }
  }
}
