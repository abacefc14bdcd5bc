import SVCTraceCore

/// The join key: (protocol, source address, source port), which NAT leaves alone before SNAT. The node is implicit: one
/// correlator instance serves one node.
struct CorrelationKey: Hashable {
  var proto: UInt8
  var source: IPAddress
  var sourcePort: UInt16

  /// One 64-bit value fed to the hasher instead of four (equality still compares every field).
  func hash(into hasher: inout Hasher) {
    hasher.combine(CorrelatorState.hash(source.high, source.low, sourcePort, proto))
  }
}

/// A pre line waiting for its post line (the value view of one pending entry).
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

/// A record in the pool of ``CorrelatorState`` (no references: the pool is plain memory): a
/// pending pre line, chained to the next line of its key through ``next`` in arrival order, or,
/// once matched, its key's recent match. A match turns the pre line's record (just read, so in
/// cache) into the recent match in place: `timeMicros` becomes the match's time, `destination`
/// the service, `ipID` the last IP ID, `id` the pre line id.
struct PendingNode: Sendable {
  var id: Int64
  var timeMicros: Int64
  var lastSeenMicros: Int64
  var clockOffsetMicros: Int64
  var destination: IPAddress
  var destinationPort: UInt16
  var length: UInt16
  var ipID: UInt32?
  /// Index of the line's retransmitted IP IDs in ``CorrelatorState/retransmitLists``, −1 for none.
  var retransmits: Int32
  /// The next line of the same key, −1 at the end.
  var next: Int32
  /// Fields of a recent match.
  var pod = IPAddress(high: 0, low: 0)
  var podPort: UInt16 = 0
  var hasPreID = false
  var hasPostID = false
  var postID: Int64 = 0
  var expectedPosts = 0
  /// Where this pass emitted the match's connection (valid while ``emittedPass`` is the state's
  /// current pass; never persisted).
  var emittedIndex: Int32 = -1
  var emittedPass: UInt64 = 0
}

/// One slot of the open-addressing table (48 bytes): the key, its pending lines (a chain in the
/// node pool) and its recent match (an index into the recent pool), with the times that decide
/// expiry so that expiring reads the slots only. Entries of both pools stay put when slots move.
struct CorrelationSlot: Sendable {
  var sourceHigh: UInt64 = 0
  var sourceLow: UInt64 = 0
  /// A lower bound of the pending lines' last-seen times (`.max` when none).
  var pendingMin: Int64 = .max
  /// The recent match's time (its ``RecentMatch/timeMicros``, kept here as well).
  var recentTime: Int64 = .max
  var sourcePort: UInt16 = 0
  var proto: UInt8 = 0
  var isUsed = false
  /// First and last pending line (pool indices), −1 when none.
  var pendingHead: Int32 = -1
  var pendingTail: Int32 = -1
  /// The recent match (index in ``CorrelatorState/pool``), −1 when none.
  var recent: Int32 = -1

  var hasRecent: Bool { recent >= 0 }

  var key: CorrelationKey {
    CorrelationKey(proto: proto, source: IPAddress(high: sourceHigh, low: sourceLow), sourcePort: sourcePort)
  }
}

/// The state a ``Correlator`` carries from one batch to the next (pending pre lines, recent
/// matches, the newest time seen). Persist it with ``encoded()`` and restore with
/// ``init(encoded:)``.
///
/// One open-addressing hash table (linear probing, power-of-two capacity, load ≤ 0.7,
/// backward-shift deletion) maps each (proto, source, source port) key to its pending pre lines
/// and its recent match, so a line costs one probe. Pending lines live in a pool of nodes
/// chained per key, reused through a free list. Equality compares the contents, not the layout.
public struct CorrelatorState: Sendable, Equatable {
  var slots: [CorrelationSlot] = []
  /// Used slots.
  private(set) var count = 0
  var pool: [PendingNode] = []
  /// Free records of the pool (a stack: freeing touches no record).
  var freeNodes: [Int32] = []
  /// Retransmitted IP IDs of pending lines that have any (rare); freed lists are reused.
  var retransmitLists: [[UInt32]] = []
  var freeRetransmitLists: [Int32] = []
  /// Number of pending lines.
  private(set) var pendingCount = 0
  /// Counts ``Correlator/correlate(_:)`` calls (tells this pass's emitted connections apart).
  var pass: UInt64 = 0
  /// The newest line time seen on this node (node clock, µs).
  public internal(set) var watermarkMicros: Int64 = .min

  static let minimumCapacity = 64

  public init() {}

