public import SVCTraceCore

/// How a connection's pre-DNAT and post-DNAT lines were joined.
public enum MatchMethod: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
  /// Same (proto, src, sport) and the same non-zero IP ID on both lines.
  case exactID = 1
  /// Same (proto, src, sport) within the window; the IP ID was absent (IPv6), zero, or did not
  /// decide (the earliest pending line with the best length match was taken).
  case sourcePortWindow = 2
  /// The post line carried the IP ID of a retransmitted pre line that had been folded into an
  /// earlier, still unmatched pre line of the same connection.
  case retransmitDedup = 3
  /// A retransmitted first packet was DNATed again, to another endpoint: the first attempt's
  /// conntrack entry never took (the packet was dropped before confirmation, e.g. a conntrack
  /// insert clash), so the retry made a new one. The later DNAT is the one that carried the
  /// connection; the record names it.
  case reDNAT = 4

  /// The name shown in output and stored in JSON: `exact-id`, `sport-window`, `retransmit-dedup`,
  /// `re-dnat`.
  public var description: String {
    switch self {
    case .exactID: "exact-id"
    case .sourcePortWindow: "sport-window"
    case .retransmitDedup: "retransmit-dedup"
    case .reDNAT: "re-dnat"
    }
  }

  /// Parses ``description`` back.
  public init?(name: String) {
    guard let match = Self.allCases.first(where: { $0.description == name }) else { return nil }
    self = match
  }
}

/// One packet line fed to the correlator, with the identifier its caller (the store) gave it.
public struct Observation: Sendable, Equatable {
  /// A caller-assigned identifier (the store's line row id), echoed in the output.
  public var id: Int64
  public var line: PacketLine
  /// The node clock's offset (remote − local, µs) measured by the collect that brought the line.
  public var clockOffsetMicros: Int64

  public init(id: Int64, line: PacketLine, clockOffsetMicros: Int64 = 0) {
    self.id = id
    self.line = line
    self.clockOffsetMicros = clockOffsetMicros
  }
}

/// A correlated connection: the client reached a Service address and was DNATed to a pod.
public struct Connection: Sendable, Equatable {
  /// Time of the pre-DNAT line on the node's clock, corrected by the measured offset (µs, UTC).
  public var timeMicros: Int64
  /// The node that performed the DNAT (where both lines were logged).
  public var node: HostID
  /// IP protocol number (6 TCP, 17 UDP, 132 SCTP…).
  public var proto: UInt8
  public var client: IPAddress
  public var clientPort: UInt16
  public var service: IPAddress
  public var servicePort: UInt16
  public var pod: IPAddress
  public var podPort: UInt16
  public var method: MatchMethod
  /// Identifiers of the pre-DNAT and post-DNAT observations.
  public var preID: Int64
  public var postID: Int64

  public init(
    timeMicros: Int64, node: HostID, proto: UInt8, client: IPAddress, clientPort: UInt16, service: IPAddress,
    servicePort: UInt16, pod: IPAddress, podPort: UInt16, method: MatchMethod, preID: Int64, postID: Int64
  ) {
    self.timeMicros = timeMicros
    self.node = node
    self.proto = proto
    self.client = client
    self.clientPort = clientPort
    self.service = service
    self.servicePort = servicePort
    self.pod = pod
    self.podPort = podPort
    self.method = method
    self.preID = preID
    self.postID = postID
  }
}

/// A connection emitted earlier whose retransmitted first packet was DNATed again to another
/// endpoint (see ``MatchMethod/reDNAT``): the stored record must now name that endpoint.
public struct Redispatch: Sendable, Equatable {
  /// The pre line of the connection to change (its ``Connection/preID``).
  public var preID: Int64
  public var client: IPAddress
  public var clientPort: UInt16
  public var pod: IPAddress
  public var podPort: UInt16
  /// The post line of the later DNAT.
  public var postID: Int64

