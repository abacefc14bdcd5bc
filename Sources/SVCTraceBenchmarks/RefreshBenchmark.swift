import Foundation
public import Rollout
public import SVCTraceCore
import Subprocess
import SystemPackage

/// One timed `refresh.sh` round.
public struct RefreshRoundFigures: Sendable, Equatable, Codable {
  /// User + system CPU of the round: the script and every process it ran (`RUSAGE_CHILDREN`).
  public var cpuSeconds: Double
  public var wallSeconds: Double

  public init(cpuSeconds: Double, wallSeconds: Double) {
    self.cpuSeconds = cpuSeconds
    self.wallSeconds = wallSeconds
  }
}

/// One script's rounds in one configuration.
public struct RefreshVariantFigures: Sendable, Equatable, Codable {
  /// `baseline` or `current`.
  public var variant: String
  /// The round that filled the emptied refresh-owned chains.
  public var first: RefreshRoundFigures
  /// The steady rounds (nothing to change), in order.
  public var steady: [RefreshRoundFigures]
  public var medianCPUSeconds: Double
  public var minCPUSeconds: Double
  public var medianWallSeconds: Double
  /// The median steady round's CPU in percent of one core at the refresh interval.
  public var percentOfCore: Double

  public init(variant: String, first: RefreshRoundFigures, steady: [RefreshRoundFigures], intervalSeconds: Int) {
    self.variant = variant
    self.first = first
    self.steady = steady
    medianCPUSeconds = IngestFigures.median(steady.map(\.cpuSeconds))
    minCPUSeconds = steady.map(\.cpuSeconds).min() ?? 0
    medianWallSeconds = IngestFigures.median(steady.map(\.wallSeconds))
    percentOfCore = medianCPUSeconds / Double(max(intervalSeconds, 1)) * 100
  }
}

/// Both scripts in one configuration: with a Service CIDR (`want=external`) or without (`want=all`).
public struct RefreshCaseFigures: Sendable, Equatable, Codable {
  /// `external` (a Service CIDR is known: load-balancer and external IPs only) or `all`.
  public var want: String
  /// Addresses every round had to find (`refresh.status`), and found.
  public var addresses: Int
  public var baseline: RefreshVariantFigures
  public var current: RefreshVariantFigures
  /// Baseline over current, medians of the steady rounds.
  public var cpuRatio: Double
  public var wallRatio: Double

  public init(want: String, addresses: Int, baseline: RefreshVariantFigures, current: RefreshVariantFigures) {
    self.want = want
    self.addresses = addresses
    self.baseline = baseline
    self.current = current
    cpuRatio = baseline.medianCPUSeconds / max(current.medianCPUSeconds, 1e-9)
    wallRatio = baseline.medianWallSeconds / max(current.medianWallSeconds, 1e-9)
  }
}

/// What ``RefreshBenchmark/run(services:rounds:backend:progress:)`` measured.
public struct RefreshBenchmarkFigures: Sendable, Equatable, Codable {
  public var backend: String
  public var services: Int
  public var loadBalancerIPs: Int
  /// Steady rounds of each script per configuration.
  public var rounds: Int
  /// The refresh interval the share of a core is taken at.
  public var intervalSeconds: Int
  /// What the baseline runs, in words.
  public var baseline: String
  /// What the current script runs, in words.
  public var current: String
  public var cases: [RefreshCaseFigures]
  /// The goal: a steady round of the current script under this share of one core, in percent.
  public var goalPercentOfCore: Double = 1

  public init(
    backend: String, services: Int, loadBalancerIPs: Int, rounds: Int, intervalSeconds: Int,
    baseline: String, current: String, cases: [RefreshCaseFigures]
  ) {
    self.backend = backend
    self.services = services
    self.loadBalancerIPs = loadBalancerIPs
    self.rounds = rounds
    self.intervalSeconds = intervalSeconds
    self.baseline = baseline
    self.current = current
    self.cases = cases
  }

  /// `true` when the current script's median steady round stays under the goal in every configuration.
  public var meetsGoal: Bool { cases.allSatisfy { $0.current.percentOfCore < goalPercentOfCore } }

