import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// What the benchmarks read of their own process and its waited-for children: memory (`getrusage`,
/// `/proc/self/statm`) and CPU time.
public enum ResourceUsage {
  /// Current resident set size in KiB, from `/proc/self/statm` (0 where unavailable).
  public static func currentRSSKiB() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
  }

  /// Peak resident set size of this process in KiB (`ru_maxrss`).
  public static func peakRSSKiB() -> Int {
    usage(of: .process).map { Int($0.ru_maxrss) } ?? 0
  }

  /// The largest peak resident set size (KiB) of the child processes waited for so far, their
  /// own waited-for descendants included (`RUSAGE_CHILDREN` `ru_maxrss`).
  public static func childrenPeakRSSKiB() -> Int {
    usage(of: .children).map { Int($0.ru_maxrss) } ?? 0
  }

  /// User + system CPU seconds of the whole process so far (all threads).
  public static func processCPUSeconds() -> Double {
    usage(of: .process).map(cpuSeconds) ?? 0
  }

  /// User + system CPU seconds of the child processes waited for so far, their own waited-for
  /// descendants included (`RUSAGE_CHILDREN`): the difference around one waited-for child is
  /// what it and its descendants used.
  public static func childrenCPUSeconds() -> Double {
    usage(of: .children).map(cpuSeconds) ?? 0
  }

  /// CPU seconds of the calling thread, or of the process where per-thread figures are
  /// unavailable.
  public static func threadCPUSeconds() -> Double {
    usage(of: .thread).map(cpuSeconds) ?? 0
  }

  private enum Who { case process, thread, children }

  /// User + system seconds of `usage`.
  private static func cpuSeconds(_ usage: rusage) -> Double {
    Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
      + Double(usage.ru_stime.tv_usec) / 1e6
  }

  /// `getrusage` of the process, the calling thread (where the system has it) or the children.
  private static func usage(of who: Who) -> rusage? {
    var usage = rusage()
    #if os(Linux)
      let code: Int32
      switch who {
      case .process: code = RUSAGE_SELF.rawValue
      case .thread: code = 1  // RUSAGE_THREAD (Linux ≥ 2.6.26), not imported by Glibc
      case .children: code = RUSAGE_CHILDREN.rawValue
      }
      return getrusage(code, &usage) == 0 ? usage : nil
    #else
      return getrusage(who == .children ? RUSAGE_CHILDREN : RUSAGE_SELF, &usage) == 0 ? usage : nil
    #endif
  }
}
