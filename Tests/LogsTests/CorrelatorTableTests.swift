import LogGeneration
import SVCTraceCore
import Testing

@testable import Logs

@Suite("Correlator: the open-addressing table")
struct CorrelatorTableTests {
  func key(_ port: UInt16, proto: UInt8 = 6, source: IPAddress = IPAddress(ipv4: 0x0AF4_0105)) -> CorrelationKey {
    CorrelationKey(proto: proto, source: source, sourcePort: port)
  }

  func pre(_ id: Int64, time: Int64 = 1_000) -> PendingPre {
    PendingPre(
      id: id, timeMicros: time, lastSeenMicros: time, clockOffsetMicros: 0, destination: IPAddress(ipv4: 0x0A60_000A),
      destinationPort: 80, ipID: UInt32(id), length: 60, retransmitIDs: [])
  }

  /// Every used slot is reachable from its key's home slot (no free slot on the way), the count
  /// is right and the load stays at most 0.7.
  func expectConsistent(_ state: CorrelatorState, sourceLocation: SourceLocation = #_sourceLocation) {
    let mask = state.slots.count - 1
    var used = 0
    for index in state.slots.indices where state.slots[index].isUsed {
      used += 1
      let slot = state.slots[index]
      var probe = state.home(slot.sourceHigh, slot.sourceLow, slot.sourcePort, slot.proto)
      while probe != index {
        #expect(state.slots[probe].isUsed, "slot \(index) unreachable from its home", sourceLocation: sourceLocation)
        probe = (probe + 1) & mask
      }
      #expect(state.find(slot.key) == index, sourceLocation: sourceLocation)
    }
    #expect(used == state.count, sourceLocation: sourceLocation)
    #expect(state.count * 10 <= state.slots.count * 7, sourceLocation: sourceLocation)
  }

  /// Keys (by source port) whose home is `home` in a table of `capacity` slots.
  func keys(homedAt home: Int, capacity: Int, count: Int) -> [CorrelationKey] {
    var state = CorrelatorState()
    state.resize(to: capacity)
    var found: [CorrelationKey] = []
    for port in UInt16(1)...UInt16.max where found.count < count {
      let candidate = key(port)
      if state.home(candidate.source.high, candidate.source.low, port, candidate.proto) == home {
        found.append(candidate)
      }
    }
    return found
  }

  @Test func collidingKeysWrapAroundTheEndAndSurviveDeletionsInTheirChain() {
    // Given five keys that all hash to the last slot of a 64-slot table,
    let capacity = CorrelatorState.minimumCapacity
    let colliding = keys(homedAt: capacity - 1, capacity: capacity, count: 5)
    #expect(colliding.count == 5)
    var state = CorrelatorState()
    var slots: [Int] = []
    for (index, key) in colliding.enumerated() {
      let slot = state.insert(key)
      state.appendPending(pre(Int64(index + 1)), to: slot)
      slots.append(slot)
    }
    // they fill the last slot and wrap to the first ones,
    #expect(slots == [capacity - 1, 0, 1, 2, 3])
    expectConsistent(state)
    // and deleting the head of the chain (whose slot every other probe runs through) shifts
    // the rest back across the wrap, each still found with its own lines.
    state.unlinkPending(state.slots[slots[0]].pendingHead, previous: -1, in: slots[0])
    state.remove(at: slots[0])
    expectConsistent(state)
    #expect(state.find(colliding[0]) == -1)
    #expect(state.find(colliding[1]) == capacity - 1)
    for (index, key) in colliding.enumerated().dropFirst() {
      let slot = state.find(key)
      #expect(state.pendingList(slot).map(\.id) == [Int64(index + 1)])
    }
    // Deleting from the middle keeps the others reachable.
    let middle = state.find(colliding[2])
    state.unlinkPending(state.slots[middle].pendingHead, previous: -1, in: middle)
    state.remove(at: middle)
    expectConsistent(state)
    #expect(colliding.map { state.find($0) >= 0 } == [false, true, false, true, true])
  }