  public init(preID: Int64, client: IPAddress, clientPort: UInt16, pod: IPAddress, podPort: UInt16, postID: Int64) {
    self.preID = preID
    self.client = client
    self.clientPort = clientPort
    self.pod = pod
    self.podPort = podPort
    self.postID = postID
  }
}

/// What happened to one observation during correlation; the store records it per line.
public enum ObservationOutcome: UInt8, Sendable, Codable {
  /// A pre line waiting for its post line.
  case pending = 0
  /// Part of an emitted connection.
  case matched = 1
  /// A retransmission (SYN retry) folded into another line of the same connection.
  case duplicate = 2
  /// A post line for which no pre line was found.
  case orphan = 3
  /// A pre line whose post line never came within the expiry bound.
  case expired = 4
}

/// Tunables of ``Correlator``.
public struct CorrelationSettings: Sendable, Equatable, Codable {
  /// Maximum distance between the pre and post line of one connection, and the span in which a
  /// repeated line on the same key counts as a retransmission. Default 2 s.
  public var windowMicros: Int64
  /// A pending pre line older than this (behind the newest line seen on the node) expires.
  /// Default 120 s: long enough for a post line that lands in the next collect.
  public var pendingExpiryMicros: Int64
  /// For TCP and SCTP: the longest gap between two lines of one connection that still makes
  /// the later one a retransmission (the window slides with each). SYN retries come 1, 2, 4,
  /// 8, 16, 32 s apart, and the client cannot reuse the port that fast (TIME_WAIT is 60 s).
  /// Default 35 s. UDP and others use ``windowMicros``: conntrack logs no new line for a live
  /// UDP tuple, so a repeat after the window is a new flow.
  public var retransmitWindowMicros: Int64

  public init(
    windowMicros: Int64 = 2_000_000, pendingExpiryMicros: Int64 = 120_000_000,
    retransmitWindowMicros: Int64 = 35_000_000
  ) {
    self.windowMicros = windowMicros
    self.pendingExpiryMicros = pendingExpiryMicros
    self.retransmitWindowMicros = retransmitWindowMicros
  }
}

/// Counters of one correlation pass.
public struct CorrelationStats: Sendable, Equatable, Codable {
  public var connections = 0
  public var duplicates = 0
  public var orphans = 0
  public var expired = 0
  public var pending = 0
  /// Connections moved to the endpoint of a retransmission's new DNAT (``MatchMethod/reDNAT``).
  public var redispatched = 0

  public init() {}
}

/// The join key of §3.4: (protocol, source address, source port). The node is implicit: one
/// correlator instance serves one node.
struct CorrelationKey: Hashable {
  var proto: UInt8
  var source: IPAddress
  var sourcePort: UInt16

  /// One 64-bit value fed to the hasher instead of four (the correlator hashes keys several
  /// times per line; equality still compares every field).
  func hash(into hasher: inout Hasher) {
    hasher.combine(
      (source.high &* 0x9E37_79B9_7F4A_7C15) ^ source.low ^ (UInt64(sourcePort) << 8 | UInt64(proto)) &* 0xC2B2_AE3D_27D4_EB4F)
  }
}

/// Joins pre-DNAT and post-DNAT lines of one node into connections, incrementally.
///
/// Lines are fed in file order. A post line joins the pending pre line with the same
/// (proto, src, sport) within ``CorrelationSettings/windowMicros``, preferring equal non-zero IP
/// ID, then equal length, then the earliest. Timestamps may be out of order by up to the window.
/// A repeated pre line for the same key and destination (a retransmitted SYN, same or new IP ID)
/// within ``CorrelationSettings/retransmitWindowMicros`` of the connection's previous line is
/// folded into the first; so is a post line arriving after its connection was emitted. Unmatched
/// pre lines stay pending across calls (``state`` is persisted by the caller) until they expire.
public struct Correlator: Sendable {
  /// The node whose lines this correlator joins.
  public let node: HostID
  public var settings: CorrelationSettings
  /// The carry-over between batches; persist it with the batch that produced it.
  public private(set) var state: CorrelatorState

