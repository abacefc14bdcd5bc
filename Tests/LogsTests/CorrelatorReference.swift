import SVCTraceCore

@testable import Logs

/// The correlator as it was before the open-addressing table (two dictionaries), kept as the
/// model that ``Correlator`` must match output for output.
struct ReferenceCorrelator {
  struct State: Equatable {
    var pending: [CorrelationKey: [PendingPre]] = [:]
    var recent: [CorrelationKey: RecentMatch] = [:]
    var watermarkMicros: Int64 = .min

    var pendingIDs: [Int64] { pending.values.flatMap { $0.map(\.id) }.sorted() }
  }

  typealias Output = Correlator.Output
  let node: HostID
  var settings: CorrelationSettings
  var state = State()

  init(node: HostID, settings: CorrelationSettings = CorrelationSettings(), state: State = State()) {
    self.node = node
    self.settings = settings
    self.state = state
  }

  /// Feeds observations in log order and returns the connections they complete.
  mutating func correlate(_ observations: some Sequence<Observation>) -> Output {
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
          && Correlator.couldBeRetransmission(line.ipID, after: $0.retransmitIDs.last ?? $0.ipID)
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
        && Correlator.couldBeRetransmission(line.ipID, after: recent.lastIPID)
    {
      state.recent[key]?.expectedPosts += 1
      state.recent[key]?.timeMicros = max(recent.timeMicros, line.timeMicros)
      if let id = line.ipID, id != 0 { state.recent[key]?.lastIPID = id }
      output.outcomes.append((observation.id, .duplicate))
      output.stats.duplicates += 1
      return
    }
    // At most `maxPendingPerKey` lines per key: the oldest beyond are dropped.
    if var list = state.pending[key], list.count >= max(1, settings.maxPendingPerKey) {
      let excess = list.count - max(1, settings.maxPendingPerKey) + 1
      for old in list.prefix(excess) {
        output.outcomes.append((old.id, .expired))
        output.stats.dropped += 1
      }
      list.removeFirst(excess)
      state.pending[key] = list.isEmpty ? nil : list
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
        expectedPosts: pre.retransmitIDs.count, lastIPID: pre.retransmitIDs.last ?? pre.ipID, preID: pre.id,
        postID: observation.id)
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
        output.connections.append(
          Connection(
            timeMicros: old.timeMicros.subtractingSaturating(old.clockOffsetMicros), node: node, proto: key.proto,
            client: key.source, clientPort: key.sourcePort, service: old.destination,
            servicePort: old.destinationPort, pod: nil, podPort: nil, method: .podUnknown, preID: old.id, postID: nil))
        output.stats.podUnknown += 1
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

extension ReferenceCorrelator.State {
  /// The old (version 3) encoder, byte for byte.
  func encodedV3() -> [UInt8] {
    var bytes: [UInt8] = []
    func u8(_ value: UInt8) { bytes.append(value) }
    func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
    func address(_ value: IPAddress) {
      u64(value.high)
      u64(value.low)
    }
    func key(_ key: CorrelationKey) {
      u8(key.proto)
      address(key.source)
      u16(key.sourcePort)
    }
    u8(3)
    i64(watermarkMicros)
    u32(UInt32(pending.count))
    for (k, list) in pending.sorted(by: { $0.value.first?.id ?? 0 < $1.value.first?.id ?? 0 }) {
      key(k)
      u32(UInt32(list.count))
      for pre in list {
        i64(pre.id)
        i64(pre.timeMicros)
        i64(pre.lastSeenMicros)
        i64(pre.clockOffsetMicros)
        address(pre.destination)
        u16(pre.destinationPort)
        u8(pre.ipID == nil ? 0 : 1)
        u32(pre.ipID ?? 0)
        u16(pre.length)
        u32(UInt32(pre.retransmitIDs.count))
        for id in pre.retransmitIDs { u32(id) }
      }
    }
    u32(UInt32(recent.count))
    for (k, match) in recent {
      key(k)
      i64(match.timeMicros)
      address(match.service)
      u16(match.servicePort)
      address(match.pod)
      u16(match.podPort)
      u32(UInt32(clamping: match.expectedPosts))
      u8(match.lastIPID == nil ? 0 : 1)
      u32(match.lastIPID ?? 0)
      i64(match.preID ?? 0)
      i64(match.postID ?? 0)
    }
    return bytes
  }
}