  @Test func aKeyHomedAfterTheHoleStaysPut() {
    // Given a chain at slots 10, 11 (both homed at 10) and a key homed at 12 that sits in 12,
    let capacity = CorrelatorState.minimumCapacity
    let atTen = keys(homedAt: 10, capacity: capacity, count: 2)
    let atTwelve = keys(homedAt: 12, capacity: capacity, count: 1)
    var state = CorrelatorState()
    for key in atTen + atTwelve { state.appendPending(pre(1), to: state.insert(key)) }
    #expect(state.find(atTwelve[0]) == 12)
    // when the first is deleted, the second moves to 10 and the third may not move before its home.
    state.unlinkPending(state.slots[10].pendingHead, previous: -1, in: 10)
    state.remove(at: 10)
    #expect(state.find(atTen[1]) == 10)
    #expect(state.find(atTwelve[0]) == 12)
    #expect(!state.slots[11].isUsed)
    expectConsistent(state)
  }

  @Test func growthKeepsEveryKeyAndItsLines() {
    var state = CorrelatorState()
    var expected: [CorrelationKey: [Int64]] = [:]
    for index in 0..<5_000 {
      // IPv4 and IPv6 sources, TCP and UDP, ports that collide in their low bits.
      let source =
        index % 3 == 0
        ? IPAddress(high: 0xFD00_0000_0000_0000, low: UInt64(index % 7))
        : IPAddress(ipv4: 0x0AF4_0000 | UInt32(index % 11))
      let key = key(UInt16(index / 77 * 64 % 65_536), proto: index % 2 == 0 ? 6 : 17, source: source)
      let slot = state.slot(for: key)
      state.appendPending(pre(Int64(index)), to: slot)
      expected[key, default: []].append(Int64(index))
    }
    expectConsistent(state)
    #expect(state.count == expected.count)
    #expect(state.slots.count.nonzeroBitCount == 1 && state.slots.count >= state.count)
    #expect(state.pendingByKey.mapValues { $0.map(\.id) } == expected)
    #expect(state.pendingIDs == Array(0..<5_000))
  }

  @Test func expiringManyEntriesEmptiesAndShrinksTheTable() {
    // Given 20 000 pending pre lines on distinct keys, then one line far later,
    let base: Int64 = 1_790_000_000_000_000
    var feed = Feed()
    for index in 0..<20_000 {
      feed.add(
        base + Int64(index), .pre, "10.\(index / 60_000 + 1).\(index / 250 % 240).\(index % 250 + 1)",
        UInt16(1024 + index % 50_000), "10.96.0.10", 80, id: UInt32(index % 65_000 + 1))
    }
    var correlator = Correlator(node: HostID("node1"))
    let first = correlator.correlate(feed.observations)
    #expect(first.stats.pending == 20_000)
    let grown = correlator.state.slots.count
    #expect(grown >= 32_768)
    feed.add(base + 500_000_000, .pre, "10.9.9.9", 9999, "10.96.0.10", 80, id: 1)
    // then they all expire in one pass, in place, and the sparse table is shrunk.
    let output = correlator.correlate(feed.observations.suffix(1))
    #expect(output.stats.expired == 20_000)
    #expect(Set(output.outcomes.filter { $0.outcome == .expired }.map(\.id)) == Set(1...20_000))
    #expect(correlator.state.pendingIDs == [20_001])
    #expect(correlator.state.count == 1)
    #expect(correlator.state.slots.count == CorrelatorState.minimumCapacity)
    expectConsistent(correlator.state)
  }

