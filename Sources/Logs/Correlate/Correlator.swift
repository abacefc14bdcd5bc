public import SVCTraceCore

/// Joins pre-DNAT and post-DNAT lines of one node into connections, incrementally.
///
/// Lines are fed in file order. A post line joins the pending pre line with the same
/// (proto, src, sport) within ``CorrelationSettings/windowMicros``, preferring equal non-zero IP
/// ID, then equal length, then the earliest. Timestamps may be out of order by up to the window.
/// A repeated pre line for the same key and destination (a retransmitted SYN, same or new IP ID)
/// within ``CorrelationSettings/retransmitWindowMicros`` of the connection's previous line is
/// folded into the first; so is a post line arriving after its connection was emitted. Unmatched
/// pre lines stay pending across calls (``state`` is persisted by the caller) until they expire,
/// at most ``CorrelationSettings/maxPendingPerKey`` per key (the oldest beyond are dropped). An
/// expired pre line becomes a connection without a pod (``MatchMethod/podUnknown``): the client
/// reached the Service, its post line never came. A pre line is either joined or expired, never
/// both, so one connection never yields two records; a dropped line yields none.
public struct Correlator: Sendable {
  /// The node whose lines this correlator joins.
  public let node: HostID
  public var settings: CorrelationSettings
  /// The carry-over between batches; persist it with the batch that produced it.
  public private(set) var state: CorrelatorState
  /// Pending pre lines looked at so far (matching, folding retransmissions, expiring): the
  /// work the correlator did, for the tests that it stays linear in the lines fed.
  package private(set) var pendingVisits = 0

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
    pass(expected: observations.underestimatedCount) { correlator, output in
      // Arrays are walked without the generic iterator.
      let done: Void? = observations.withContiguousStorageIfAvailable { buffer in
        for observation in buffer { correlator.feed(observation, into: &output) }
      }
      if done == nil {
        for observation in observations { correlator.feed(observation, into: &output) }
      }
    }
  }

  /// Feeds one batch's lines in log order, numbered `firstID`, `firstID + 1`, …, all brought by
  /// a collect that measured `clockOffsetMicros`: ``correlate(_:)`` without building an array
  /// of observations first (the store's path).
  public mutating func correlate(lines: [PacketLine], firstID: Int64, clockOffsetMicros: Int64) -> Output {
    pass(expected: lines.count) { correlator, output in
      lines.withUnsafeBufferPointer { buffer in
        for index in buffer.indices {
          correlator.feed(
            Observation(id: firstID &+ Int64(index), line: buffer[index], clockOffsetMicros: clockOffsetMicros),
            into: &output)
        }
      }
    }
  }

  /// One correlation pass: `body` feeds the observations, then pending lines expire.
  private mutating func pass(expected: Int, _ body: (inout Correlator, inout Output) -> Void) -> Output {
    var output = Output()
    output.outcomes.reserveCapacity(expected + expected / 8)
    output.connections.reserveCapacity(expected / 2)
    state.pass &+= 1
    body(&self, &output)
    expire(into: &output)
    output.stats.pending = state.pendingCount
    return output
  }

  /// Handles one observation.
  @inline(__always)
  private mutating func feed(_ observation: Observation, into output: inout Output) {
    if observation.line.timeMicros > state.watermarkMicros { state.watermarkMicros = observation.line.timeMicros }
    switch observation.line.stage {
    case .pre: handlePre(observation, into: &output)
    case .post: handlePost(observation, into: &output)
    }
  }

  /// `true` when two times are at most the window apart (no overflow on extreme values).
  @inline(__always)
  private func within(_ a: Int64, _ b: Int64, window: Int64) -> Bool {
    let (difference, overflow) = a.subtractingReportingOverflow(b)
    return !overflow && difference.magnitude <= window.magnitude
  }

  /// `true` when two times are at most ``CorrelationSettings/windowMicros`` apart.
  @inline(__always)
  private func within(_ a: Int64, _ b: Int64) -> Bool { within(a, b, window: settings.windowMicros) }

  /// The retransmission window for a protocol (see ``CorrelationSettings/retransmitWindowMicros``).
  private func retransmitWindow(_ proto: UInt8) -> Int64 {
    proto == 6 || proto == 132 ? max(settings.retransmitWindowMicros, settings.windowMicros) : settings.windowMicros
  }

  private mutating func handlePre(_ observation: Observation, into output: inout Output) {
    let line = observation.line
    let key = CorrelationKey(proto: line.proto, source: line.source, sourcePort: line.sourcePort)
    var slot = state.find(key)
    var pendingOfKey = 0
    if slot >= 0 {
      let window = retransmitWindow(key.proto)
      // A retransmission of a pre line still waiting for its post line.
      var index = state.slots[slot].pendingHead
      while index >= 0 {
        pendingVisits &+= 1
        pendingOfKey += 1
        let pre = state.pool[Int(index)]
        if pre.destination == line.destination && pre.destinationPort == line.destinationPort
          && within(pre.lastSeenMicros, line.timeMicros, window: window)
          && Self.couldBeRetransmission(line.ipID, after: state.lastRetransmitID(of: pre) ?? pre.ipID)
        {
          state.pool[Int(index)].lastSeenMicros = max(pre.lastSeenMicros, line.timeMicros)
          if let id = line.ipID, id != 0, id != pre.ipID, !state.retransmitIDs(of: pre).contains(id) {
            state.appendRetransmitID(id, to: index)
          }
          output.outcomes.append((observation.id, .duplicate))
          output.stats.duplicates += 1
          return
        }
        index = pre.next
      }
      // A retransmission of a pre line whose connection was already emitted.
      // A new connection that reuses the source port (after TIME_WAIT) starts a fresh random IP ID;
      // a retransmitted SYN carries the same ID or the next few of the socket's counter.
      let r = Int(state.slots[slot].recent)
      if r >= 0 {
        let recent = state.recentMatch(at: r)
        if recent.service == line.destination && recent.servicePort == line.destinationPort
          && within(recent.timeMicros, line.timeMicros, window: window)
          && Self.couldBeRetransmission(line.ipID, after: recent.lastIPID)
        {
          state.pool[r].expectedPosts += 1
          state.pool[r].timeMicros = max(recent.timeMicros, line.timeMicros)
          state.slots[slot].recentTime = state.pool[r].timeMicros
          if let id = line.ipID, id != 0 { state.pool[r].ipID = id }
          output.outcomes.append((observation.id, .duplicate))
          output.stats.duplicates += 1
          return
        }
      }
      dropOldest(in: slot, count: pendingOfKey - max(1, settings.maxPendingPerKey) + 1, into: &output)
    } else {
      slot = state.insert(key)
    }
    state.appendPending(
      PendingNode(
        id: observation.id, timeMicros: line.timeMicros, lastSeenMicros: line.timeMicros,
        clockOffsetMicros: observation.clockOffsetMicros, destination: line.destination,
        destinationPort: line.destinationPort, length: line.length, ipID: line.ipID, retransmits: -1, next: -1),
      to: slot)
    output.outcomes.append((observation.id, .pending))
  }

  /// Drops the `count` oldest pending lines of `slot` (none when `count` ≤ 0) to make room for
  /// a new one within ``CorrelationSettings/maxPendingPerKey``.
  private mutating func dropOldest(in slot: Int, count: Int, into output: inout Output) {
    guard count > 0 else { return }
    for _ in 0..<count {
      let head = state.slots[slot].pendingHead
      guard head >= 0 else { return }
      output.outcomes.append((state.pool[Int(head)].id, .expired))
      output.stats.dropped += 1
      state.unlinkPending(head, previous: -1, in: slot)
    }
  }

  private mutating func handlePost(_ observation: Observation, into output: inout Output) {
    let line = observation.line
    let key = CorrelationKey(proto: line.proto, source: line.source, sourcePort: line.sourcePort)
    let slot = state.find(key)
    guard slot >= 0 else {
      output.outcomes.append((observation.id, .orphan))
      output.stats.orphans += 1
      return
    }
    if let (chosen, previous, method) = choose(in: slot, for: line) {
      let pre = state.pool[Int(chosen)]
      let retransmits = state.retransmitIDs(of: pre)
      state.detachPending(chosen, previous: previous, in: slot)
      let connection = Connection(
        timeMicros: pre.timeMicros.subtractingSaturating(pre.clockOffsetMicros), node: node, proto: key.proto,
        client: key.source,
        clientPort: key.sourcePort, service: pre.destination, servicePort: pre.destinationPort,
        pod: line.destination, podPort: line.destinationPort, method: method, preID: pre.id, postID: observation.id)
      let emitted = Int32(truncatingIfNeeded: output.connections.count)
      output.connections.append(connection)
      output.outcomes.append((pre.id, .matched))
      output.outcomes.append((observation.id, .matched))
      output.stats.connections += 1
      // The pre line's record becomes the key's recent match (service, pre id and clock offset
      // stay as they are).
      state.promoteToRecent(
        chosen, in: slot, timeMicros: max(pre.lastSeenMicros, line.timeMicros), lastIPID: retransmits.last ?? pre.ipID,
        expectedPosts: retransmits.count, pod: line.destination, podPort: line.destinationPort, postID: observation.id,
        emittedIndex: emitted)
      return
    }
    let r = Int(state.slots[slot].recent)
    if r >= 0 {
      let recent = state.recentMatch(at: r)
      if within(recent.timeMicros, line.timeMicros, window: retransmitWindow(key.proto)),
        recent.expectedPosts > 0 || (recent.pod == line.destination && recent.podPort == line.destinationPort)
      {
        if recent.expectedPosts > 0 { state.pool[r].expectedPosts -= 1 }
        state.pool[r].timeMicros = max(recent.timeMicros, line.timeMicros)
        state.slots[slot].recentTime = state.pool[r].timeMicros
        if recent.pod != line.destination || recent.podPort != line.destinationPort {
          // The retry's own DNAT: it, not the first attempt's, carries the connection.
          redispatch(recent, index: r, key: key, to: observation, into: &output)
          return
        }
        output.outcomes.append((observation.id, .duplicate))
        output.stats.duplicates += 1
        return
      }
    }
    output.outcomes.append((observation.id, .orphan))
    output.stats.orphans += 1
  }

  /// Points the connection of `recent` at the endpoint of `post`, a retransmission's post line.
  private mutating func redispatch(
    _ recent: RecentMatch, index r: Int, key: CorrelationKey, to post: Observation, into output: inout Output
  ) {
    let line = post.line
    state.pool[r].pod = line.destination
    state.pool[r].podPort = line.destinationPort
    guard let preID = recent.preID else {
      // State from before pre ids were kept: the record cannot be found again.
      output.outcomes.append((post.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    output.outcomes.append((post.id, .matched))
    output.stats.redispatched += 1
    // The connection is in this pass's output when this pass emitted it (ids are unique, so no
    // other connection of the output has its pre line).
    let emitted = Int(state.pool[r].emittedIndex)
    if state.pool[r].emittedPass == state.pass, output.connections.indices.contains(emitted),
      output.connections[emitted].preID == preID
    {
      output.connections[emitted].pod = line.destination
      output.connections[emitted].podPort = line.destinationPort
      output.connections[emitted].postID = post.id
      output.connections[emitted].method = .reDNAT
      // The first attempt's post line no longer explains the record.
      if let first = recent.postID { output.outcomes.append((first, .duplicate)) }
    } else {
      output.redispatches.append(
        Redispatch(
          preID: preID, client: key.source, clientPort: key.sourcePort, pod: line.destination,
          podPort: line.destinationPort, postID: post.id))
      if let first = recent.postID { output.outcomes.append((first, .duplicate)) }
    }
    state.pool[r].postID = post.id
    state.pool[r].hasPostID = true
  }

  /// `true` unless the IP IDs prove a different socket: a retransmission repeats the ID or takes
  /// one of the next few values of the socket's counter; without IDs (IPv6, 0) assume it is one.
  static func couldBeRetransmission(_ id: UInt32?, after previous: UInt32?) -> Bool {
    guard let id, let previous, id != 0, previous != 0 else { return true }
    return (id &- previous) & 0xFFFF <= 16
  }

  /// Picks the pending pre line of `slot` a post line belongs to, and says how: among the lines
  /// within the window of the post line (by first or last-seen time), the first with the post
  /// line's non-zero IP ID (preferring an equal length), else the first that folded a
  /// retransmission with that ID, else the first of equal length, else the first. Returns the
  /// line's pool index and its predecessor in the chain; `nil` when no line is within the window.
  private mutating func choose(in slot: Int, for line: PacketLine) -> (
    node: Int32, previous: Int32, method: MatchMethod
  )? {
    let postID = line.ipID.flatMap { $0 == 0 ? nil : $0 }
    var first: (Int32, Int32)? = nil
    var firstOfLength: (Int32, Int32)? = nil
    var firstByID: (Int32, Int32)? = nil
    var firstByIDOfLength: (Int32, Int32)? = nil
    var firstByRetransmit: (Int32, Int32)? = nil
    var previous: Int32 = -1
    var index = state.slots[slot].pendingHead
    while index >= 0 {
      pendingVisits &+= 1
      let pre = state.pool[Int(index)]
      if within(pre.timeMicros, line.timeMicros) || within(pre.lastSeenMicros, line.timeMicros) {
        let here = (index, previous)
        if first == nil { first = here }
        if firstOfLength == nil, pre.length == line.length { firstOfLength = here }
        if let postID {
          if pre.ipID == postID {
            if firstByID == nil { firstByID = here }
            if firstByIDOfLength == nil, pre.length == line.length { firstByIDOfLength = here }
          }
          if firstByRetransmit == nil, pre.retransmits >= 0, state.retransmitIDs(of: pre).contains(postID) {
            firstByRetransmit = here
          }
        }
      }
      previous = index
      index = pre.next
    }
    if let best = firstByIDOfLength ?? firstByID { return (best.0, best.1, .exactID) }
    if let best = firstByRetransmit { return (best.0, best.1, .retransmitDedup) }
    guard let best = firstOfLength ?? first else { return nil }
    return (best.0, best.1, .sourcePortWindow)
  }

  /// Drops pending lines and recent matches that fell behind the watermark, in place: only slots
  /// whose time bound is behind are visited, and a slot left empty is freed by backward shift.
  private mutating func expire(into output: inout Output) {
    guard state.watermarkMicros != .min else { return }
    let pendingLimit = state.watermarkMicros.subtractingSaturating(settings.pendingExpiryMicros)
    let recentLimit = state.watermarkMicros.subtractingSaturating(
      max(settings.retransmitWindowMicros, settings.windowMicros))
    var slot = 0
    while slot < state.slots.count {
      let entry = state.slots[slot]
      guard entry.isUsed, entry.pendingMin < pendingLimit || entry.recentTime < recentLimit else {
        slot += 1
        continue
      }
      var newMin = Int64.max
      var previous: Int32 = -1
      var index = entry.pendingHead
      while index >= 0 {
        pendingVisits &+= 1
        let pre = state.pool[Int(index)]
        if pre.lastSeenMicros < pendingLimit {
          output.outcomes.append((pre.id, .expired))
          output.stats.expired += 1
          // Kept as a connection whose pod is unknown. Its post line cannot still join: it would
          // have to lie within the window of the pre line, and the watermark is the expiry
          // bound (far more than the window) past it.
          output.connections.append(
            Connection(
              timeMicros: pre.timeMicros.subtractingSaturating(pre.clockOffsetMicros), node: node, proto: entry.proto,
              client: IPAddress(high: entry.sourceHigh, low: entry.sourceLow), clientPort: entry.sourcePort,
              service: pre.destination, servicePort: pre.destinationPort, pod: nil, podPort: nil, method: .podUnknown,
              preID: pre.id, postID: nil))
          output.stats.podUnknown += 1
          state.unlinkPending(index, previous: previous, in: slot)
        } else {
          newMin = min(newMin, pre.lastSeenMicros)
          previous = index
        }
        index = pre.next
      }
      state.slots[slot].pendingMin = newMin
      if entry.recentTime < recentLimit { state.clearRecent(in: slot) }
      if state.slots[slot].pendingHead < 0 && !state.slots[slot].hasRecent {
        // The slot now holds the next entry of its cluster (or is free): look at it again.
        state.remove(at: slot)
      } else {
        slot += 1
      }
    }
    state.shrinkIfSparse()
  }
}

extension Int64 {
  /// `self − other`, clamped to the representable range.
  func subtractingSaturating(_ other: Int64) -> Int64 {
    let (result, overflow) = subtractingReportingOverflow(other)
    guard overflow else { return result }
    return other > 0 ? .min : .max
  }
}
