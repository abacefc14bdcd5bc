import Foundation
import Logs

/// The correlator state each node's last commit stored, kept decoded in memory so that the next
/// commit skips decoding it (a busy node's state holds every connection of the last half
/// minute of log time: megabytes, decoded once per batch otherwise).
///
/// An entry is used only when its encoded bytes equal what the database holds, so a commit by
/// another process, a failed transaction or a rolled-back one can never make the store use
/// stale state; entries are recorded only after their transaction committed.
final class CorrelatorStateCache: @unchecked Sendable {
  /// A node's state as committed.
  struct Entry {
    var nodeID: Int64
    var encoded: [UInt8]
    var state: CorrelatorState
  }

  private let lock = NSLock()
  private var entries: [Int64: Entry] = [:]

  /// The decoded form of `stored` for `nodeID` when it is the one cached. The entry leaves the
  /// cache (the caller mutates the state in place, without a copy; its commit records the next).
  func take(nodeID: Int64, stored: Data) -> CorrelatorState? {
    lock.lock()
    defer { lock.unlock() }
    guard let entry = entries.removeValue(forKey: nodeID), entry.encoded.count == stored.count else { return nil }
    let same = entry.encoded.withUnsafeBytes { cached in
      stored.withUnsafeBytes { bytes in
        guard let left = cached.baseAddress, let right = bytes.baseAddress else { return cached.count == bytes.count }
        return memcmp(left, right, bytes.count) == 0
      }
    }
    return same ? entry.state : nil
  }

  /// Records the state a committed transaction stored.
  func record(_ entry: Entry) {
    lock.lock()
    defer { lock.unlock() }
    entries[entry.nodeID] = entry
  }
}