  @Test func expiryInPlaceKeepsTheCapacityWhileTheTableStaysBusy() {
    // A steady stream of connections: the table reaches its size and keeps it.
    let base: Int64 = 1_790_000_000_000_000
    var correlator = Correlator(node: HostID("node1"))
    var feed = Feed()
    var capacities: [Int] = []
    for batch in 0..<6 {
      for index in 0..<4_000 {
        let n = batch * 4_000 + index
        let time = base + Int64(n) * 10_000  // 100 connections a second
        let client = "10.244.\(n % 200).\(n % 7 + 1)"
        feed.add(time, .pre, client, UInt16(20_000 + n % 30_000), "10.96.0.10", 80, id: UInt32(n % 60_000 + 1))
        feed.add(time + 5, .post, client, UInt16(20_000 + n % 30_000), "10.244.9.9", 8080, id: UInt32(n % 60_000 + 1))
      }
      let output = correlator.correlate(feed.take())
      #expect(output.stats.connections == 4_000)
      capacities.append(correlator.state.slots.count)
      expectConsistent(correlator.state)
    }
    #expect(Set(capacities.dropFirst(2)).count == 1, "capacities \(capacities)")
  }

  @Test func stateEqualityIgnoresTheLayout() throws {
    var one = CorrelatorState()
    var other = CorrelatorState()
    let keys = (0..<100).map { key(UInt16($0)) }
    for key in keys { one.appendPending(pre(Int64(key.sourcePort)), to: one.slot(for: key)) }
    for key in keys.reversed() { other.appendPending(pre(Int64(key.sourcePort)), to: other.slot(for: key)) }
    other.resize(to: 1024)
    #expect(one == other)
    other.appendPending(pre(7), to: other.find(keys[3]))
    #expect(one != other)
    one.appendPending(pre(7), to: one.find(keys[3]))
    #expect(one == other)
    other.setRecent(
      RecentMatch(
        timeMicros: 1, service: IPAddress(ipv4: 1), servicePort: 1, pod: IPAddress(ipv4: 2), podPort: 2,
        expectedPosts: 0), in: other.find(keys[4]))
    #expect(one != other)
  }
}

@Suite("Correlator: equivalence with the dictionary model")
struct CorrelatorDifferentialTests {
  /// A random stream: few clients and ports (keys collide and get reused), retransmissions,
  /// posts without pres, out-of-order times, IPv4 and IPv6, jumps that expire pending lines.
  func stream(seed: UInt64, count: Int, settings: CorrelationSettings) -> [Observation] {
    var random = SplitMix64(seed: seed)
    let clients = ["10.244.1.5", "10.244.1.6", "10.244.2.7", "fd00:10:244::5"]
    let services = ["10.96.0.10", "10.96.0.11", "fd00:10:96::a"]
    let pods = ["10.244.3.1", "10.244.3.2", "10.244.1.5", "fd00:10:244:1::9"]
    var time: Int64 = 1_790_000_000_000_000
    var observations: [Observation] = []
    var recentPres: [PacketLine] = []
    for index in 0..<count {
      let roll = Int.random(in: 0..<100, using: &random)
      if roll < 2 {
        time += Int64.random(in: settings.windowMicros...(settings.pendingExpiryMicros * 2), using: &random)
      } else {
        time += Int64.random(in: 0...(settings.windowMicros / 4), using: &random)
      }
      let jitter = Int64.random(in: -(settings.windowMicros / 2)...(settings.windowMicros / 2), using: &random)
      let lineTime = roll % 5 == 0 ? time + jitter : time
      let line: PacketLine
      if let previous = recentPres.randomElement(using: &random), roll >= 30 {
        // A post (or a retransmitted pre) of a recent pre line.
        let retransmit = roll >= 85
        let id = previous.ipID.map { Int.random(in: 0..<4, using: &random) == 0 ? $0 &+ 1 : $0 }
        line = PacketLine(
          timeMicros: lineTime, stage: retransmit ? .pre : .post, source: previous.source,
          destination: retransmit
            ? previous.destination : IPAddress(pods.randomElement(using: &random) ?? pods[0]) ?? previous.destination,
          proto: previous.proto, sourcePort: previous.sourcePort,
          destinationPort: retransmit ? previous.destinationPort : UInt16.random(in: 8080...8081, using: &random),
          ipID: id, length: Bool.random(using: &random) ? previous.length : 90)
      } else {
        let ids: [UInt32?] = [nil, 0, 5, 6, 7, 40_000, UInt32.random(in: 1...65_535, using: &random)]
        line = PacketLine(
          timeMicros: lineTime, stage: roll < 25 ? .pre : .post,
          source: IPAddress(clients.randomElement(using: &random) ?? clients[0]) ?? IPAddress(ipv4: 1),
          destination: IPAddress(services.randomElement(using: &random) ?? services[0]) ?? IPAddress(ipv4: 2),
          proto: Int.random(in: 0..<4, using: &random) == 0 ? 17 : 6,
          sourcePort: UInt16.random(in: 40_000...40_005, using: &random),
          destinationPort: UInt16.random(in: 80...81, using: &random),
          ipID: ids.randomElement(using: &random) ?? nil, length: [60, 71, 90].randomElement(using: &random) ?? 60)
        if line.stage == .pre {
          recentPres.append(line)
          if recentPres.count > 12 { recentPres.removeFirst() }
        }
      }
      observations.append(
        Observation(
          id: Int64(index + 1), line: line, clockOffsetMicros: Int64.random(in: -500...500, using: &random)))
    }
    return observations
  }