  /// Identifiers of the pre lines still pending.
  public var pendingIDs: [Int64] {
    var ids: [Int64] = []
    ids.reserveCapacity(pendingCount)
    for slot in slots.indices where slots[slot].isUsed {
      var node = slots[slot].pendingHead
      while node >= 0 {
        ids.append(pool[Int(node)].id)
        node = pool[Int(node)].next
      }
    }
    return ids.sorted()
  }

  /// Same watermark, and per key the same pending lines in the same order and the same recent
  /// match (whatever the slots, pool indices or capacity).
  public static func == (lhs: CorrelatorState, rhs: CorrelatorState) -> Bool {
    guard lhs.watermarkMicros == rhs.watermarkMicros, lhs.count == rhs.count, lhs.pendingCount == rhs.pendingCount
    else { return false }
    for slot in lhs.slots.indices where lhs.slots[slot].isUsed {
      let other = rhs.find(lhs.slots[slot].key)
      guard other >= 0, lhs.pendingList(slot) == rhs.pendingList(other), lhs.recent(slot) == rhs.recent(other)
      else { return false }
    }
    return true
  }

  // MARK: Hashing and probing

  /// A multiply–xorshift hash of the key's fields (no per-process seed: the layout, and so the
  /// encoding, depends only on the sequence of operations).
  @inline(__always)
  static func hash(_ high: UInt64, _ low: UInt64, _ port: UInt16, _ proto: UInt8) -> UInt64 {
    var h = (low ^ UInt64(port) << 48 ^ UInt64(proto) << 40) &* 0x9E37_79B9_7F4A_7C15
    h ^= high &* 0xC2B2_AE3D_27D4_EB4F
    h ^= h >> 32
    h &*= 0xD6E8_FEB8_6659_FD93
    h ^= h >> 29
    return h
  }

  /// The slot a key hashes to.
  @inline(__always)
  func home(_ high: UInt64, _ low: UInt64, _ port: UInt16, _ proto: UInt8) -> Int {
    Int(truncatingIfNeeded: Self.hash(high, low, port, proto)) & (slots.count - 1)
  }

  /// The slot holding `key`, or −1.
  func find(_ key: CorrelationKey) -> Int {
    guard !slots.isEmpty else { return -1 }
    let (high, low, port, proto) = (key.source.high, key.source.low, key.sourcePort, key.proto)
    return slots.withUnsafeBufferPointer { buffer in
      let mask = buffer.count - 1
      var index = home(high, low, port, proto)
      while true {
        let slot = buffer[index]
        if !slot.isUsed { return -1 }
        if slot.sourceLow == low && slot.sourcePort == port && slot.sourceHigh == high && slot.proto == proto {
          return index
        }
        index = (index + 1) & mask
      }
    }
  }

  /// Adds `key`, known to be absent, and returns its slot (growing the table first if needed).
  mutating func insert(_ key: CorrelationKey) -> Int {
    if (count + 1) * 10 > slots.count * 7 { resize(to: max(Self.minimumCapacity, slots.count * 2)) }
    let mask = slots.count - 1
    var index = home(key.source.high, key.source.low, key.sourcePort, key.proto)
    while slots[index].isUsed { index = (index + 1) & mask }
    slots[index].sourceHigh = key.source.high
    slots[index].sourceLow = key.source.low
    slots[index].sourcePort = key.sourcePort
    slots[index].proto = key.proto
    slots[index].isUsed = true
    count += 1
    return index
  }

  /// Frees a slot whose pending chain is empty, shifting back the entries whose probe chain ran
  /// through it (no tombstones). Entries move only to lower slots, except across the wrap.
  mutating func remove(at index: Int) {
    let mask = slots.count - 1
    var hole = index
    var next = index
    while true {
      next = (next + 1) & mask
      let moving = slots[next]
      if !moving.isUsed { break }
      let natural = home(moving.sourceHigh, moving.sourceLow, moving.sourcePort, moving.proto)
      // `moving` may fill the hole when the hole lies on its probe path (natural … next).
      if (next &- natural) & mask >= (next &- hole) & mask {
        slots[hole] = moving
        hole = next
      }
    }
    slots[hole] = CorrelationSlot()
    count -= 1
  }

  /// Rebuilds the table with `capacity` slots (a power of two), keeping every entry.
  mutating func resize(to capacity: Int) {
    let old = slots
    slots = [CorrelationSlot](repeating: CorrelationSlot(), count: capacity)
    let mask = capacity - 1
    for slot in old where slot.isUsed {
      var index = home(slot.sourceHigh, slot.sourceLow, slot.sourcePort, slot.proto)
      while slots[index].isUsed { index = (index + 1) & mask }
      slots[index] = slot
    }
  }

