public import SVCTraceCore
import Synchronization

/// Keeps one open session per host across fleet runs, for the commands that run again and again
/// (`collect --every`, `trace --follow`): a round then costs one exchange per node, not a TCP
/// connect, a key exchange and a login as well.
///
/// Use it as the runner's connector. A host's session is reused while its operations succeed;
/// an operation that fails (or times out) closes and forgets it, and the next round connects
/// anew. ``closeAll()`` ends every session; call it when the command stops.
public final class SessionPool: SessionConnector {
  private let base: any SessionConnector
  private let sessions = Mutex<[HostID: any RemoteSession]>([:])

  public init(_ base: any SessionConnector) {
    self.base = base
  }

  /// How many sessions are open.
  public var openCount: Int { sessions.withLock { $0.count } }

  public func connect(_ host: FleetHost) async throws -> any RemoteSession {
    if let open = sessions.withLock({ $0[host.id] }) { return open }
    let session = try await base.connect(host)
    let displaced = sessions.withLock { open -> (any RemoteSession)? in
      defer { open[host.id] = session }
      return open[host.id]
    }
    await displaced?.close()
    return session
  }

  public func release(_ session: any RemoteSession, failed: Bool) async {
    guard failed else { return }
    // One session per host, used by one operation at a time: the failed one is the pooled one.
    _ = sessions.withLock { $0.removeValue(forKey: session.host) }
    await session.close()
  }

  /// Keeps what the sessions share (bastion connections) for the next round: ``closeAll()``
  /// releases it.
  public func finishRun() async {}

  /// Closes every session, then what they shared (idempotent).
  public func closeAll() async {
    let all = sessions.withLock { open -> [any RemoteSession] in
      defer { open = [:] }
      return Array(open.values)
    }
    await withTaskGroup(of: Void.self) { group in
      for session in all { group.addTask { await session.close() } }
    }
    await base.finishRun()
  }
}