  func expectSame(
    _ got: Correlator.Output, _ want: Correlator.Output, context: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) {
    // Joined connections in order; those of expired pre lines (no pod) come last, in table
    // order, so those are compared sorted by pre line.
    let joined = { (output: Correlator.Output) in output.connections.filter { $0.method != .podUnknown } }
    let podUnknown = { (output: Correlator.Output) in
      output.connections.filter { $0.method == .podUnknown }.sorted { $0.preID < $1.preID }
    }
    #expect(joined(got) == joined(want), "\(context)", sourceLocation: sourceLocation)
    #expect(podUnknown(got) == podUnknown(want), "\(context)", sourceLocation: sourceLocation)
    #expect(
      got.connections.drop { $0.method != .podUnknown }.allSatisfy { $0.method == .podUnknown },
      "pod-unknown connections come last: \(context)", sourceLocation: sourceLocation)
    #expect(got.redispatches == want.redispatches, "\(context)", sourceLocation: sourceLocation)
    #expect(got.stats == want.stats, "\(context)", sourceLocation: sourceLocation)
    // Outcomes in order; the expired ones come last, in table order (the model's is its
    // dictionary's), so those are compared as a set.
    let decided = { (output: Correlator.Output) in output.outcomes.count - output.stats.expired }
    let gotOrdered = got.outcomes.prefix(decided(got)).map { "\($0.id) \($0.outcome)" }
    let wantOrdered = want.outcomes.prefix(decided(want)).map { "\($0.id) \($0.outcome)" }
    #expect(gotOrdered == wantOrdered, "\(context)", sourceLocation: sourceLocation)
    let gotExpired = got.outcomes.suffix(got.stats.expired).map { "\($0.id) \($0.outcome)" }.sorted()
    let wantExpired = want.outcomes.suffix(want.stats.expired).map { "\($0.id) \($0.outcome)" }.sorted()
    #expect(gotExpired == wantExpired, "\(context)", sourceLocation: sourceLocation)
  }

  @Test(arguments: [
    (UInt64(1), CorrelationSettings()),
    (
      UInt64(2),
      CorrelationSettings(windowMicros: 2_000_000, pendingExpiryMicros: 20_000_000, retransmitWindowMicros: 8_000_000)
    ),
    (
      UInt64(3),
      CorrelationSettings(windowMicros: 500_000, pendingExpiryMicros: 5_000_000, retransmitWindowMicros: 3_000_000)
    ),
    (
      UInt64(4),
      CorrelationSettings(windowMicros: 2_000_000, pendingExpiryMicros: 4_000_000, retransmitWindowMicros: 35_000_000)
    ),
    // Pending lists capped low, so that the oldest lines are dropped all the time.
    (UInt64(5), CorrelationSettings(maxPendingPerKey: 2)),
  ])
  func randomStreamsGiveTheModelsOutputs(seed: UInt64, settings: CorrelationSettings) throws {
    let observations = stream(seed: seed, count: 12_000, settings: settings)
    var random = SplitMix64(seed: seed ^ 0xABCD)
    var correlator = Correlator(node: HostID("node1"), settings: settings)
    var model = ReferenceCorrelator(node: HostID("node1"), settings: settings)
    var start = 0
    var batch = 0
    var totals = CorrelationStats()
    var methods: Set<MatchMethod> = []
    while start < observations.count {
      let end = min(observations.count, start + Int.random(in: 1...1_500, using: &random))
      let chunk = observations[start..<end]
      let got = correlator.correlate(chunk)
      let want = model.correlate(chunk)
      let context = "seed \(seed) batch \(batch) lines \(start)..<\(end)"
      expectSame(got, want, context: context)
      #expect(correlator.state.pendingIDs == model.state.pendingIDs, "\(context)")
      #expect(correlator.state.pendingByKey == model.state.pending, "\(context)")
      #expect(correlator.state.recentByKey == model.state.recent, "\(context)")
      #expect(correlator.state.watermarkMicros == model.state.watermarkMicros, "\(context)")
      // The state goes through the store between batches: the compact encoding, or the old one.
      let restored = try CorrelatorState(encoded: correlator.state.encoded())
      #expect(restored == correlator.state, "\(context)")
      #expect(try CorrelatorState(encoded: model.state.encodedV3()) == correlator.state, "\(context)")
      correlator = Correlator(node: HostID("node1"), settings: settings, state: restored)
      methods.formUnion(got.connections.map(\.method))
      totals.connections += got.stats.connections
      totals.duplicates += got.stats.duplicates
      totals.orphans += got.stats.orphans
      totals.expired += got.stats.expired
      totals.redispatched += got.stats.redispatched
      totals.dropped += got.stats.dropped
      start = end
      batch += 1
    }
    // The stream exercises every path.
    #expect(totals.connections > 500 && totals.duplicates > 50 && totals.orphans > 50 && totals.expired > 20)
    #expect(totals.redispatched > 0, "\(totals)")
    #expect((totals.dropped > 0) == (settings.maxPendingPerKey < 64), "\(totals)")
    #expect(methods == Set(MatchMethod.allCases).subtracting([.reportedBySource]), "\(methods)")
  }

  @Test func unsplitStreamGivesTheModelsOutput() {
    let settings = CorrelationSettings()
    let observations = stream(seed: 99, count: 30_000, settings: settings)
    var correlator = Correlator(node: HostID("node1"), settings: settings)
    var model = ReferenceCorrelator(node: HostID("node1"), settings: settings)
    expectSame(correlator.correlate(observations), model.correlate(observations), context: "one batch")
    #expect(correlator.state.pendingByKey == model.state.pending)
    #expect(correlator.state.recentByKey == model.state.recent)
  }

  @Test func theStoresLinesPathGivesTheObservationsPathsOutput() {
    let settings = CorrelationSettings()
    let observations = stream(seed: 7, count: 20_000, settings: settings)
    var byObservations = Correlator(node: HostID("node1"), settings: settings)
    var byLines = Correlator(node: HostID("node1"), settings: settings)
    // Batches as the store makes them: consecutive ids, one clock offset per batch.
    for start in stride(from: 0, to: observations.count, by: 2_500) {
      let lines = observations[start..<min(observations.count, start + 2_500)].map(\.line)
      let firstID = Int64(start + 1_000)
      let offset = Int64(start % 7) * 100
      let batch = lines.enumerated().map {
        Observation(id: firstID + Int64($0.offset), line: $0.element, clockOffsetMicros: offset)
      }
      expectSame(
        byLines.correlate(lines: lines, firstID: firstID, clockOffsetMicros: offset), byObservations.correlate(batch),
        context: "batch at \(start)")
      #expect(byLines.state == byObservations.state)
    }
    #expect(byLines.state.encoded() == byObservations.state.encoded())
  }
}

