import SVCTraceCore
import Testing

@testable import Logs

/// Builds observations for one node; ids are assigned in feed order.
struct Feed {
  var observations: [Observation] = []

  mutating func add(
    _ time: Int64, _ stage: PacketLine.Stage, proto: UInt8 = 6, _ source: String, _ sport: UInt16,
    _ destination: String, _ dport: UInt16, id: UInt32? = nil, length: UInt16 = 60, offset: Int64 = 0
  ) {
    let line = PacketLine(
      timeMicros: time, stage: stage, source: IPAddress(source)!, destination: IPAddress(destination)!, proto: proto,
      sourcePort: sport, destinationPort: dport, ipID: id, length: length)
    observations.append(Observation(id: Int64(observations.count + 1), line: line, clockOffsetMicros: offset))
  }

  /// Takes the observations added so far (for feeding in several batches).
  mutating func take() -> [Observation] {
    defer { observations = [] }
    return observations
  }
}

@Suite("Correlator")
struct CorrelatorTests {
  let node = HostID("node1")
  let ms: Int64 = 1000
  let base: Int64 = 1_780_000_000_000_000

  func summary(_ connections: [Connection]) -> [String] {
    connections.map {
      "\($0.client):\($0.clientPort)>\($0.service):\($0.servicePort)>\($0.pod.map { "\($0)" } ?? "?"):\($0.podPort.map { "\($0)" } ?? "?") \($0.method)"
    }
  }