  /// Shrinks a table left nearly empty (after a burst expired) to a load of at most 0.35.
  mutating func shrinkIfSparse() {
    guard slots.count > Self.minimumCapacity, count * 16 < slots.count else { return }
    resize(to: Self.capacity(for: count, load: 0.35))
  }

  /// The smallest power-of-two capacity (at least the minimum) holding `count` entries at `load`.
  static func capacity(for count: Int, load: Double) -> Int {
    var capacity = minimumCapacity
    while Double(count) > Double(capacity) * load { capacity *= 2 }
    return capacity
  }

  // MARK: Pending lines

  /// Appends a pending line to the end of `slot`'s chain.
  mutating func appendPending(_ node: PendingNode, to slot: Int) {
    var node = node
    node.next = -1
    let index = allocate(node)
    let tail = slots[slot].pendingTail
    if tail >= 0 { pool[Int(tail)].next = index } else { slots[slot].pendingHead = index }
    slots[slot].pendingTail = index
    if node.lastSeenMicros < slots[slot].pendingMin { slots[slot].pendingMin = node.lastSeenMicros }
    pendingCount += 1
  }

  /// Stores a record in a free place of the pool.
  @inline(__always)
  mutating func allocate(_ node: PendingNode) -> Int32 {
    if let index = freeNodes.popLast() {
      pool[Int(index)] = node
      return index
    }
    pool.append(node)
    return Int32(truncatingIfNeeded: pool.count - 1)
  }

  /// Unlinks pending line `node` (preceded by `previous`, −1 for the head) from `slot`'s chain
  /// and returns it to the free list with its retransmitted IDs.
  mutating func unlinkPending(_ node: Int32, previous: Int32, in slot: Int) {
    detachPending(node, previous: previous, in: slot)
    freeNodes.append(node)
  }

  /// Unlinks pending line `node` like ``unlinkPending(_:previous:in:)`` but keeps its record.
  mutating func detachPending(_ node: Int32, previous: Int32, in slot: Int) {
    let next = pool[Int(node)].next
    if previous >= 0 { pool[Int(previous)].next = next } else { slots[slot].pendingHead = next }
    if slots[slot].pendingTail == node { slots[slot].pendingTail = previous }
    let list = pool[Int(node)].retransmits
    if list >= 0 {
      retransmitLists[Int(list)] = []
      freeRetransmitLists.append(list)
    }
    pool[Int(node)].retransmits = -1
    pendingCount -= 1
  }

  /// The retransmitted IP IDs folded into a pending line.
  func retransmitIDs(of node: PendingNode) -> [UInt32] {
    node.retransmits >= 0 ? retransmitLists[Int(node.retransmits)] : []
  }

  /// The newest retransmitted IP ID folded into a pending line.
  @inline(__always)
  func lastRetransmitID(of node: PendingNode) -> UInt32? {
    node.retransmits >= 0 ? retransmitLists[Int(node.retransmits)].last : nil
  }

  /// Records a retransmitted IP ID on pending line `node`.
  mutating func appendRetransmitID(_ id: UInt32, to node: Int32) {
    let list = pool[Int(node)].retransmits
    if list >= 0 {
      retransmitLists[Int(list)].append(id)
    } else if let reused = freeRetransmitLists.popLast() {
      retransmitLists[Int(reused)] = [id]
      pool[Int(node)].retransmits = reused
    } else {
      pool[Int(node)].retransmits = Int32(truncatingIfNeeded: retransmitLists.count)
      retransmitLists.append([id])
    }
  }

  /// Number of retransmitted IDs kept over all pending lines.
  var retransmitIDCount: Int { retransmitLists.reduce(0) { $0 + $1.count } }

  /// Adds a pending line given as a value (decoding, tests).
  mutating func appendPending(_ pre: PendingPre, to slot: Int) {
    appendPending(
      PendingNode(
        id: pre.id, timeMicros: pre.timeMicros, lastSeenMicros: pre.lastSeenMicros,
        clockOffsetMicros: pre.clockOffsetMicros, destination: pre.destination, destinationPort: pre.destinationPort,
        length: pre.length, ipID: pre.ipID, retransmits: -1, next: -1), to: slot)
    let node = slots[slot].pendingTail
    for id in pre.retransmitIDs { appendRetransmitID(id, to: node) }
  }

  /// The pending lines of `slot`, earliest first.
  func pendingList(_ slot: Int) -> [PendingPre] {
    var list: [PendingPre] = []
    var index = slots[slot].pendingHead
    while index >= 0 {
      let node = pool[Int(index)]
      list.append(
        PendingPre(
          id: node.id, timeMicros: node.timeMicros, lastSeenMicros: node.lastSeenMicros,
          clockOffsetMicros: node.clockOffsetMicros, destination: node.destination,
          destinationPort: node.destinationPort, ipID: node.ipID, length: node.length,
          retransmitIDs: retransmitIDs(of: node)))
      index = node.next
    }
    return list
  }

