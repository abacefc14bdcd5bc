import ArgumentParser
import Dispatch
import Fleet
import Foundation
import Rollout
import SVCTraceCommands
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// `svctrace-bench refresh`: CPU of the node-side `refresh.sh` rounds next to the round as it was
/// first (whole-table saves), on a generated kube-proxy ruleset in a scratch namespace.
struct BenchRefresh: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "refresh",
    abstract: "Time the node-side refresh.sh rounds on a kube-proxy ruleset of N Services next to the old script.",
    discussion: """
      Needs root: creates a scratch network namespace (svtbr-…, deleted at the end, also on an \
      error or Ctrl-C) and loads a kube-proxy-shaped nat table with --services Services (3 \
      endpoints each; every 20th also a LoadBalancer with a load-balancer IP and a NodePort) and \
      svctrace's mangle chains into it. Then, with refresh.sh rendered by this build into a \
      temporary state directory, for a node with a Service CIDR (want=external: only the \
      load-balancer IPs) and without one (want=all: every Service address): a first round of each \
      script into emptied chains, then --rounds steady rounds (nothing to change) of each, \
      alternating which goes first. Each round must exit 0 and write refresh.status without an \
      error and with the expected address count (else exit status 1), and the chains must hold \
      exactly the expected addresses afterwards. Prints the CPU (user+sys of the round's \
      processes, the ip netns exec that enters the namespace included) per round, median and \
      min, the median wall time, the share of one core at the 15-s refresh interval and the \
      ratio baseline/current.

      Baseline, in the same run: the round as it was first, which saved whole tables \
      (iptables-nft-save or iptables-legacy-save, -t mangle and -t nat) every round; the current \
      round lists one chain each (-t nat -S KUBE-SERVICES, -t mangle -S SVCT-PRE-X). Goal: with \
      5000 Services, a steady round under 1 % of one core at the 15-s interval.

      Examples:
        sudo svctrace-bench refresh
        sudo svctrace-bench refresh --services 20000 --rounds 9 --json
        sudo svctrace-bench refresh --backend iptables-legacy
      """)

  /// The iptables front-ends the benchmark can drive.
  enum Backend: String, ExpressibleByArgument, CaseIterable {
    case iptablesNFT = "iptables-nft"
    case iptablesLegacy = "iptables-legacy"

    var dataplane: Dataplane.Backend { self == .iptablesNFT ? .iptablesNFT : .iptablesLegacy }
  }

  @Option(help: "Services in the generated kube-proxy ruleset (every 20th also a LoadBalancer).")
  var services = 5000

  @Option(help: "Steady rounds of each script per configuration (the median and min are printed).")
  var rounds = 5

  @Option(help: "The iptables front-end the rules are loaded and refreshed with.")
  var backend: Backend = .iptablesNFT

  @Flag(help: "Print the figures as JSON.")
  var json = false

  func validate() throws {
    guard services >= 1, services <= KubeProxyNatRuleset.maxServices else {
      throw ValidationError("--services must be between 1 and \(KubeProxyNatRuleset.maxServices).")
    }
    guard rounds >= 1, rounds <= 100 else { throw ValidationError("--rounds must be between 1 and 100.") }
  }

  func run() async throws {
    guard getuid() == 0 else {
      throw BenchmarkFailure("bench refresh needs root: it creates a network namespace and loads iptables rules.")
    }
    let (services, rounds, backend) = (services, rounds, backend.dataplane)
    let figures = try await Self.cancellingOnInterrupt {
      try await RefreshBenchmark.run(
        services: services, rounds: rounds, backend: backend, progress: { Terminal.writeError($0) })
    }
    if json {
      print(try Output.json(figures))
    } else {
      print(figures.report())
    }
  }

  /// Runs `body` in a task that SIGINT or SIGTERM cancels (the benchmark then removes its
  /// namespace and fails with exit status 1); a second signal exits at once.
  private static func cancellingOnInterrupt<T: Sendable>(_ body: @escaping @Sendable () async throws -> T)
    async throws -> T
  {
    let task = Task { try await body() }
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let queue = DispatchQueue(label: "svctrace-bench.signals")
    let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
    let seen = InterruptCount()
    for source in sources {
      source.setEventHandler {
        if seen.increment() > 1 {
          Terminal.writeError("\nInterrupted again: exiting now (the namespace may be left; ip netns list).\n")
          Glibc.exit(130)
        }
        Terminal.writeError("\nInterrupted: removing the scratch namespace (Ctrl-C again to quit at once)…\n")
        task.cancel()
      }
      source.resume()
    }
    defer {
      for source in sources { source.cancel() }
      signal(SIGINT, SIG_DFL)
      signal(SIGTERM, SIG_DFL)
    }
    do {
      return try await task.value
    } catch  where seen.count > 0 {
      throw BenchmarkFailure("Interrupted; the scratch network namespace and state directory were removed.")
    }
  }
}

/// How many interrupts arrived (the signal queue counts them).
private final class InterruptCount: Sendable {
  private let signals = Atomic<Int>(0)

  /// Records an interrupt; returns how many arrived.
  func increment() -> Int { signals.add(1, ordering: .sequentiallyConsistent).newValue }

  /// How many interrupts arrived so far.
  var count: Int { signals.load(ordering: .sequentiallyConsistent) }
}