  public init(
    node: HostID, settings: CorrelationSettings = CorrelationSettings(), state: CorrelatorState = CorrelatorState()
  ) {
    self.node = node
    self.settings = settings
    self.state = state
  }

  /// The result of ``correlate(_:)``.
  public struct Output: Sendable {
    public var connections: [Connection] = []
    /// Connections of earlier passes whose endpoint changed (a connection of this pass is
    /// changed in ``connections`` instead).
    public var redispatches: [Redispatch] = []
    /// Outcome of every observation whose fate was decided in this pass (including pending
    /// lines of earlier passes that matched or expired now).
    public var outcomes: [(id: Int64, outcome: ObservationOutcome)] = []
    public var stats = CorrelationStats()
  }

  /// Feeds observations in log order and returns the connections they complete.
  public mutating func correlate(_ observations: some Sequence<Observation>) -> Output {
    var output = Output()
    for observation in observations {
      let line = observation.line
      state.watermarkMicros = max(state.watermarkMicros, line.timeMicros)
      let key = CorrelationKey(proto: line.proto, source: line.source, sourcePort: line.sourcePort)
      switch line.stage {
      case .pre: handlePre(observation, key: key, into: &output)
      case .post: handlePost(observation, key: key, into: &output)
      }
    }
    expire(into: &output)
    output.stats.pending = state.pending.values.reduce(0) { $0 + $1.count }
    return output
  }

  /// `true` when two times are at most the window apart (no overflow on extreme values).
  private func within(_ a: Int64, _ b: Int64, window: Int64? = nil) -> Bool {
    let (difference, overflow) = a.subtractingReportingOverflow(b)
    return !overflow && difference.magnitude <= (window ?? settings.windowMicros).magnitude
  }

  /// The retransmission window for a protocol (see ``CorrelationSettings/retransmitWindowMicros``).
  private func retransmitWindow(_ proto: UInt8) -> Int64 {
    proto == 6 || proto == 132 ? max(settings.retransmitWindowMicros, settings.windowMicros) : settings.windowMicros
  }