  /// The table for people.
  public func report() -> String {
    func cell(_ text: String) -> String {
      String(repeating: " ", count: max(1, 14 - text.count)) + text
    }
    func seconds(_ value: Double) -> String { cell(String(format: "%.3f s", value)) }
    var lines = [
      "bench refresh: \(backend), \(services) Services + \(loadBalancerIPs) load-balancer IPs "
        + "(kube-proxy-shaped nat table) in a scratch network namespace",
      "baseline: \(baseline)",
      "current:  \(current)",
      "CPU: user+sys of the round's processes; median and min over \(rounds) steady round\(rounds == 1 ? "" : "s") "
        + "(nothing to change), after a first round that fills the emptied chains",
    ]
    for figures in cases {
      lines.append("")
      lines.append(
        (figures.want == "all" ? "No Service CIDR (want=all)" : "Service CIDR known (want=external)")
          + ": \(figures.addresses) addresses per round, \(3 * figures.addresses) rules in \(RefreshScript.preChain)")
      lines.append(
        "  script  "
          + ["CPU median", "CPU min", "CPU 1st round", "wall median", "core at \(intervalSeconds) s"].map(cell)
          .joined())
      for variant in [figures.baseline, figures.current] {
        lines.append(
          "  " + variant.variant.padding(toLength: 8, withPad: " ", startingAt: 0) + seconds(variant.medianCPUSeconds)
            + seconds(variant.minCPUSeconds) + seconds(variant.first.cpuSeconds) + seconds(variant.medianWallSeconds)
            + cell(String(format: "%.2f %%", variant.percentOfCore)))
      }
      lines.append(
        "  baseline/current: " + String(format: "%.1f× CPU, %.1f× wall (medians)", figures.cpuRatio, figures.wallRatio))
    }
    lines.append("")
    let shares = cases.map {
      "want=\($0.want) " + String(format: "%.2f %%", $0.current.percentOfCore)
        + ($0.current.percentOfCore < goalPercentOfCore ? " met" : " NOT met")
    }
    lines.append(
      "goal: a steady round under \(Int(goalPercentOfCore)) % of one core at \(intervalSeconds) s on a 5000-Service node"
        + (services == 5000 ? "" : " (this run: \(services))") + ": \(shares.joined(separator: ", "))")
    return lines.joined(separator: "\n")
  }
}

/// The node-side refresh benchmark: `refresh.sh` rounds in a scratch network namespace holding a
/// kube-proxy-shaped nat table (``KubeProxyNatRuleset``) and svctrace's mangle chains, the current
/// script next to the baseline, each round's CPU and wall time.
public enum RefreshBenchmark {
  /// What the baseline runs on `backend`, in words.
  public static func baselineDescription(_ backend: Dataplane.Backend) -> String {
    "refresh.sh as before: \(backend.rawValue)-save -t mangle and -t nat (whole tables) every round "
      + "(this build's script rendered with RefreshChainReads.wholeTables)"
  }

  /// What the current script runs on `backend`, in words.
  public static func currentDescription(_ backend: Dataplane.Backend) -> String {
    "this build's refresh.sh: \(backend.rawValue) -t mangle -S \(RefreshScript.preChain) and -t nat -S KUBE-SERVICES "
      + "(one chain each; on iptables-nft from a partial cache)"
  }

  /// The baseline `refresh.sh` for `backend` (IPv4): the round as it was first, whole-table
  /// saves of mangle and nat (``RefreshChainReads/wholeTables``); everything else is the current script.
  public static func baselineScript(
    settings: RolloutSettings, backend: Dataplane.Backend, includeClusterIPs: Bool
  ) throws(ShellQuoteError) -> String {
    try RefreshScript.render(
      settings: settings, backend: backend, families: [.ipv4], includeClusterIPs: includeClusterIPs,
      reads: .wholeTables)
  }

  /// Addresses a round must keep for `services` Services: the load-balancer IPs, plus every
  /// ClusterIP with `includeClusterIPs`.
  public static func expectedAddresses(services: Int, includeClusterIPs: Bool) -> Set<String> {
    Set(
      KubeProxyNatRuleset.loadBalancerIPs(services: services)
        + (includeClusterIPs ? KubeProxyNatRuleset.clusterIPs(services: services) : []))
  }