  @Test func joinsPreAndPostOnExactID() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 4242)
    feed.add(base + 1 * ms, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 4242)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(summary(output.connections) == ["10.244.1.5:40000>10.96.0.10:80>10.244.2.7:8080 exact-id"])
    #expect(output.connections[0].preID == 1 && output.connections[0].postID == 2)
    #expect(output.connections[0].node == node)
    #expect(correlator.state.pendingIDs.isEmpty)
  }

  @Test func interleavedConnectionsJoinByKey() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 1)
    feed.add(base + 1, .pre, "10.244.1.6", 40000, "10.96.0.11", 53, id: 2)
    feed.add(base + 2, .pre, "10.244.1.5", 40001, "10.96.0.10", 80, id: 3)
    feed.add(base + 3, .post, "10.244.1.5", 40001, "10.244.9.1", 8080, id: 3)
    feed.add(base + 4, .post, "10.244.1.6", 40000, "10.244.9.2", 5353, id: 2)
    feed.add(base + 5, .post, "10.244.1.5", 40000, "10.244.9.3", 8080, id: 1)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(
      summary(output.connections) == [
        "10.244.1.5:40001>10.96.0.10:80>10.244.9.1:8080 exact-id",
        "10.244.1.6:40000>10.96.0.11:53>10.244.9.2:5353 exact-id",
        "10.244.1.5:40000>10.96.0.10:80>10.244.9.3:8080 exact-id",
      ])
  }

  @Test func sameIDOnDifferentPortsDoesNotCrossMatch() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 777)
    feed.add(base + 1, .pre, "10.244.1.5", 40002, "10.96.0.20", 80, id: 777)
    feed.add(base + 2, .post, "10.244.1.5", 40002, "10.244.3.3", 8080, id: 777)
    feed.add(base + 3, .post, "10.244.1.5", 40000, "10.244.4.4", 8080, id: 777)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(
      summary(output.connections) == [
        "10.244.1.5:40002>10.96.0.20:80>10.244.3.3:8080 exact-id",
        "10.244.1.5:40000>10.96.0.10:80>10.244.4.4:8080 exact-id",
      ])
  }

  @Test func retransmittedSynIsDeduplicated() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    feed.add(base + 1 * ms, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 10)
    // The SYN is retransmitted after 1 s: same key, same ID, both hooks log it again.
    feed.add(base + 1000 * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    feed.add(base + 1001 * ms, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 10)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.count == 1)
    #expect(output.stats.duplicates == 2)
    #expect(output.stats.orphans == 0)
  }

  @Test func synRetriesAtOneAndThreeSecondsStayOneConnection() {
    var feed = Feed()
    for offset: Int64 in [0, 1000, 3000, 7000] {
      feed.add(base + offset * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
      feed.add(base + offset * ms + 1, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 10)
    }
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.count == 1)
    #expect(output.connections.first?.timeMicros == base, "the connection's time is its first SYN")
    #expect(output.stats.duplicates == 6)
  }

  @Test func unmatchedRetriesSlideTheWindowUntilThePostArrives() {
    var feed = Feed()
    // Post lines only for the last retry (e.g. the first SYNs were dropped between hooks).
    for offset: Int64 in [0, 1000, 3000] {
      feed.add(base + offset * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    }
    feed.add(base + 3000 * ms + 1, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 10)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.map(\.preID) == [1])
    #expect(output.stats.duplicates == 2 && output.stats.orphans == 0)
  }

  @Test func retransmissionWithNewIDBeforeThePostJoinsThroughIt() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    feed.add(base + 1000 * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 11)
    // Only the retransmission's post line is logged (the first SYN was dropped after PRE).
    feed.add(base + 1001 * ms, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 11)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(summary(output.connections) == ["10.244.1.5:40000>10.96.0.10:80>10.244.2.7:8080 retransmit-dedup"])
    #expect(output.connections[0].preID == 1)
    #expect(output.stats.duplicates == 1)
  }

  @Test func sourcePortReusedAfterTheWindowIsANewConnection() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    feed.add(base + 1, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 10)
    feed.add(base + 65_000 * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 10)
    feed.add(base + 65_000 * ms + 1, .post, "10.244.1.5", 40000, "10.244.2.8", 8080, id: 10)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(
      summary(output.connections) == [
        "10.244.1.5:40000>10.96.0.10:80>10.244.2.7:8080 exact-id",
        "10.244.1.5:40000>10.96.0.10:80>10.244.2.8:8080 exact-id",
      ])
    #expect(output.stats.duplicates == 0)
  }

  @Test func udpRepeatAfterTheWindowIsANewFlowNotARetransmission() {
    var feed = Feed()
    feed.add(base, .pre, proto: 17, "10.244.1.5", 5353, "10.96.0.10", 53, id: 0)
    feed.add(base + 1, .post, proto: 17, "10.244.1.5", 5353, "10.244.7.1", 53, id: 0)
    // 31 s later the conntrack entry has expired; the same tuple is logged as a new flow.
    feed.add(base + 31_000 * ms, .pre, proto: 17, "10.244.1.5", 5353, "10.96.0.10", 53, id: 0)
    feed.add(base + 31_000 * ms + 1, .post, proto: 17, "10.244.1.5", 5353, "10.244.7.2", 53, id: 0)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.map(\.pod) == [IPAddress("10.244.7.1")!, IPAddress("10.244.7.2")!])
    #expect(output.stats.duplicates == 0)
  }

  @Test func ipv6WithoutIDJoinsOnSourcePortWindow() {
    var feed = Feed()
    feed.add(base, .pre, "fd00:10:244::5", 40000, "fd00:10:96::a", 443)
    feed.add(base + 2 * ms, .post, "fd00:10:244::5", 40000, "fd00:10:244:1::9", 8443)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(
      summary(output.connections) == ["fd00:10:244::5:40000>fd00:10:96::a:443>fd00:10:244:1::9:8443 sport-window"])
  }

  @Test func udpWithZeroIDUsesLengthAsTieBreaker() {
    var feed = Feed()
    // An unconnected UDP socket asks two Services from one port: ID 0, lengths differ.
    feed.add(base, .pre, proto: 17, "10.244.1.5", 5353, "10.96.0.10", 53, id: 0, length: 71)
    feed.add(base + 1, .pre, proto: 17, "10.244.1.5", 5353, "10.96.0.11", 53, id: 0, length: 90)
    feed.add(base + 2, .post, proto: 17, "10.244.1.5", 5353, "10.244.7.2", 53, id: 0, length: 90)
    feed.add(base + 3, .post, proto: 17, "10.244.1.5", 5353, "10.244.7.1", 53, id: 0, length: 71)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(
      summary(output.connections) == [
        "10.244.1.5:5353>10.96.0.11:53>10.244.7.2:53 sport-window",
        "10.244.1.5:5353>10.96.0.10:53>10.244.7.1:53 sport-window",
      ])
    #expect(output.connections.allSatisfy { $0.proto == 17 })
  }

  @Test func outOfOrderTimestampsWithinTheWindowStillJoin() {
    var feed = Feed()
    feed.add(base + 500 * ms, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 9)
    feed.add(base, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 9)  // stamped 0.5 s earlier
    var correlator = Correlator(node: node)
    #expect(correlator.correlate(feed.observations).connections.count == 1)
  }

  @Test func postOutsideTheWindowIsAnOrphan() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 9)
    feed.add(base + 3000 * ms, .post, "10.244.1.5", 40000, "10.244.2.7", 8080, id: 9)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.isEmpty)
    #expect(output.stats.orphans == 1)
    #expect(correlator.state.pendingIDs == [1])
  }

  @Test func hostNetworkLocalDeliveryPostsToTheNodeAddress() {
    var feed = Feed()
    // DNAT to a hostNetwork endpoint: the post line (INPUT hook) has the node's IP as destination.
    feed.add(base, .pre, "192.168.50.11", 51000, "10.96.0.30", 9100, id: 321)
    feed.add(base + 1, .post, "192.168.50.11", 51000, "192.168.50.11", 9100, id: 321)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(summary(output.connections) == ["192.168.50.11:51000>10.96.0.30:9100>192.168.50.11:9100 exact-id"])
  }

  @Test func preInOneBatchPostInTheNextJoinsThroughPersistedState() throws {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 5, offset: 250)
    var first = Correlator(node: node)
    let firstOutput = first.correlate(feed.observations)
    #expect(firstOutput.connections.isEmpty)
    #expect(firstOutput.stats.pending == 1)
    let saved = first.state.encoded()

    var next = Feed()
    next.observations = [
      Observation(
        id: 2,
        line: PacketLine(
          timeMicros: base + 3, stage: .post, source: IPAddress("10.244.1.5")!, destination: IPAddress("10.244.2.7")!,
          proto: 6, sourcePort: 40000, destinationPort: 8080, ipID: 5, length: 60))
    ]
    var second = Correlator(node: node, state: try CorrelatorState(encoded: saved))
    let output = second.correlate(next.observations)
    #expect(output.connections.count == 1)
    #expect(output.connections[0].preID == 1)
    #expect(output.connections[0].timeMicros == base - 250, "time corrected by the pre line's clock offset")
    #expect(output.outcomes.contains { $0.id == 1 && $0.outcome == .matched })
  }

  @Test func pendingPreExpiresAfterTheBound() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 5)
    feed.add(base + 200_000 * ms, .pre, "10.244.1.6", 40000, "10.96.0.10", 80, id: 6)
    var correlator = Correlator(node: node, settings: CorrelationSettings(pendingExpiryMicros: 120_000 * ms))
    let output = correlator.correlate(feed.observations)
    #expect(output.stats.expired == 1)
    #expect(output.outcomes.contains { $0.id == 1 && $0.outcome == .expired })
    #expect(correlator.state.pendingIDs == [2])
  }

  @Test func anExpiredPreLineBecomesAConnectionWithoutAPod() throws {
    // Given a pre line (clock offset 250 µs) whose post line never comes,
    var feed = Feed()
    feed.add(base, .pre, "10.250.0.7", 40000, "10.96.0.10", 80, id: 5, offset: 250)
    feed.add(base + 121_000 * ms, .pre, "10.250.0.8", 40001, "10.96.0.10", 80, id: 6)
    var correlator = Correlator(node: node)
    let first = correlator.correlate(feed.observations.prefix(1))
    // it waits while the node's log is younger than the expiry bound,
    #expect(first.connections.isEmpty && first.stats.pending == 1)
    // and once a later line passes the bound it is kept as "client → Service, pod unknown".
    let output = correlator.correlate(feed.observations.suffix(1))
    #expect(summary(output.connections) == ["10.250.0.7:40000>10.96.0.10:80>?:? pod-unknown"])
    let connection = try #require(output.connections.first)
    #expect(connection.pod == nil && connection.podPort == nil && connection.postID == nil)
    #expect(connection.preID == 1 && connection.node == node && connection.proto == 6)
    #expect(connection.timeMicros == base - 250, "time corrected by the pre line's clock offset")
    #expect(output.stats.expired == 1 && output.stats.podUnknown == 1 && output.stats.connections == 0)
    #expect(output.outcomes.contains { $0.id == 1 && $0.outcome == .expired })
    #expect(correlator.state.pendingIDs == [2])
  }

  @Test func aPostLineThatArrivesLateInTheWindowJoinsAndLeavesNoPodUnknownRecord() {
    // The pre line ends one batch; its post line (inside the 2 s window) starts the next, then
    // the log runs far past the expiry bound.
    var feed = Feed()
    feed.add(base, .pre, "10.250.0.7", 40000, "10.96.0.10", 80, id: 5)
    var correlator = Correlator(node: node)
    let first = correlator.correlate(feed.take())
    feed.add(base + 1_900 * ms, .post, "10.250.0.7", 40000, "10.244.2.7", 8080, id: 5)
    let second = correlator.correlate(feed.take())
    feed.add(base + 600_000 * ms, .pre, "10.250.0.9", 40002, "10.96.0.10", 80, id: 9)
    let third = correlator.correlate(feed.take())
    let all = first.connections + second.connections + third.connections
    #expect(summary(all) == ["10.250.0.7:40000>10.96.0.10:80>10.244.2.7:8080 exact-id"])
    #expect(third.stats.podUnknown == 0 && third.stats.expired == 0)
  }

  @Test func aPostLineAfterItsPreLineExpiredIsAnOrphanNotASecondRecord() {
    // A post line that shows up only after its pre line expired (a clock step on the node put
    // it far out of order) cannot join any more: one record, pod unknown, and an orphan.
    var feed = Feed()
    feed.add(base, .pre, "10.250.0.7", 40000, "10.96.0.10", 80, id: 5)
    feed.add(base + 130_000 * ms, .pre, "10.250.0.8", 40001, "10.96.0.10", 80, id: 6)
    var correlator = Correlator(node: node)
    let first = correlator.correlate(feed.take())
    feed.add(base + 1_000 * ms, .post, "10.250.0.7", 40000, "10.244.2.7", 8080, id: 5)
    let second = correlator.correlate(feed.take())
    #expect(summary(first.connections + second.connections) == ["10.250.0.7:40000>10.96.0.10:80>?:? pod-unknown"])
    #expect(second.stats.orphans == 1)
  }

  @Test func retransmissionsOfAPreLineWithoutPostLineMakeOneRecord() {
    // A SYN retried 1 s, 3 s and 7 s later, never DNATed (a drop before the post hook): one
    // pod-unknown record, the retries folded into it.
    var feed = Feed()
    for (index, delay) in [0, 1_000, 3_000, 7_000].enumerated() {
      feed.add(base + Int64(delay) * ms, .pre, "10.250.0.7", 40000, "10.96.0.10", 80, id: UInt32(5 + index))
    }
    feed.add(base + 300_000 * ms, .pre, "10.250.0.8", 40001, "10.96.0.10", 80, id: 50)
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    #expect(summary(output.connections) == ["10.250.0.7:40000>10.96.0.10:80>?:? pod-unknown"])
    #expect(output.stats.duplicates == 3)
  }

  @Test func stateEncodingRoundTripsAndRejectsGarbage() throws {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.5", 40000, "10.96.0.10", 80, id: 5)
    feed.add(base + 1, .pre, "fd00::1", 40000, "fd00::a", 80)
    feed.add(base + 2, .pre, "10.244.1.7", 40000, "10.96.0.10", 80, id: 8)
    feed.add(base + 3, .post, "10.244.1.7", 40000, "10.244.3.1", 80, id: 8)
    var correlator = Correlator(node: node)
    _ = correlator.correlate(feed.observations)
    let bytes = correlator.state.encoded()
    #expect(try CorrelatorState(encoded: bytes) == correlator.state)
    #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: Array(bytes.dropLast())) }
    #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: [9]) }
    #expect(throws: CorrelatorState.DecodingError.self) { try CorrelatorState(encoded: []) }
  }

  @Test func manyConcurrentConnectionsWithCollidingIDsAllJoinCorrectly() {
    // 400 connections from 4 clients, IDs drawn from a tiny space so they collide, PRE lines
    // all first, then POST lines in reverse order.
    var feed = Feed()
    var expected: [String] = []
    for i in 0..<400 {
      let client = "10.244.0.\(i % 4 + 1)"
      let port = UInt16(30000 + i)
      feed.add(base + Int64(i), .pre, client, port, "10.96.0.\(i % 5 + 1)", 80, id: UInt32(i % 7))
      expected.append("\(client):\(port)>10.96.0.\(i % 5 + 1):80>10.244.5.\(i % 9 + 1):8080")
    }
    for i in (0..<400).reversed() {
      feed.add(
        base + 400 + Int64(i), .post, "10.244.0.\(i % 4 + 1)", UInt16(30000 + i), "10.244.5.\(i % 9 + 1)", 8080,
        id: UInt32(i % 7))
    }
    var correlator = Correlator(node: node)
    let output = correlator.correlate(feed.observations)
    let got = output.connections.map {
      "\($0.client):\($0.clientPort)>\($0.service):\($0.servicePort)>\($0.pod.map { "\($0)" } ?? "?"):\($0.podPort.map { "\($0)" } ?? "?")"
    }
    #expect(got.sorted() == expected.sorted())
    #expect(output.stats.orphans == 0 && output.stats.duplicates == 0)
  }

  @Test func matchMethodNamesRoundTrip() {
    for method in MatchMethod.allCases { #expect(MatchMethod(name: method.description) == method) }
    #expect(MatchMethod(name: "nope") == nil)
  }
}

