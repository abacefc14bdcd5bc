public import Logging
public import SVCTraceCore
import Synchronization

/// Opens a session to one host. The SSH-backed implementation is ``SSHConnector``; tests pass fakes.
public protocol SessionConnector: Sendable {
  /// Connects and authenticates; the returned session already applies privilege escalation.
  /// - Throws: ``RemoteError`` (kinds `.unreachable`, `.hostKey`, `.authentication`, `.become`…).
  func connect(_ host: FleetHost) async throws -> any RemoteSession

  /// Called once the operation on a session ended (`failed`: it threw or timed out). The
  /// default closes the session; a ``SessionPool`` keeps a healthy one for the next run.
  func release(_ session: any RemoteSession, failed: Bool) async

  /// Called once a fan-out has finished with every host: releases what its connections shared
  /// (the SSH connector closes its idle bastion connections). Does nothing by default.
  func finishRun() async
}

extension SessionConnector {
  public func release(_ session: any RemoteSession, failed: Bool) async {
    await session.close()
  }

  public func finishRun() async {}
}

/// Runs one operation on many hosts with bounded parallelism and per-host isolation.
///
/// Every host yields a ``HostResult``; one host's failure never stops the others. Hosts run in
/// batches of `serial` (all at once when `nil`); after each batch, if the share of failed hosts
/// so far exceeds `maxFailPercent`, the remaining hosts are reported `skipped`.
public struct FleetRunner: Sendable {
  /// How many hosts are worked on at once (`--forks`).
  public var forks: Int
  /// Limit for one host's whole operation, connection included; `nil` for none.
  public var hostTimeout: Duration?
  /// The per-host limit when none is given: 10 minutes (`--timeout`).
  public static let defaultHostTimeout: Duration = .seconds(600)
  /// Batch size for rolling changes (`--serial`).
  public var serial: Int?
  /// Stop after a batch once more than this share of hosts failed (`--max-fail-percent`).
  public var maxFailPercent: Double?
  public var progress: ProgressReporter?
  public var logger: Logger

  public init(
    forks: Int = 20, hostTimeout: Duration? = FleetRunner.defaultHostTimeout, serial: Int? = nil,
    maxFailPercent: Double? = nil,
    progress: ProgressReporter? = nil, logger: Logger = Logger(label: "svctrace.fleet")
  ) {
    self.forks = max(1, forks)
    self.hostTimeout = hostTimeout
    self.serial = serial
    self.maxFailPercent = maxFailPercent
    self.progress = progress
    self.logger = logger
  }

  /// Connects to every host and runs `operation` on it; returns one result per host, in input order.
  ///
  /// The session is always handed back to the connector, which closes it (a ``SessionPool``
  /// keeps it open for the next run when the operation succeeded). Cancelling the calling task
  /// (Ctrl-C) cancels every running host promptly; hosts not yet started are reported `skipped`.
  public func run<Payload: Sendable>(
    _ hosts: [FleetHost],
    connector: any SessionConnector,
    operation: @escaping @Sendable (any RemoteSession, FleetHost) async throws -> HostOutcome<Payload>
  ) async -> [HostResult<Payload>] {
    var results: [HostID: HostResult<Payload>] = [:]
    progress?.start(total: hosts.count)
    defer { progress?.finish() }
    let batchSize = serial.map { max(1, $0) } ?? max(1, hosts.count)
    var start = 0
    var stopReason: String?
    while start < hosts.count {
      let batch = Array(hosts[start..<min(start + batchSize, hosts.count)])
      start += batch.count
      if let reason = stopReason ?? (Task.isCancelled ? "cancelled" : nil) {
        for host in batch { results[host.id] = HostResult(host: host.id, status: .skipped, message: reason) }
        continue
      }
      for result in await runBatch(batch, connector: connector, operation: operation) {
        results[result.host] = result
      }
      if let limit = maxFailPercent {
        let done = results.values.filter { $0.status != .skipped }
        let failed = done.filter { $0.status == .failed || $0.status == .unreachable }.count
        if !done.isEmpty, Double(failed) * 100 / Double(done.count) > limit {
          stopReason = "not attempted: \(failed) of \(done.count) hosts failed, over --max-fail-percent \(limit)"
        }
      }
    }
    await connector.finishRun()
    return hosts.compactMap { results[$0.id] }
  }

  private func runBatch<Payload: Sendable>(
    _ hosts: [FleetHost],
    connector: any SessionConnector,
    operation: @escaping @Sendable (any RemoteSession, FleetHost) async throws -> HostOutcome<Payload>
  ) async -> [HostResult<Payload>] {
    let (timeout, progress, logger) = (hostTimeout, self.progress, self.logger)
    return await slidingWindow(
      hosts, limit: forks, notStarted: { HostResult(host: $0.id, status: .skipped, message: "cancelled") },
      { host in
        progress?.hostStarted(host.id)
        let result = await Self.runOne(
          host, connector: connector, timeout: timeout, logger: logger, operation: operation)
        progress?.hostFinished(host.id, status: result.status)
        return result
      })
  }

  private static func runOne<Payload: Sendable>(
    _ host: FleetHost,
    connector: any SessionConnector,
    timeout: Duration?,
    logger: Logger,
    operation: @escaping @Sendable (any RemoteSession, FleetHost) async throws -> HostOutcome<Payload>
  ) async -> HostResult<Payload> {
    let clock = ContinuousClock()
    let began = clock.now
    func seconds() -> Double { (clock.now - began).seconds }
    let session = SessionSlot()
    do {
      let outcome = try await withDeadline(timeout, host: host.id) {
        let connected = try await connector.connect(host)
        session.set(connected)
        return try await operation(connected, host)
      }
      await session.release(to: connector, failed: false)
      return HostResult(
        host: host.id, status: outcome.changed ? .changed : .ok, message: outcome.message,
        seconds: seconds(), payload: outcome.payload)
    } catch {
      await session.release(to: connector, failed: true)
      let (status, message) = classify(error, host: host.id)
      logger.debug("host failed", metadata: ["host": "\(host.id)", "error": "\(message)"])
      return HostResult(host: host.id, status: status, message: message, seconds: seconds())
    }
  }

  /// Maps an error to the recap's status and a one-line reason.
  static func classify(_ error: any Error, host: HostID) -> (HostStatus, String) {
    if let remote = error as? RemoteError {
      return (remote.isUnreachable ? .unreachable : .failed, remote.description)
    }
    if error is CancellationError { return (.failed, "cancelled") }
    return (.failed, "\(error)")
  }
}

/// Holds the session a host task opened, so it is released even when the task times out.
private final class SessionSlot: Sendable {
  private let session = Mutex<(any RemoteSession)?>(nil)

  func set(_ value: any RemoteSession) { session.withLock { $0 = value } }

  /// Hands the session back to its connector (which closes it, or keeps it when pooled).
  func release(to connector: any SessionConnector, failed: Bool) async {
    let value = session.withLock { current -> (any RemoteSession)? in
      defer { current = nil }
      return current
    }
    if let value { await connector.release(value, failed: failed) }
  }
}

/// Runs `body`, throwing ``RemoteError`` of kind `.timeout` if it takes longer than `timeout`.
func withDeadline<T: Sendable>(
  _ timeout: Duration?, host: HostID, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  guard let timeout else { return try await body() }
  return try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: timeout)
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else {
      throw RemoteError(
        host: host, operation: "finish within the host timeout", kind: .timeout,
        message: "no result after \(timeout)")
    }
    return value
  }
}
