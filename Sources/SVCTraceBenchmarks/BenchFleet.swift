import ArgumentParser
import Fleet
import Foundation
import Rollout
import SVCTraceCommands
import SVCTraceCore
import Subprocess
import Synchronization
import SystemPackage

/// `svctrace-bench fleet`: every fleet operation over an N-node lab, each next to an OpenSSH
/// `ssh node true` fan-out of the same run (issue #14).
struct BenchFleet: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fleet",
    abstract: "Time every fleet operation over an N-node lab next to an `ssh node true` fan-out of the same run.",
    discussion: """
      Needs a lab that is up with at least --nodes nodes (`testbed/lab up 100`), given by its \
      inventory and known_hosts; with more hosts, the first --nodes are used (--limit). In one run, \
      with the same --forks: `svctrace remove` (untimed reset); OpenSSH `ssh -o BatchMode=yes NODE \
      true` over the hosts with `xargs -P FORKS` (the baseline: same key and known_hosts); `svctrace \
      ping`, `install`, `install` again (nothing to change), `verify`, `verify --canary`; traffic \
      from the lab's generator (`testbed/lab traffic`: --traffic-count per kind of host-clusterip, \
      pod-clusterip, nodeport, udp, hostnetwork, a concurrent burst, and --hairpin self-landings); \
      `collect` into a fresh store, `collect` again (nothing new); the correctness check (every \
      ground-truth connection traced to its service, pod and node by `svctrace trace`); the \
      `trace --follow` latency (--follow-connections new connections, each from its own timestamp \
      to the moment `trace --follow --format jsonl` printed it); `svctrace remove`. Then, on the \
      first --floor-nodes hosts, `svctrace install` next to one OpenSSH shell script per node making \
      the same edits (`ssh NODE sh -s < script`, `xargs -P FORKS`), verified with `svctrace install \
      --check`.

      Each step: wall time, time per node, ratio to the `ssh true` fan-out, exit status, the \
      controller's peak RSS (`ru_maxrss` of the step's process) and the goal of issue #14 with \
      PASS/MISS. A missed goal is a figure, not a failure: the exit status is 1 only when a step \
      failed to run or the correctness check found a connection traced wrong or not at all.

      Run as root (the traffic generator enters the lab's namespaces). Build both executables in \
      release mode first: swift build -c release --product svctrace --product svctrace-bench

      Example:
        svctrace-bench fleet -i /var/lib/svctrace-lab/inventory.ini --known-hosts /var/lib/svctrace-lab/known_hosts
      """)

  @OptionGroup var fleet: FleetOptions

  @Option(help: "How many nodes to run on (the lab must have at least this many).")
  var nodes = 100

  @Option(help: "Connections per traffic kind before the first collect (5 kinds, plus the burst and hairpins).")
  var trafficCount = 150

  @Option(help: "Size of the traffic generator's concurrent burst (0: none).")
  var burst = 240

  @Option(help: "Hairpin self-landings (each tries until the pod lands on itself; 0: none).")
  var hairpin = 2

  @Option(
    help: ArgumentHelp(
      "The traffic generator's per-connection timeout (its --timeout; a loaded 100-node lab needs more than 3 s).",
      valueName: "seconds"))
  var trafficTimeout: Double = 10

  @Option(help: "New connections made while `trace --follow` runs (0: skip the latency measurement).")
  var followConnections = 250

  @Option(help: ArgumentHelp("--interval given to `trace --follow`.", valueName: "seconds"))
  var followInterval: Double = 1

  @Option(
    help: ArgumentHelp(
      "How long to wait, after the traffic, for `trace --follow` to print every connection.", valueName: "seconds"))
  var followWait: Double = 180

  @Option(help: "Nodes for the install vs. shell-script floor comparison (0: skip it).")
  var floorNodes = 20

  @Option(help: ArgumentHelp("The lab's state directory (cluster.json).", valueName: "dir"))
  var labDir = ProcessInfo.processInfo.environment["SVCTRACE_LAB"] ?? "/var/lib/svctrace-lab"

  @Option(
    help: ArgumentHelp(
      "The lab script. Default: testbed/lab of the repository this binary was built in.", valueName: "file"))
  var labScript: String?

  @Option(help: ArgumentHelp("Where the store, ground truth, scripts and logs go.", valueName: "dir"))
  var workDir = "/var/cache/svctrace-bench/fleet"

  @Flag(help: "Print the whole result as one JSON document instead of the table.")
  var json = false

  /// The traffic kinds spread over every node (hairpin and the burst run besides).
  static let kinds = ["host-clusterip", "pod-clusterip", "nodeport", "udp", "hostnetwork"]

  func validate() throws {
    guard (1...10_000).contains(nodes) else { throw ValidationError("--nodes takes 1 to 10000.") }
    guard (1...20_000).contains(trafficCount) else { throw ValidationError("--traffic-count takes 1 to 20000.") }
    guard trafficTimeout > 0, trafficTimeout <= 120 else {
      throw ValidationError("--traffic-timeout must be between 0 and 120 seconds.")
    }
    guard (0...5_000).contains(burst) else { throw ValidationError("--burst takes 0 to 5000.") }
    guard (0...100).contains(hairpin) else { throw ValidationError("--hairpin takes 0 to 100.") }
    guard (0...100_000).contains(followConnections) else {
      throw ValidationError("--follow-connections takes 0 to 100000.")
    }
    guard followInterval >= 0.2, followInterval <= 3600 else {
      throw ValidationError("--follow-interval must be between 0.2 and 3600 seconds.")
    }
    guard followWait >= 1, followWait <= 3600 else {
      throw ValidationError("--follow-wait must be between 1 and 3600 seconds.")
    }
    guard (0...nodes).contains(floorNodes) else { throw ValidationError("--floor-nodes takes 0 to --nodes.") }
    guard !fleet.inventory.isEmpty else { throw ValidationError("Give the lab's inventory with -i FILE.") }
  }

  /// The traffic generator's `--count` per kind for about `connections` connections over the kinds.
  static func countPerKind(_ connections: Int) -> Int {
    (connections + kinds.count - 1) / kinds.count
  }

  /// `--limit` for the first `count` of `names` (nil when that is all of them).
  static func limit(first count: Int, of names: [String]) -> String? {
    count >= names.count ? nil : names.prefix(count).joined(separator: ":")
  }

  func run() async throws {
    var options = fleet
    let everything = try FleetContext.make(options, label: "bench fleet")
    guard everything.hosts.count >= nodes else {
      throw BenchmarkFailure(
        "The inventory selects \(everything.hosts.count) hosts; --nodes \(nodes) needs at least that many (testbed/lab up \(nodes))."
      )
    }
    let hosts = Array(everything.hosts.prefix(nodes))
    let names = everything.hosts.map(\.id.name)
    if let limit = Self.limit(first: nodes, of: names) { options.limit = limit }
    guard let key = hosts.first?.identityFiles.first ?? fleet.privateKeys.first else {
      throw ValidationError(
        "bench fleet needs a private key file (inventory ansible_ssh_private_key_file or --private-key) so OpenSSH uses the same one."
      )
    }
    let knownHosts =
      fleet.knownHosts.first ?? (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.ssh/known_hosts"
    let svctracePath = try SVCTraceExecutable.path()
    let lab = try labScript ?? Self.findLabScript(from: try SVCTraceExecutable.benchPath())
    let run = workDir + "/run-\(getpid())"
    let logs = run + "/logs"
    try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    let nodeIPs = try Self.nodeIPs(clusterFile: labDir + "/cluster.json")
    let selected = Set(hosts.map(\.id.name))

    let fleetArguments = Self.commonArguments(options, knownHosts: knownHosts)

    /// One timed svctrace step (never throws for a non-zero exit: that is a figure too).
    func svctrace(
      _ verb: [String], name: String, tag: String, goal: Double?, memoryGoal: Bool = true,
      arguments: [String]? = nil
    ) async throws -> FleetStep {
      progress("\(name)…")
      let result = try await Spawn.run(svctracePath, verb + (arguments ?? fleetArguments), log: logs + "/\(tag).log")
      progress(" \(Output.decimal(result.seconds)) s" + (result.status == 0 ? "\n" : " (exit \(result.status))\n"))
      return FleetStep(
        name: name, seconds: result.seconds, status: result.status, peakRSSKiB: result.maxRSSKilobytes,
        goal: goal.map { FleetGoal(maxRatio: $0) }, memoryGoalApplies: memoryGoal, log: result.log)
    }
    func mustSucceed(_ step: FleetStep) throws {
      guard step.status == 0 else {
        throw BenchmarkFailure("\(step.name) failed (exit \(step.status)); see \(step.log)")
      }
    }

    progress(
      "bench fleet: \(hosts.count) nodes, forks \(fleet.forks), svctrace \(svctracePath), work dir \(run)\n")
    progress("reset: ")
    var notes: [String] = []
    let reset = try await svctrace(["remove"], name: "svctrace remove (reset)", tag: "reset", goal: nil)
    if reset.status != 0 {
      notes.append("the untimed reset (svctrace remove) exited \(reset.status); see \(reset.log)")
    }

    // The baseline: `ssh NODE true`, one process per host, xargs -P FORKS.
    let list = run + "/hosts.txt"
    try (hosts.map { "\($0.user)@\($0.address) \($0.port)" }.joined(separator: "\n") + "\n")
      .write(toFile: list, atomically: true, encoding: .utf8)
    let quotedKnownHosts = try ShellQuote.quote(knownHosts)
    let quotedKey = try ShellQuote.quote(key)
    let sshOptions =
      "-q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\(quotedKnownHosts) "
      + "-o ConnectTimeout=\(fleet.connectTimeout) -i \(quotedKey)"
    let sshTrue = run + "/ssh-true.sh"
    try "#!/bin/sh\nexec ssh \(sshOptions) -p \"$2\" \"$1\" true\n".write(
      toFile: sshTrue, atomically: true, encoding: .utf8)
    _ = chmod(sshTrue, 0o755)
    let baselineName = "ssh NODE true, xargs -P \(fleet.forks)"
    progress("\(baselineName)…")
    let fanOut = "xargs -a \(try ShellQuote.quote(list)) -P \(fleet.forks) -L 1 \(try ShellQuote.quote(sshTrue))"
    let sshResult = try await Spawn.run("/bin/sh", ["-c", fanOut], log: logs + "/ssh-true.log")
    progress(" \(Output.decimal(sshResult.seconds)) s\n")
    let baseline = FleetStep(
      name: baselineName, seconds: sshResult.seconds, status: sshResult.status, peakRSSKiB: sshResult.maxRSSKilobytes,
      goal: nil, memoryGoalApplies: false, log: sshResult.log)
    try mustSucceed(baseline)

    var steps: [FleetStep] = []
    steps.append(try await svctrace(["ping"], name: "svctrace ping", tag: "ping", goal: 0.8))
    let install = try await svctrace(["install"], name: "svctrace install", tag: "install", goal: 2.0)
    // A failed node is a figure too (and the second install completes it); later steps go on.
    steps.append(install)
    steps.append(
      try await svctrace(["install"], name: "svctrace install (nothing to change)", tag: "install-again", goal: nil))
    steps.append(try await svctrace(["verify"], name: "svctrace verify", tag: "verify", goal: 1.5))
    steps.append(
      try await svctrace(["verify", "--canary"], name: "svctrace verify --canary", tag: "verify-canary", goal: 2.5))

    // Traffic with ground truth; flows of earlier runs forgotten so that a reused UDP 5-tuple is new.
    progress("conntrack -F on every node…")
    for host in hosts {
      _ = try await Self.runTool(lab, ["exec", host.id.name, "--", "sh", "-c", "conntrack -F >/dev/null 2>&1 || true"])
    }
    progress(" traffic…")
    var truth = try await trafficRound(
      lab: lab, kinds: Self.kinds + (burst > 0 ? ["burst"] : []), count: trafficCount, out: run + "/truth.jsonl",
      notes: &notes)
    if hairpin > 0 {
      truth += try await trafficRound(
        lab: lab, kinds: ["hairpin"], count: hairpin, out: run + "/truth-hairpin.jsonl", notes: &notes)
    }
    truth = truth.filter { selected.contains($0["dnat_node"] as? String ?? "") }
    progress(" \(truth.count) connections\n")
    try await Task.sleep(for: .seconds(2))  // rsyslog writes asynchronously

    let store = run + "/store.sqlite"
    steps.append(
      try await svctrace(
        ["collect", "--store", store], name: "svctrace collect (\(truth.count) connections)", tag: "collect",
        goal: nil, memoryGoal: false))
    steps.append(
      try await svctrace(
        ["collect", "--store", store], name: "svctrace collect (nothing new)", tag: "collect-again", goal: 1.0))

    progress("correctness…")
    let records = try await Self.storedRecords(svctracePath, store: store)
    let correctness = GroundTruth.compare(truth: truth, records: records, nodeIPs: nodeIPs)
    progress(" \(correctness.right) of \(correctness.connections) traced right\n")

    var follow: FollowLatency?
    if followConnections > 0 {
      do {
        follow = try await measureFollow(
          svctracePath, store: store, lab: lab, fleetArguments: fleetArguments, run: run, selected: selected,
          notes: &notes)
      } catch {
        notes.append("trace --follow measurement failed: \(error)")
        progress(" failed: \(error)\n")
      }
    }

    steps.append(try await svctrace(["remove"], name: "svctrace remove", tag: "remove", goal: 1.5))

    var floor: FloorComparison?
    if floorNodes > 0 {
      do {
        floor = try await floorComparison(
          svctracePath: svctracePath, knownHosts: knownHosts, names: names, sshOptions: sshOptions, run: run,
          logs: logs)
      } catch {
        notes.append("the install floor comparison failed: \(error)")
        progress(" failed: \(error)\n")
      }
    }

    let report = FleetReport(
      nodes: hosts.count, forks: fleet.forks, trafficConnections: truth.count, baseline: baseline, steps: steps,
      correctness: correctness, follow: follow, floor: floor, notes: notes)
    if json {
      print(try Output.json(report))
    } else {
      print(report.render(), terminator: "")
    }
    let failed = steps.filter { $0.status != 0 && !$0.name.hasPrefix("svctrace verify") }
    if !failed.isEmpty || !correctness.passes
      || (floor.map { $0.shellScripts.status != 0 || !$0.notVerified.isEmpty } ?? false)
    {
      throw ExitCode.failure
    }
  }

  // MARK: Steps

  /// One run of the lab's traffic generator with `--check`; returns its ground truth.
  private func trafficRound(lab: String, kinds: [String], count: Int, out: String, notes: inout [String])
    async throws -> [[String: Any]]
  {
    var arguments = [
      "traffic", "--kinds", kinds.joined(separator: ","), "--count", String(count), "--check", "--out", out,
    ]
    if kinds.contains("burst") { arguments += ["--burst", String(burst)] }
    arguments += ["--timeout", String(trafficTimeout)]
    let result = try await Self.runTool(lab, arguments)
    if result.status != 0 {
      notes.append(
        "traffic \(kinds.joined(separator: ",")) exit \(result.status): "
          + result.output.split(separator: "\n").suffix(3).joined(separator: " / "))
    }
    guard FileManager.default.fileExists(atPath: out) else {
      throw BenchmarkFailure("The traffic generator wrote no ground truth (\(out)):\n\(result.output)")
    }
    return try GroundTruth.objects(jsonLines: try String(contentsOfFile: out, encoding: .utf8))
  }

  /// Runs `trace --follow --format jsonl` as a child process, makes new traffic once it follows,
  /// and times each ground-truth connection from its own timestamp to the moment its line arrived.
  private func measureFollow(
    _ svctracePath: String, store: String, lab: String, fleetArguments: [String], run: String,
    selected: Set<String>, notes: inout [String]
  ) async throws -> FollowLatency {
    let perKind = Self.countPerKind(followConnections)
    let truthFile = run + "/truth-follow.jsonl"
    let arguments =
      [
        "trace", "--store", store, "--follow", "--interval", String(followInterval), "--format", "jsonl", "--for",
        "\(Int(followWait) + 1800)s",
      ] + fleetArguments
    let lines = FollowLines()
    let wait = followWait
    progress("trace --follow: catching up…")
    let clock = ContinuousClock()
    let outcome = try await Subprocess.run(
      .path(FilePath(svctracePath)), arguments: Arguments(arguments), input: .none, output: .sequence,
      error: .sequence
    ) { execution -> (traffic: ToolResult?, truth: String, peakKiB: Int, problem: String?) in
      async let errors: Void = lines.readErrors(execution.standardError)
      async let output: Void = lines.readLines(execution.standardOutput)
      var traffic: ToolResult?
      var truthText = ""
      var peak = 0
      var problem: String?
      let started = clock.now
      while !lines.isFollowing, !lines.isClosed, clock.now - started < .seconds(900) {
        try await Task.sleep(for: .milliseconds(100))
      }
      if lines.isFollowing {
        Terminal.writeError(" \(Output.decimal((clock.now - started).seconds)) s; traffic…")
        do {
          traffic = try await Self.runTool(
            lab,
            [
              "traffic", "--kinds", Self.kinds.joined(separator: ","), "--count", String(perKind), "--check", "--out",
              truthFile, "--timeout", String(trafficTimeout),
            ])
          truthText = (try? String(contentsOfFile: truthFile, encoding: .utf8)) ?? ""
          let keys = Set(
            ((try? GroundTruth.objects(jsonLines: truthText)) ?? []).filter {
              selected.contains($0["dnat_node"] as? String ?? "")
            }.map(GroundTruth.key))
          Terminal.writeError(" \(keys.count) connections; waiting for them…")
          let deadline = clock.now + .seconds(wait)
          while !keys.isSubset(of: lines.keys), !lines.isClosed, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
          }
        } catch {
          problem = "\(error)"
        }
        peak = Self.highWaterMarkKiB(pid: execution.processIdentifier.value)
      } else {
        problem = "trace --follow did not start following: " + lines.errorText.suffix(500)
      }
      try? execution.send(signal: .interrupt)
      try await output
      try await errors
      return (traffic, truthText, peak, problem)
    }
    let value = outcome.closureResult
    if let problem = value.problem { throw BenchmarkFailure(problem) }
    if let traffic = value.traffic, traffic.status != 0 {
      notes.append(
        "follow traffic exit \(traffic.status): "
          + traffic.output.split(separator: "\n").suffix(3).joined(separator: " / "))
    }
    if case .exited(let code) = outcome.terminationStatus, code != 0 {
      notes.append("trace --follow exited \(code): " + lines.errorText.suffix(300))
    }
    let truth = try GroundTruth.objects(jsonLines: value.truth).filter {
      selected.contains($0["dnat_node"] as? String ?? "")
    }
    let arrivals = lines.arrivals
    let logged = lines.logged
    var delays: [Double] = []
    var afterLog: [Double] = []
    for connection in truth {
      guard let arrived = arrivals[GroundTruth.key(connection)],
        let made = GroundTruth.epochSeconds(connection["time"] as? String ?? "")
      else { continue }
      delays.append(arrived - made)
      if let time = logged[GroundTruth.key(connection)] { afterLog.append(arrived - time) }
    }
    var latency = FollowLatency(
      delays: delays, connections: truth.count, interval: followInterval, peakRSSKiB: value.peakKiB)
    let sortedAfterLog = afterLog.sorted()
    latency.afterLogP50 = Percentile.nearestRank(sortedAfterLog, 50)
    latency.afterLogP95 = Percentile.nearestRank(sortedAfterLog, 95)
    progress(" \(latency.printed) of \(latency.connections) printed\n")
    return latency
  }

  /// `svctrace install` on the first --floor-nodes hosts next to one OpenSSH shell script per node
  /// making the same edits; the scripts' result is verified with `svctrace install --check`.
  private func floorComparison(
    svctracePath: String, knownHosts: String, names: [String], sshOptions: String, run: String, logs: String
  ) async throws -> FloorComparison {
    var options = fleet
    options.limit = names.prefix(floorNodes).joined(separator: ":")
    let arguments = Self.commonArguments(options, knownHosts: knownHosts)
    var context = try FleetContext.make(options, label: "bench fleet floor")
    context.runner.progress = nil
    let hosts = context.hosts
    func svctrace(_ verb: [String], _ tag: String) async throws -> SpawnResult {
      try await Spawn.run(svctracePath, verb + arguments, log: logs + "/floor-\(tag).log")
    }
    func mustSucceed(_ result: SpawnResult, _ what: String) throws {
      guard result.status == 0 else {
        throw BenchmarkFailure("\(what) failed (exit \(result.status)); see \(result.log):\n\(result.tail)")
      }
    }
    progress("floor, \(hosts.count) nodes: remove…")
    try mustSucceed(try await svctrace(["remove"], "remove-a"), "svctrace remove")
    progress(" svctrace install…")
    let install = try await svctrace(["install"], "install")
    try mustSucceed(install, "svctrace install")
    progress(" \(Output.decimal(install.seconds)) s; remove…")
    try mustSucceed(try await svctrace(["remove"], "remove-b"), "svctrace remove")
    progress(" scripts…")
    let directory = run + "/floor"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let byName = Dictionary(uniqueKeysWithValues: hosts.map { ($0.id.name, $0) })
    var list = ""
    for (name, fixture) in try await Fixture.render(context) {
      guard let host = byName[name] else { continue }
      let path = directory + "/\(name).sh"
      try fixture.shellScript().write(toFile: path, atomically: true, encoding: .utf8)
      list += "\(host.user)@\(host.address) \(host.port) \(path)\n"
    }
    let listFile = directory + "/hosts.txt"
    try list.write(toFile: listFile, atomically: true, encoding: .utf8)
    let wrapper = directory + "/ssh-script.sh"
    try "#!/bin/sh\nexec ssh \(sshOptions) -p \"$2\" \"$1\" sh -s < \"$3\"\n".write(
      toFile: wrapper, atomically: true, encoding: .utf8)
    _ = chmod(wrapper, 0o755)
    progress(" shell scripts…")
    let fanOut = "xargs -a \(try ShellQuote.quote(listFile)) -P \(fleet.forks) -L 1 \(try ShellQuote.quote(wrapper))"
    let scripts = try await Spawn.run("/bin/sh", ["-c", fanOut], log: logs + "/floor-scripts.log")
    progress(" \(Output.decimal(scripts.seconds)) s; install --check…")
    let check = try await svctrace(["install", "--check", "--json"], "check")
    let pending = try BenchInstall.pendingChanges(checkOutput: check.log)
    progress(pending.isEmpty ? " 0 changes; remove…" : " \(pending.count) node(s) differ; remove…")
    try mustSucceed(try await svctrace(["remove"], "remove-c"), "svctrace remove")
    progress("\n")
    return FloorComparison(
      nodes: hosts.count,
      svctrace: FleetStep(
        name: "svctrace install", seconds: install.seconds, status: install.status,
        peakRSSKiB: install.maxRSSKilobytes, goal: nil, memoryGoalApplies: true, log: install.log),
      shellScripts: FleetStep(
        name: "ssh NODE sh -s < script, xargs -P \(fleet.forks)", seconds: scripts.seconds, status: scripts.status,
        peakRSSKiB: scripts.maxRSSKilobytes, goal: nil, memoryGoalApplies: false, log: scripts.log),
      notVerified: scripts.status == 0
        ? pending : ["the scripts failed (exit \(scripts.status)); see \(scripts.log)"] + pending)
  }

  /// The fleet options every svctrace step gets: forks, known_hosts, inventories, limit, keys, user.
  static func commonArguments(_ options: FleetOptions, knownHosts: String) -> [String] {
    var arguments = ["--forks", String(options.forks), "--known-hosts", knownHosts]
    for path in options.inventory { arguments += ["-i", path] }
    if let limit = options.limit { arguments += ["--limit", limit] }
    for key in options.privateKeys { arguments += ["--private-key", key] }
    if let user = options.user { arguments += ["--user", user] }
    return arguments
  }

  private func progress(_ text: String) { Terminal.writeError(text) }

  // MARK: Helpers

  /// What a helper tool printed (stdout and stderr) and how it ended.
  struct ToolResult: Sendable {
    var status: Int32
    var output: String
  }

  /// Runs `executable` with its output captured (stdout then stderr, up to 16 MiB each).
  static func runTool(_ executable: String, _ arguments: [String]) async throws -> ToolResult {
    let result = try await Subprocess.run(
      .path(FilePath(executable)), arguments: Arguments(arguments), input: .none,
      output: .string(limit: 16 << 20), error: .string(limit: 16 << 20))
    let status: Int32
    switch result.terminationStatus {
    case .exited(let code): status = code
    case .signaled(let signal): status = 128 + signal
    }
    return ToolResult(status: status, output: result.standardOutput + result.standardError)
  }

  /// Every connection in `store`, as `svctrace trace --format jsonl` prints them.
  static func storedRecords(_ svctracePath: String, store: String) async throws -> [[String: Any]] {
    let result = try await Subprocess.run(
      .path(FilePath(svctracePath)),
      arguments: ["trace", "--store", store, "--format", "jsonl", "--max", "10000000"], input: .none,
      output: .string(limit: 1 << 30), error: .string(limit: 1 << 20))
    guard result.terminationStatus.isSuccess || result.terminationStatus == .exited(1) else {
      throw BenchmarkFailure("svctrace trace --store \(store) failed: \(result.standardError)")
    }
    return try GroundTruth.objects(jsonLines: result.standardOutput)
  }

  /// Node name → IP from the lab's cluster.json.
  static func nodeIPs(clusterFile: String) throws -> [String: String] {
    guard let data = FileManager.default.contents(atPath: clusterFile),
      let cluster = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { throw BenchmarkFailure("Cannot read the lab's \(clusterFile); is the lab up (testbed/lab up N)?") }
    var ips: [String: String] = [:]
    for node in cluster["nodes"] as? [[String: Any]] ?? [] {
      if let name = node["name"] as? String, let ip = node["ip"] as? String { ips[name] = ip }
    }
    return ips
  }

  /// `VmHWM` (peak resident set) of a running process, KiB; 0 when unreadable.
  static func highWaterMarkKiB(pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
      return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
  }

  /// Finds `testbed/lab` above the binary (`.build/<triple>/<config>/svctrace-bench` → repo root).
  static func findLabScript(from executable: String) throws -> String {
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    while directory.path != "/" {
      let candidate = directory.appendingPathComponent("testbed/lab").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      directory.deleteLastPathComponent()
    }
    throw ValidationError("Cannot find testbed/lab above \(executable); give --lab-script.")
  }
}