@Suite("Correlator: reused source ports")
struct CorrelatorPortReuseTests {
  @Test func aNewConnectionReusingTheSourcePortIsNotARetransmission() {
    // Given a connection to a Service, then 5 s later a new one from the same client port (a new
    // socket after TIME_WAIT: fresh random IP ID) that kube-proxy sends to another pod,
    let base: Int64 = 1_790_000_000_000_000
    var feed = Feed()
    feed.add(base, .pre, "10.250.0.250", 25896, "10.250.0.11", 30080, id: 1000)
    feed.add(base + 1, .post, "10.250.0.250", 25896, "10.244.2.10", 8080, id: 1000)
    feed.add(base + 5_000_000, .pre, "10.250.0.250", 25896, "10.250.0.11", 30080, id: 52_000)
    feed.add(base + 5_000_001, .post, "10.250.0.250", 25896, "10.244.3.10", 8080, id: 52_000)
    // and a real SYN retry of the second one (next ID of the same socket),
    feed.add(base + 6_000_000, .pre, "10.250.0.250", 25896, "10.250.0.11", 30080, id: 52_001)
    feed.add(base + 6_000_001, .post, "10.250.0.250", 25896, "10.244.3.10", 8080, id: 52_001)
    var correlator = Correlator(node: HostID("node1"))
    let output = correlator.correlate(feed.observations)
    // then there are two connections, each with its own pod, and the retry is folded.
    #expect(output.connections.map(\.pod) == [IPAddress("10.244.2.10"), IPAddress("10.244.3.10")])
    #expect(output.stats.duplicates == 2)
    #expect(Correlator.couldBeRetransmission(11, after: 10))
    #expect(Correlator.couldBeRetransmission(2, after: 65_534), "the 16-bit counter wraps")
    #expect(!Correlator.couldBeRetransmission(52_000, after: 1000))
    #expect(Correlator.couldBeRetransmission(nil, after: 1000))
  }
}