  private mutating func handlePre(_ observation: Observation, key: CorrelationKey, into output: inout Output) {
    let line = observation.line
    // A retransmission of a pre line still waiting for its post line.
    if var list = state.pending[key],
      let index = list.firstIndex(where: {
        $0.destination == line.destination && $0.destinationPort == line.destinationPort
          && within($0.lastSeenMicros, line.timeMicros, window: retransmitWindow(key.proto))
          && Self.couldBeRetransmission(line.ipID, after: $0.retransmitIDs.last ?? $0.ipID)
      })
    {
      list[index].lastSeenMicros = max(list[index].lastSeenMicros, line.timeMicros)
      if let id = line.ipID, id != 0, id != list[index].ipID, !list[index].retransmitIDs.contains(id) {
        list[index].retransmitIDs.append(id)
      }
      state.pending[key] = list
      output.outcomes.append((observation.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    // A retransmission of a pre line whose connection was already emitted.
    // A new connection that reuses the source port (after TIME_WAIT) starts a fresh random IP ID;
    // a retransmitted SYN carries the same ID or the next few of the socket's counter.
    if let recent = state.recent[key],
      recent.service == line.destination && recent.servicePort == line.destinationPort
        && within(recent.timeMicros, line.timeMicros, window: retransmitWindow(key.proto))
        && Self.couldBeRetransmission(line.ipID, after: recent.lastIPID)
    {
      state.recent[key]?.expectedPosts += 1
      state.recent[key]?.timeMicros = max(recent.timeMicros, line.timeMicros)
      if let id = line.ipID, id != 0 { state.recent[key]?.lastIPID = id }
      output.outcomes.append((observation.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    state.pending[key, default: []].append(
      PendingPre(
        id: observation.id, timeMicros: line.timeMicros, lastSeenMicros: line.timeMicros,
        clockOffsetMicros: observation.clockOffsetMicros, destination: line.destination,
        destinationPort: line.destinationPort, ipID: line.ipID,
        length: line.length, retransmitIDs: []))
    output.outcomes.append((observation.id, .pending))
  }

  private mutating func handlePost(_ observation: Observation, key: CorrelationKey, into output: inout Output) {
    let line = observation.line
    let list = state.pending[key] ?? []
    let candidates = list.indices.filter {
      within(list[$0].timeMicros, line.timeMicros) || within(list[$0].lastSeenMicros, line.timeMicros)
    }
    if !candidates.isEmpty {
      let (chosen, method) = choose(among: candidates, in: list, for: line)
      let pre = list[chosen]
      state.pending[key]?.remove(at: chosen)
      if state.pending[key]?.isEmpty == true { state.pending[key] = nil }
      let connection = Connection(
        timeMicros: pre.timeMicros.subtractingSaturating(pre.clockOffsetMicros), node: node, proto: key.proto,
        client: key.source,
        clientPort: key.sourcePort, service: pre.destination, servicePort: pre.destinationPort,
        pod: line.destination, podPort: line.destinationPort, method: method, preID: pre.id, postID: observation.id)
      output.connections.append(connection)
      output.outcomes.append((pre.id, .matched))
      output.outcomes.append((observation.id, .matched))
      output.stats.connections += 1
      state.recent[key] = RecentMatch(
        timeMicros: max(pre.lastSeenMicros, line.timeMicros), service: pre.destination,
        servicePort: pre.destinationPort,
        pod: line.destination, podPort: line.destinationPort,
        expectedPosts: pre.retransmitIDs.count, lastIPID: pre.retransmitIDs.last ?? pre.ipID, preID: pre.id, postID: observation.id)
      return
    }
    if let recent = state.recent[key], within(recent.timeMicros, line.timeMicros, window: retransmitWindow(key.proto)),
      recent.expectedPosts > 0 || (recent.pod == line.destination && recent.podPort == line.destinationPort)
    {
      if recent.expectedPosts > 0 { state.recent[key]?.expectedPosts -= 1 }
      state.recent[key]?.timeMicros = max(recent.timeMicros, line.timeMicros)
      if recent.pod != line.destination || recent.podPort != line.destinationPort {
        // The retry's own DNAT: it, not the first attempt's, carries the connection.
        redispatch(recent, key: key, to: observation, into: &output)
        return
      }
      output.outcomes.append((observation.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    output.outcomes.append((observation.id, .orphan))
    output.stats.orphans += 1
  }

  /// Points the connection of `recent` at the endpoint of `post`, a retransmission's post line.
  private mutating func redispatch(
    _ recent: RecentMatch, key: CorrelationKey, to post: Observation, into output: inout Output
  ) {
    let line = post.line
    state.recent[key]?.pod = line.destination
    state.recent[key]?.podPort = line.destinationPort
    guard let preID = recent.preID else {
      // State from before pre ids were kept: the record cannot be found again.
      output.outcomes.append((post.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    output.outcomes.append((post.id, .matched))
    output.stats.redispatched += 1
    if let index = output.connections.lastIndex(where: { $0.preID == preID }) {
      output.connections[index].pod = line.destination
      output.connections[index].podPort = line.destinationPort
      output.connections[index].postID = post.id
      output.connections[index].method = .reDNAT
      // The first attempt's post line no longer explains the record.
      if let first = recent.postID { output.outcomes.append((first, .duplicate)) }
    } else {
      output.redispatches.append(
        Redispatch(
          preID: preID, client: key.source, clientPort: key.sourcePort, pod: line.destination,
          podPort: line.destinationPort, postID: post.id))
      if let first = recent.postID { output.outcomes.append((first, .duplicate)) }
    }
    state.recent[key]?.postID = post.id
  }

  /// `true` unless the IP IDs prove a different socket: a retransmission repeats the ID or takes
  /// one of the next few values of the socket's counter; without IDs (IPv6, 0) assume it is one.
  static func couldBeRetransmission(_ id: UInt32?, after previous: UInt32?) -> Bool {
    guard let id, let previous, id != 0, previous != 0 else { return true }
    return (id &- previous) & 0xFFFF <= 16
  }

  /// Picks the pending pre line a post line belongs to, and says how.
  private func choose(among candidates: [Int], in list: [PendingPre], for line: PacketLine) -> (Int, MatchMethod) {
    if let id = line.ipID, id != 0 {
      let byID = candidates.filter { list[$0].ipID == id }
      if let best = byID.first(where: { list[$0].length == line.length }) ?? byID.first {
        return (best, .exactID)
      }
      if let best = candidates.first(where: { list[$0].retransmitIDs.contains(id) }) {
        return (best, .retransmitDedup)
      }
    }
    let best = candidates.first(where: { list[$0].length == line.length }) ?? candidates[0]
    return (best, .sourcePortWindow)
  }

  /// Drops pending lines and recent matches that fell behind the watermark.
  private mutating func expire(into output: inout Output) {
    guard state.watermarkMicros != .min else { return }
    let pendingLimit = state.watermarkMicros.subtractingSaturating(settings.pendingExpiryMicros)
    for (key, list) in state.pending {
      let kept = list.filter { $0.lastSeenMicros >= pendingLimit }
      if kept.count == list.count { continue }
      for old in list where old.lastSeenMicros < pendingLimit {
        output.outcomes.append((old.id, .expired))
        output.stats.expired += 1
      }
      state.pending[key] = kept.isEmpty ? nil : kept
    }
    let recentLimit = state.watermarkMicros.subtractingSaturating(
      max(settings.retransmitWindowMicros, settings.windowMicros))
    // In place: the table keeps its capacity (a rebuilt one would grow, rehashing, all over
    // again with the next batch's connections).
    let stale = state.recent.compactMap { $0.value.timeMicros < recentLimit ? $0.key : nil }
    for key in stale { state.recent.removeValue(forKey: key) }
  }
}

/// A pre line waiting for its post line.
struct PendingPre: Sendable, Equatable {
  var id: Int64
  /// Time of the first line (the connection's time).
  var timeMicros: Int64
  /// Time of the newest retransmission folded into it (SYN retries come after 1 s, 3 s, 7 s…,
  /// so the window slides with them).
  var lastSeenMicros: Int64
  var clockOffsetMicros: Int64
  var destination: IPAddress
  var destinationPort: UInt16
  var ipID: UInt32?
  var length: UInt16
  /// IP IDs of retransmissions folded into this line.
  var retransmitIDs: [UInt32]
}

/// The last connection emitted for a key, kept one window long to absorb retransmissions.
struct RecentMatch: Sendable, Equatable {
  /// The newest line time of the connection (sliding with each retransmission).
  var timeMicros: Int64
  var service: IPAddress
  var servicePort: UInt16
  var pod: IPAddress
  var podPort: UInt16
  /// Post lines still expected for retransmitted pre lines folded before the match.
  var expectedPosts: Int
  /// The newest IP ID seen on the connection, to tell retransmissions from a reused port.
  var lastIPID: UInt32? = nil
  /// The connection's pre line and current post line (nil in state stored before version 3).
  var preID: Int64? = nil
  var postID: Int64? = nil
}

/// The state a ``Correlator`` carries from one batch to the next (pending pre lines, recent
/// matches, the newest time seen). Persist it with ``encoded()`` and restore with
/// ``init(encoded:)``.
public struct CorrelatorState: Sendable, Equatable {
  var pending: [CorrelationKey: [PendingPre]] = [:]
  var recent: [CorrelationKey: RecentMatch] = [:]
  /// The newest line time seen on this node (node clock, µs).
  public internal(set) var watermarkMicros: Int64 = .min

  public init() {}

  /// Identifiers of the pre lines still pending.
  public var pendingIDs: [Int64] { pending.values.flatMap { $0.map(\.id) }.sorted() }
}

extension Int64 {
  /// `self − other`, clamped to the representable range.
  func subtractingSaturating(_ other: Int64) -> Int64 {
    let (result, overflow) = subtractingReportingOverflow(other)
    guard overflow else { return result }
    return other > 0 ? .min : .max
  }
}