  /// Creates a scratch network namespace (`svtbr-…`) with `services` Services' nat rules and
  /// svctrace's mangle chains, renders the current and the baseline `refresh.sh` into a
  /// temporary state directory, and for each configuration (Service CIDR known, and not) runs a
  /// first round of each script (chains emptied before), then `rounds` steady rounds of each,
  /// alternating which goes first. Every round must succeed and find the expected addresses, and
  /// the chains must hold exactly them afterwards. The namespace and the directory are removed at
  /// the end, also on an error or a cancellation. Needs root and `ip`, the backend's iptables.
  ///
  /// - Throws: ``BenchmarkFailure`` naming the command or round that failed; `CancellationError`.
  public static func run(
    services: Int, rounds: Int, backend: Dataplane.Backend, progress: @Sendable (String) -> Void = { _ in }
  ) async throws -> RefreshBenchmarkFigures {
    guard let binary = backend.binary(.ipv4) else { throw BenchmarkFailure("bench refresh measures iptables only.") }
    let tools = ["ip", binary, binary + "-save", binary + "-restore", "awk", "sed", "sort", "grep"]
    let missing = try await Subprocess.run(
      .path("/bin/sh"),
      arguments: Arguments(
        ["-c", "for t; do command -v \"$t\" >/dev/null 2>&1 || echo \"$t\"; done", "sh"] + tools),
      input: .none, output: .string(limit: 1 << 16), error: .discarded
    ).standardOutput.split(separator: "\n")
    guard missing.isEmpty else { throw BenchmarkFailure("bench refresh needs \(missing.joined(separator: ", ")).") }

    let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let namespace = "svtbr-\(suffix)"
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svctrace-bench-refresh-\(suffix)")
      .path
    var settings = RolloutSettings()
    settings.stateDirectory = directory + "/state"
    do {
      try FileManager.default.createDirectory(atPath: settings.stateDirectory, withIntermediateDirectories: true)
      try Data("{}\n".utf8).write(to: URL(fileURLWithPath: settings.statePath))
      try await check(["ip", "netns", "add", namespace])
    } catch {
      await removeScratch(namespace: nil, directory: directory)
      throw error
    }
    do {
      let figures = try await measure(
        namespace: namespace, directory: directory, settings: settings, services: services, rounds: rounds,
        backend: backend, binary: binary, progress: progress)
      await removeScratch(namespace: namespace, directory: directory)
      return figures
    } catch {
      await removeScratch(namespace: namespace, directory: directory)
      throw error
    }
  }

  /// Deletes the namespace (when given) and the directory, in a task of its own so that a
  /// cancelled benchmark still cleans up.
  private static func removeScratch(namespace: String?, directory: String) async {
    await Task {
      if let namespace {
        _ = try? await Subprocess.run(
          .name("ip"), arguments: ["netns", "del", namespace], input: .none, output: .discarded, error: .discarded)
      }
      try? FileManager.default.removeItem(atPath: directory)
    }.value
  }

  private static func measure(
    namespace: String, directory: String, settings: RolloutSettings, services: Int, rounds: Int,
    backend: Dataplane.Backend, binary: String, progress: @Sendable (String) -> Void
  ) async throws -> RefreshBenchmarkFigures {
    progress("loading \(services) Services' nat rules into network namespace \(namespace)…\n")
    try await check(
      ["ip", "netns", "exec", namespace, binary + "-restore"], input: KubeProxyNatRuleset.render(services: services))
    var scope = TraceScope()
    scope.families = [.ipv4]
    let mangle = Renderer.iptablesRules(scope: scope, family: .ipv4, maxRate: nil, refresh: true)
    try await check(
      ["ip", "netns", "exec", namespace, binary + "-restore", "--noflush"],
      input: mangle.restoreFragment(from: IptablesRuleState()))

    let interval = settings.refreshInterval ?? 15
    var cases: [RefreshCaseFigures] = []
    for includeClusterIPs in [false, true] {
      let want = includeClusterIPs ? "all" : "external"
      let current = try RefreshScript.render(
        settings: settings, backend: backend, families: [.ipv4], includeClusterIPs: includeClusterIPs)
      let baseline = try baselineScript(settings: settings, backend: backend, includeClusterIPs: includeClusterIPs)
      let variants = ["baseline", "current"]
      var paths: [String: String] = [:]
      for (variant, text) in zip(variants, [baseline, current]) {
        let path = "\(directory)/\(variant)-\(want).sh"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        paths[variant] = path
      }
      let expected = expectedAddresses(services: services, includeClusterIPs: includeClusterIPs)
      var first: [String: RefreshRoundFigures] = [:]
      for variant in variants {
        progress("want=\(want): first round of the \(variant) script (chains emptied)…\n")
        for chain in [RefreshScript.preChain, RefreshScript.postChain] {
          try await check(["ip", "netns", "exec", namespace, binary, "-t", "mangle", "-F", chain])
        }
        first[variant] = try await round(
          namespace: namespace, script: paths[variant] ?? "", settings: settings, addresses: expected.count)
      }
      var steady: [String: [RefreshRoundFigures]] = [:]
      for index in 0..<rounds {
        progress("want=\(want): steady round \(index + 1) of \(rounds)…\n")
        for variant in index % 2 == 0 ? variants : variants.reversed() {
          steady[variant, default: []].append(
            try await round(
              namespace: namespace, script: paths[variant] ?? "", settings: settings, addresses: expected.count))
        }
      }
      try await checkChains(namespace: namespace, binary: binary, expected: expected)
      func figures(_ variant: String) -> RefreshVariantFigures {
        RefreshVariantFigures(
          variant: variant, first: first[variant] ?? RefreshRoundFigures(cpuSeconds: 0, wallSeconds: 0),
          steady: steady[variant] ?? [], intervalSeconds: interval)
      }
      cases.append(
        RefreshCaseFigures(
          want: want, addresses: expected.count, baseline: figures("baseline"), current: figures("current")))
    }
    return RefreshBenchmarkFigures(
      backend: backend.rawValue, services: services,
      loadBalancerIPs: KubeProxyNatRuleset.loadBalancers(services: services), rounds: rounds,
      intervalSeconds: interval, baseline: baselineDescription(backend),
      current: currentDescription(backend), cases: cases)
  }