extension CorrelatorPortReuseTests {
  @Test func aReusedPortWhileThePreviousPreIsStillPendingIsANewConnection() {
    // Given two pre lines for the same client port and Service with unrelated IP IDs before
    // either post line arrives,
    let base: Int64 = 1_790_000_000_000_000
    var feed = Feed()
    feed.add(base, .pre, "10.244.2.10", 22978, "10.96.0.10", 80, id: 7)
    feed.add(base + 10, .pre, "10.244.2.10", 22978, "10.96.0.10", 80, id: 40_000)
    feed.add(base + 20, .post, "10.244.2.10", 22978, "10.244.2.10", 8080, id: 40_000)
    feed.add(base + 30, .post, "10.244.2.10", 22978, "10.244.1.10", 8080, id: 7)
    var correlator = Correlator(node: HostID("node2"))
    let output = correlator.correlate(feed.observations)
    // then each post joins its own pre by ID: two connections, nothing folded.
    #expect(output.connections.map(\.pod) == [IPAddress("10.244.2.10"), IPAddress("10.244.1.10")])
    #expect(output.connections.map(\.preID) == [2, 1])
    #expect(output.stats.duplicates == 0)
  }
}

@Suite("Correlator: a retried first packet DNATed again")
struct CorrelatorReDNATTests {
  let base: Int64 = 1_790_000_000_000_000