/// What `trace --follow` printed, line by line, with each connection's arrival time.
final class FollowLines: Sendable {
  private struct Value {
    var pending: [UInt8] = []
    /// Connection key → wall-clock seconds when its line arrived (the first time).
    var arrivals: [String: Double] = [:]
    /// Connection key → the record's own time (when the node's log got its line), seconds.
    var logged: [String: Double] = [:]
    var errors: [UInt8] = []
    var outputClosed = false
  }
  private let value = Mutex(Value())

  var keys: Set<String> { value.withLock { Set($0.arrivals.keys) } }
  var arrivals: [String: Double] { value.withLock { $0.arrivals } }
  var logged: [String: Double] { value.withLock { $0.logged } }
  var isClosed: Bool { value.withLock { $0.outputClosed } }
  var errorText: String { value.withLock { String(decoding: $0.errors, as: UTF8.self) } }
  /// `true` once `trace --follow` said it caught up ("Following: …" on standard error).
  var isFollowing: Bool { errorText.contains("Following") }

  func readLines(_ sequence: SubprocessOutputSequence) async throws {
    for try await buffer in sequence {
      let now = Date().timeIntervalSince1970
      let bytes = buffer.withUnsafeBytes { Array($0) }
      let lines: [[UInt8]] = value.withLock { value in
        value.pending += bytes
        var complete: [[UInt8]] = []
        while let newline = value.pending.firstIndex(of: UInt8(ascii: "\n")) {
          complete.append(Array(value.pending[..<newline]))
          value.pending.removeSubrange(...newline)
        }
        return complete
      }
      let records = lines.compactMap { line -> (String, Double?)? in
        // A pre line without a post line (pod unknown) is not the arrival of a connection.
        (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]).flatMap {
          $0["method"] as? String == "pod-unknown" ? nil : $0
        }.map {
          (GroundTruth.key($0), GroundTruth.epochSeconds($0["time"] as? String ?? ""))
        }
      }
      value.withLock { value in
        for (key, time) in records where value.arrivals[key] == nil {
          value.arrivals[key] = now
          value.logged[key] = time
        }
      }
    }
    value.withLock { $0.outputClosed = true }
  }

  func readErrors(_ sequence: SubprocessOutputSequence) async throws {
    for try await buffer in sequence {
      let bytes = buffer.withUnsafeBytes { Array($0) }
      value.withLock { value in
        value.errors += bytes
        if value.errors.count > 1 << 20 { value.errors.removeFirst(value.errors.count - (1 << 20)) }
      }
    }
  }
}