  /// Runs one round of `script` in the namespace and times it; the round must exit 0 and write a
  /// status without an error that counts `addresses` addresses.
  private static func round(namespace: String, script: String, settings: RolloutSettings, addresses: Int)
    async throws -> RefreshRoundFigures
  {
    try? FileManager.default.removeItem(atPath: settings.refreshStatusPath)
    let clock = ContinuousClock()
    let cpuBefore = ResourceUsage.childrenCPUSeconds()
    let start = clock.now
    let result = try await Subprocess.run(
      .name("ip"), arguments: ["netns", "exec", namespace, "/bin/sh", script], input: .none, output: .discarded,
      error: .string(limit: 1 << 20))
    let wall = (clock.now - start).seconds
    let cpu = ResourceUsage.childrenCPUSeconds() - cpuBefore
    let name = URL(fileURLWithPath: script).lastPathComponent
    guard result.terminationStatus.isSuccess else {
      throw BenchmarkFailure(
        "The refresh round \(name) failed (\(result.terminationStatus)): \(result.standardError.suffix(500))")
    }
    guard let text = try? String(contentsOfFile: settings.refreshStatusPath, encoding: .utf8) else {
      throw BenchmarkFailure("The refresh round \(name) wrote no \(settings.refreshStatusPath): it skipped the round.")
    }
    let status = RefreshStatus(parsing: text)
    guard status.error.isEmpty, status.lastOK != nil, status.addresses == addresses else {
      throw BenchmarkFailure(
        "The refresh round \(name) did not succeed: error '\(status.error)', \(status.addresses.map(String.init) ?? "no") "
          + "addresses (expected \(addresses)).")
    }
    return RefreshRoundFigures(cpuSeconds: cpu, wallSeconds: wall)
  }

  /// Reads the refresh-owned chains back: `SVCT-PRE-X` and `SVCT-POST-X` must cover exactly
  /// `expected`, three protocols each.
  private static func checkChains(namespace: String, binary: String, expected: Set<String>) async throws {
    var found: [String: Set<String>] = [:]
    for (chain, option) in [(RefreshScript.preChain, "-d"), (RefreshScript.postChain, "--ctorigdst")] {
      let listed = try await check(["ip", "netns", "exec", namespace, binary, "-t", "mangle", "-S", chain])
      var addresses = Set<String>()
      var rules = 0
      for line in listed.split(separator: "\n") where line.hasPrefix("-A ") {
        rules += 1
        let words = IptablesSave.words(String(line))
        if let index = words.firstIndex(of: option), index + 1 < words.count {
          addresses.insert(String(words[index + 1].split(separator: "/").first ?? ""))
        }
      }
      guard rules == 3 * expected.count else {
        throw BenchmarkFailure("\(chain) has \(rules) rules after the rounds, expected \(3 * expected.count).")
      }
      found[chain] = addresses
    }
    guard found[RefreshScript.preChain] == expected, found[RefreshScript.postChain] == expected else {
      throw BenchmarkFailure("The refresh-owned chains do not hold exactly the expected addresses.")
    }
  }

  /// Runs `arguments` (the first found on PATH) with `input` on stdin; returns its stdout.
  @discardableResult
  private static func check(_ arguments: [String], input: String = "") async throws -> String {
    let result = try await Subprocess.run(
      .name(arguments[0]), arguments: Arguments(Array(arguments.dropFirst())), input: .string(input),
      output: .string(limit: 256 << 20), error: .string(limit: 1 << 20))
    guard result.terminationStatus.isSuccess else {
      throw BenchmarkFailure(
        "\(arguments.joined(separator: " ")) failed (\(result.terminationStatus)): \(result.standardError.suffix(500))")
    }
    return result.standardOutput
  }
}
