#if canImport(Glibc)
  import Glibc
#endif

/// Tunes glibc's allocator for bulk ingest (collect, and `svctrace-bench ingest` through package access).
///
/// Each batch allocates arrays of several MiB (the pulled bytes, parsed lines, correlation
/// output) and frees them a moment later. Past glibc's mmap threshold every such array is a
/// fresh mapping whose pages the kernel faults in and zeroes, then unmaps again: measured at a
/// third of the ingest's page faults. Raising the threshold to its maximum (32 MiB on 64-bit)
/// and keeping freed memory for reuse (trim threshold 512 MiB) recycles those pages. The
/// process's peak memory is the same; it just does not hand pages back between batches.
package enum MallocTuning {
  /// Applies the tuning once per process; a no-op where `mallopt` is unavailable.
  package static func forBulkIngest() {
    #if canImport(Glibc)
      typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
      // `mallopt` is in <malloc.h>, which the Glibc module does not import.
      guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
      let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
      let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
      let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
      _ = mallopt(mmapThreshold, 32 << 20)
      _ = mallopt(trimThreshold, 512 << 20)
    #endif
  }
}