@Suite("Correlator state: encodings")
struct CorrelatorStateEncodingTests {
  /// A state with pending lines (with and without IP IDs, with retransmitted IDs), recent
  /// matches (one from before line ids were kept), IPv4 and IPv6.
  func sampleState() -> (CorrelatorState, ReferenceCorrelator.State) {
    let base: Int64 = 1_790_000_000_000_000
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10, offset: -70)
    feed.add(base + 1_000_000, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 11)
    feed.add(base + 1_000_100, .pre, "fd00:10:244::5", 40000, "fd00:10:96::a", 443)
    feed.add(base + 1_000_200, .pre, "10.244.1.7", 41000, "10.96.0.10", 80, id: 8)
    feed.add(base + 1_000_300, .post, "10.244.1.7", 41000, "10.244.3.1", 8080, id: 8)
    feed.add(base + 1_000_400, .pre, proto: 17, "10.244.1.8", 5353, "10.96.0.53", 53, id: 0, length: 71)
    feed.add(base + 1_000_500, .pre, proto: 17, "10.244.1.8", 5353, "10.96.0.54", 53, id: 0, length: 90)
    var correlator = Correlator(node: HostID("node1"))
    var model = ReferenceCorrelator(node: HostID("node1"))
    _ = correlator.correlate(feed.observations)
    _ = model.correlate(feed.observations)
    return (correlator.state, model.state)
  }

  @Test func aVersion3BlobOfTheOldEncoderDecodesToTheSameState() throws {
    let (state, old) = sampleState()
    let blob = old.encodedV3()
    #expect(blob.first == 3)
    let decoded = try CorrelatorState(encoded: blob)
    #expect(decoded == state)
    #expect(decoded.pendingByKey == old.pending)
    #expect(decoded.recentByKey == old.recent)
    #expect(decoded.watermarkMicros == old.watermarkMicros)
    #expect(decoded.pendingByKey.values.contains { $0.contains { $0.retransmitIDs == [11] } })
  }

  @Test func version4IsCompactAndDecodesToTheSameStateAndBytes() throws {
    let (state, old) = sampleState()
    let bytes = state.encoded()
    #expect(bytes.first == 4)
    #expect(bytes.count * 2 < old.encodedV3().count, "\(bytes.count) vs \(old.encodedV3().count) bytes")
    let decoded = try CorrelatorState(encoded: bytes)
    #expect(decoded == state)
    #expect(decoded.encoded() == bytes, "decoding rebuilds the same layout")
    // Equal states built by the same operations encode identically.
    #expect(sampleState().0.encoded() == bytes)
  }

  @Test func version4RejectsDamagedBytes() throws {
    let bytes = sampleState().0.encoded()
    for cut in 1..<bytes.count {
      #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: Array(bytes.prefix(cut))) }
    }
    #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: bytes + [0]) }
    // A table far too large for its entries.
    var huge = bytes
    let capacityByte = (bytes.dropFirst().firstIndex { $0 < 0x80 } ?? 1) + 1
    #expect(bytes[capacityByte] == 6, "64 slots")
    huge[capacityByte] = 40
    #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: huge) }
    // Any single corrupted byte is an error or a state, never a crash.
    for index in bytes.indices {
      var damaged = bytes
      damaged[index] ^= 0xFF
      _ = try? CorrelatorState(encoded: damaged)
    }
  }

  @Test func anEmptyStateRoundTrips() throws {
    let empty = CorrelatorState()
    #expect(try CorrelatorState(encoded: empty.encoded()) == empty)
    #expect(try CorrelatorState(encoded: empty.encoded()).encoded() == empty.encoded())
  }
}