  /// The lines the kernel logged in a CI run: a pod's SYN to a ClusterIP was DNATed to the pod
  /// itself (hairpin) and lost before its conntrack entry was confirmed; the socket's retry 8 ms
  /// later (next IP ID) made a new entry, DNATed to web-2, which served the connection.
  func feedOfTheCIRun() -> Feed {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57408)
    feed.add(base + 2, .post, "10.244.1.10", 37535, "10.244.1.10", 8080, id: 57408)
    feed.add(base + 7_995, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57409)
    feed.add(base + 7_998, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 57409)
    return feed
  }

  @Test func theRetrysDNATNamesThePodInOneBatch() {
    var correlator = Correlator(node: HostID("node1"))
    let output = correlator.correlate(feedOfTheCIRun().observations)
    #expect(output.connections.count == 1)
    let connection = output.connections[0]
    #expect(connection.pod == IPAddress("10.244.2.10") && connection.podPort == 8080)
    #expect(connection.preID == 1 && connection.postID == 4 && connection.method == .reDNAT)
    #expect(connection.timeMicros == base, "the connection starts with the first attempt")
    #expect(output.redispatches.isEmpty)
    #expect(output.stats.redispatched == 1)
    // The first attempt's post line and the retry's pre line are duplicates; the last word wins.
    var last: [Int64: ObservationOutcome] = [:]
    for (id, outcome) in output.outcomes { last[id] = outcome }
    #expect(last == [1: .matched, 2: .duplicate, 3: .duplicate, 4: .matched])
  }

  @Test func theRetryInALaterBatchRedispatchesTheStoredConnection() throws {
    let observations = feedOfTheCIRun().observations
    var first = Correlator(node: HostID("node1"))
    let before = first.correlate(observations.prefix(2))
    #expect(before.connections.map(\.pod) == [IPAddress("10.244.1.10")])
    var second = Correlator(node: HostID("node1"), state: try CorrelatorState(encoded: first.state.encoded()))
    let after = second.correlate(observations.suffix(2))
    #expect(after.connections.isEmpty)
    #expect(
      after.redispatches == [
        Redispatch(
          preID: 1, client: IPAddress("10.244.1.10")!, clientPort: 37535, pod: IPAddress("10.244.2.10")!, podPort: 8080,
          postID: 4)
      ])
  }

  @Test func bothPreLinesBeforeEitherPostStillEndOnTheRetrysPod() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57408)
    feed.add(base + 7_995, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 57409)
    feed.add(base + 7_996, .post, "10.244.1.10", 37535, "10.244.1.10", 8080, id: 57408)
    feed.add(base + 7_998, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 57409)
    var correlator = Correlator(node: HostID("node1"))
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.map(\.pod) == [IPAddress("10.244.2.10")])
    #expect(output.connections.map(\.postID) == [4])
    #expect(output.connections.map(\.method) == [.reDNAT])
  }

  @Test func aRetryDNATedToTheSamePodChangesNothing() {
    var feed = Feed()
    feed.add(base, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 100)
    feed.add(base + 2, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 100)
    feed.add(base + 1_000_000, .pre, "10.244.1.10", 37535, "10.96.0.10", 80, id: 101)
    feed.add(base + 1_000_002, .post, "10.244.1.10", 37535, "10.244.2.10", 8080, id: 101)
    var correlator = Correlator(node: HostID("node1"))
    let output = correlator.correlate(feed.observations)
    #expect(output.connections.map(\.method) == [.exactID])
    #expect(output.connections.map(\.postID) == [2])
    #expect(output.stats.redispatched == 0 && output.stats.duplicates == 2)
  }
}

