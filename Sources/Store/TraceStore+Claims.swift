import Foundation
import GRDB
public import SVCTraceCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// One collect's claim on a node (see ``TraceStoring/claimCollect(node:)``): held until
/// ``release()``, the claim's end, or the process's.
public final class CollectClaim: Sendable {
  private let onRelease: Mutex<(@Sendable () -> Void)?>

  init(onRelease: @escaping @Sendable () -> Void) {
    self.onRelease = Mutex(onRelease)
  }

  /// Lets another collect claim the node (once; later calls do nothing).
  public func release() {
    let action = onRelease.withLock { action in
      defer { action = nil }
      return action
    }
    action?()
  }

  deinit { release() }
}

extension TraceStore {
  /// Claims `node` for one collect run: `nil` while another collect holds it, in this process or
  /// another (an exclusive `flock` on `<store>.locks/<node>`; in memory, a set of this store's
  /// claimed nodes).
  ///
  /// - Throws: ``StoreError`` when the lock file cannot be created or locked.
  public func claimCollect(node: HostID) async throws -> CollectClaim? {
    guard rawSegments != nil else {
      let inserted = memoryClaims.withLock { $0.insert(node.name).inserted }
      guard inserted else { return nil }
      return CollectClaim { [self] in _ = memoryClaims.withLock { $0.remove(node.name) } }
    }
    let directory = dbWriter.path + ".locks"
    let operation = "claim \(node) for a collect"
    if mkdir(directory, 0o700) != 0, errno != EEXIST {
      throw StoreError(operation: operation, errno: errno)
    }
    let path = (directory as NSString).appendingPathComponent(Self.lockFileName(node))
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw StoreError(operation: operation, errno: errno) }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      let code = errno
      close(descriptor)
      if code == EWOULDBLOCK { return nil }
      throw StoreError(operation: operation, errno: code)
    }
    return CollectClaim { close(descriptor) }
  }

  /// The lock file of `node`: its name when that is a plain file name, else its bytes in hex.
  static func lockFileName(_ node: HostID) -> String {
    let plain = node.name.utf8.allSatisfy {
      ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D
        || $0 == 0x5F || $0 == 0x2E
    }
    if plain, !node.name.isEmpty, !node.name.hasPrefix(".") { return node.name }
    return "x-" + node.name.utf8.map { String(format: "%02x", $0) }.joined()
  }
}