  // MARK: Recent matches

  /// The recent match kept in record `index`.
  func recentMatch(at index: Int) -> RecentMatch { Self.recentMatch(of: pool[index]) }

  /// The recent match kept in `record`.
  static func recentMatch(of record: PendingNode) -> RecentMatch {
    RecentMatch(
      timeMicros: record.timeMicros, service: record.destination, servicePort: record.destinationPort,
      pod: record.pod, podPort: record.podPort, expectedPosts: record.expectedPosts, lastIPID: record.ipID,
      preID: record.hasPreID ? record.id : nil, postID: record.hasPostID ? record.postID : nil)
  }

  /// The recent match of `slot`, if any.
  func recent(_ slot: Int) -> RecentMatch? {
    let index = slots[slot].recent
    return index >= 0 ? recentMatch(at: Int(index)) : nil
  }

  /// Sets the recent match of `slot` from a value (decoding, tests).
  mutating func setRecent(_ match: RecentMatch, in slot: Int) {
    clearRecent(in: slot)
    let record = PendingNode(
      id: match.preID ?? 0, timeMicros: match.timeMicros, lastSeenMicros: match.timeMicros, clockOffsetMicros: 0,
      destination: match.service, destinationPort: match.servicePort, length: 0, ipID: match.lastIPID,
      retransmits: -1, next: -1, pod: match.pod, podPort: match.podPort, hasPreID: match.preID != nil,
      hasPostID: match.postID != nil, postID: match.postID ?? 0, expectedPosts: match.expectedPosts)
    slots[slot].recent = allocate(record)
    slots[slot].recentTime = match.timeMicros
  }

  /// Turns pending line `node`, already detached from `slot`'s chain, into `slot`'s recent match
  /// (replacing the previous one), in place.
  mutating func promoteToRecent(
    _ node: Int32, in slot: Int, timeMicros: Int64, lastIPID: UInt32?, expectedPosts: Int, pod: IPAddress,
    podPort: UInt16, postID: Int64, emittedIndex: Int32
  ) {
    clearRecent(in: slot)
    let index = Int(node)
    pool[index].timeMicros = timeMicros
    pool[index].ipID = lastIPID
    pool[index].expectedPosts = expectedPosts
    pool[index].pod = pod
    pool[index].podPort = podPort
    pool[index].hasPreID = true
    pool[index].hasPostID = true
    pool[index].postID = postID
    pool[index].emittedIndex = emittedIndex
    pool[index].emittedPass = pass
    slots[slot].recent = node
    slots[slot].recentTime = timeMicros
  }

  /// Drops the recent match of `slot`.
  mutating func clearRecent(in slot: Int) {
    let index = slots[slot].recent
    guard index >= 0 else { return }
    freeNodes.append(index)
    slots[slot].recent = -1
    slots[slot].recentTime = .max
  }

  // MARK: Views

  /// The slots in use in probe order: starting after a free slot, so that inserting the keys in
  /// this order into an empty table of the same capacity puts each in the same slot.
  var usedSlotsInProbeOrder: [Int] {
    guard count > 0 else { return [] }
    let mask = slots.count - 1
    var start = 0
    while slots[start].isUsed { start += 1 }
    var order: [Int] = []
    order.reserveCapacity(count)
    for step in 1...slots.count {
      let index = (start + step) & mask
      if slots[index].isUsed { order.append(index) }
    }
    return order
  }

  /// The slot of `key`, inserting it when absent (decoding, tests).
  mutating func slot(for key: CorrelationKey) -> Int {
    let found = find(key)
    return found >= 0 ? found : insert(key)
  }

  /// The pending lines per key (tests, older encodings).
  var pendingByKey: [CorrelationKey: [PendingPre]] {
    var result: [CorrelationKey: [PendingPre]] = [:]
    for slot in slots.indices where slots[slot].isUsed && slots[slot].pendingHead >= 0 {
      result[slots[slot].key] = pendingList(slot)
    }
    return result
  }

  /// The recent matches per key (tests).
  var recentByKey: [CorrelationKey: RecentMatch] {
    var result: [CorrelationKey: RecentMatch] = [:]
    for slot in slots.indices where slots[slot].isUsed && slots[slot].hasRecent {
      result[slots[slot].key] = recentMatch(at: Int(slots[slot].recent))
    }
    return result
  }
}