@Suite("Correlator: bounded pending lines")
struct CorrelatorBoundTests {
  let base: Int64 = 1_780_000_000_000_000

  /// One pod scanning from one source port: 100,000 pre lines of one (proto, source, port), each
  /// to another destination, then the post lines of the newest few. Each line looks at no more
  /// than the kept pending lines of its key, the oldest beyond the cap are dropped (expired), and
  /// the newest still match on their IP ID.
  @Test func aScanFromOneSourcePortCostsLinearWork() {
    let settings = CorrelationSettings()
    let count = 100_000
    var observations: [Observation] = []
    observations.reserveCapacity(count + 10)
    func destination(_ index: Int) -> IPAddress { IPAddress(ipv4: 0x0A60_0000 + UInt32(index)) }
    for index in 0..<count {
      let line = PacketLine(
        timeMicros: base + Int64(index), stage: .pre, source: IPAddress("10.244.1.5")!, destination: destination(index),
        proto: 6, sourcePort: 40000, destinationPort: 80, ipID: UInt32(index % 60_000 + 1), length: 60)
      observations.append(Observation(id: Int64(index + 1), line: line, clockOffsetMicros: 0))
    }
    // The posts of the 10 newest pre lines, newest first.
    let matched = (count - 10..<count).reversed()
    for index in matched {
      let line = PacketLine(
        timeMicros: base + Int64(count), stage: .post, source: IPAddress("10.244.1.5")!,
        destination: IPAddress(ipv4: 0x0AF4_0000 + UInt32(index % 65_536)), proto: 6, sourcePort: 40000,
        destinationPort: 8080, ipID: UInt32(index % 60_000 + 1), length: 60)
      observations.append(Observation(id: Int64(observations.count + 1), line: line, clockOffsetMicros: 0))
    }
    var correlator = Correlator(node: HostID("node1"), settings: settings)
    let output = correlator.correlate(observations)

    #expect(output.connections.map(\.preID) == matched.map { Int64($0 + 1) })
    #expect(output.connections.allSatisfy { $0.method == .exactID })
    #expect(output.connections.map(\.service) == matched.map(destination))
    let kept = settings.maxPendingPerKey
    #expect(output.stats.dropped == count - kept)
    #expect(output.stats.pending == kept - matched.count)
    #expect(correlator.state.pendingIDs == (count - kept + 1...count - matched.count).map(Int64.init))
    let expired = Set(output.outcomes.filter { $0.outcome == .expired }.map(\.id))
    #expect(expired == Set((1...count - kept).map(Int64.init)))
    // Linear: each line looks at most at the kept lines of its key (quadratic would be ~5·10⁹).
    #expect(correlator.pendingVisits <= observations.count * (kept + 1), "\(correlator.pendingVisits)")
    #expect(correlator.pendingVisits >= (count - kept) * (kept - 1), "\(correlator.pendingVisits)")
  }

  @Test func theCapKeepsTheNewestLinesOfAKey() {
    var feed = Feed()
    for index in 0..<5 {
      feed.add(base + Int64(index), .pre, "10.244.1.5", 40000, "10.96.0.\(index + 1)", 80, id: UInt32(index + 1))
    }
    feed.add(base + 10, .post, "10.244.1.5", 40000, "10.244.2.1", 8080, id: 1)
    feed.add(base + 11, .post, "10.244.1.5", 40000, "10.244.2.5", 8080, id: 5)
    var correlator = Correlator(node: HostID("node1"), settings: CorrelationSettings(maxPendingPerKey: 3))
    let output = correlator.correlate(feed.take())
    #expect(output.stats.dropped == 2)
    // Lines 1 and 2 were dropped: the post with IP ID 1 takes the oldest kept line, 3.
    #expect(output.connections.map(\.preID) == [3, 5])
    #expect(output.connections.map(\.method) == [.sourcePortWindow, .exactID])
    #expect(correlator.state.pendingIDs == [4])
    #expect(output.outcomes.prefix(2).map(\.outcome) == [.pending, .pending])
    #expect(output.outcomes.filter { $0.outcome == .expired }.map(\.id) == [1, 2])
  }
}
