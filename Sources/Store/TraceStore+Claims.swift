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

  package init(onRelease: @escaping @Sendable () -> Void) {
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

/// The lock files this process holds a claim on (see ``TraceStore/claimCollect(node:)``).
private let processClaims = Mutex<Set<String>>([])

extension TraceStore {
  /// Claims `node` for one collect run: `nil` while another collect holds it, in this process or
  /// another (an exclusive `fcntl` lock on `<store>.locks/<node>`, with this process's own claims
  /// in a set beside it; in memory, only that set).
  ///
  /// A POSIX record lock belongs to the process: a child forked meanwhile (kubectl, a test's
  /// shell) does not inherit it, so it ends exactly with ``CollectClaim/release()``.
  ///
  /// - Throws: ``StoreError`` when the lock file cannot be created or locked.
  public func claimCollect(node: HostID) async throws -> CollectClaim? {
    guard rawSegments != nil else {
      let inserted = memoryClaims.withLock { $0.insert(node.name).inserted }
      guard inserted else { return nil }
      return CollectClaim { [self] in _ = memoryClaims.withLock { $0.remove(node.name) } }
    }
    let operation = "claim \(node) for a collect"
    let directory = URL(fileURLWithPath: dbWriter.path + ".locks").standardizedFileURL.path
    if mkdir(directory, 0o700) != 0, errno != EEXIST {
      throw StoreError(operation: operation, errno: errno)
    }
    let path = (directory as NSString).appendingPathComponent(Self.lockFileName(node))
    // First among this process's claims (a second fcntl lock of the process would succeed, and
    // closing a second descriptor of the file would drop the first's lock).
    guard processClaims.withLock({ $0.insert(path).inserted }) else { return nil }
    let unclaim = { @Sendable in _ = processClaims.withLock { $0.remove(path) } }
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      let code = errno
      unclaim()
      throw StoreError(operation: operation, errno: code)
    }
    var lock = flock()
    lock.l_type = Int16(F_WRLCK)
    lock.l_whence = Int16(SEEK_SET)
    guard fcntl(descriptor, F_SETLK, &lock) == 0 else {
      let code = errno
      close(descriptor)
      unclaim()
      if code == EAGAIN || code == EACCES { return nil }
      throw StoreError(operation: operation, errno: code)
    }
    return CollectClaim {
      close(descriptor)
      unclaim()
    }
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
