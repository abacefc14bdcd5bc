import Foundation
import LogGeneration
public import Logs
import SVCTraceCore
import Subprocess
import SystemPackage

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Figures of one ``IngestBenchmark`` run (parse-only leg and the awk reference).
public struct IngestFigures: Sendable, Codable, Equatable {
  /// Lines generated over all node files.
  public var lines: Int
  /// Node files generated.
  public var nodes: Int
  /// Bytes over all node files.
  public var bytes: Int
  /// Wall time to generate the files.
  public var generateSeconds: Double
  /// Wall time of the streaming parse (1 MiB reads → LineSplitter → PacketLineParser).
  public var parseSeconds: Double
  /// User + system CPU time of the parse (one thread).
  public var parseCPUSeconds: Double
  /// Lines the parser accepted.
  public var parsedLines: Int
  /// Lines the parser skipped (noise, garbled).
  public var skippedLines: Int
  /// Lines the generator wrote as packet lines (what `parsedLines` must equal).
  public var expectedPacketLines: Int
  /// Parse throughput in lines per wall-clock second.
  public var linesPerSecond: Double
  /// Parse throughput in MB (10⁶ bytes) per wall-clock second.
  public var megabytesPerSecond: Double
  /// Parse throughput per CPU second of the parsing thread (robust on a loaded machine).
  public var linesPerCPUSecond: Double
  /// Resident set size (KiB) after half of the bytes were parsed.
  public var rssAtHalfKiB: Int
  /// Resident set size (KiB) at the end of the parse.
  public var rssAtEndKiB: Int
  /// Peak resident set size of the process (KiB, `getrusage` `ru_maxrss`) after the run.
  public var peakRSSKiB: Int
  /// The process's peak RSS before the run started (its baseline: runtime, test harness …).
  public var peakRSSBeforeKiB: Int
  /// Wall times of every parse run (the figures above are the fastest run's).
  public var parseRunSeconds: [Double] = []
  /// Wall times of every awk run (``awkSeconds`` is the fastest).
  public var awkRunSeconds: [Double] = []
  /// The awk used for the reference join.
  public var awkCommand: String
  /// Wall time of the awk join; nil when awk could not run.
  public var awkSeconds: Double?
  /// Records the awk join printed (one per PRE/POST pair it matched).
  public var awkJoinedRecords: Int?
  /// Why the awk leg failed, when it did.
  public var awkError: String?

  /// How many times faster the parse is than the awk join (`awkSeconds / parseSeconds`, wall).
  public var speedupOverAwk: Double?

  /// A small human-readable table of the figures.
  public func report() -> String {
    func fixed(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
    let mib = Double(bytes) / 1_048_576
    var rows: [(String, String)] = [
      ("input", "\(lines) lines, \(nodes) node files, \(fixed(mib, 1)) MiB (generated in \(fixed(generateSeconds)) s)"),
      (
        "parse",
        "\(fixed(parseSeconds, 3)) s wall, \(fixed(parseCPUSeconds, 3)) s CPU, 1 thread"
          + Self.runs(parseRunSeconds)
      ),
      ("throughput", "\(fixed(linesPerSecond / 1_000_000, 2)) M lines/s, \(fixed(megabytesPerSecond, 1)) MB/s (wall)"),
      ("per CPU s", "\(fixed(linesPerCPUSecond / 1_000_000, 2)) M lines/s"),
      ("lines", "\(parsedLines) parsed (expected \(expectedPacketLines)), \(skippedLines) skipped"),
      (
        "memory",
        "RSS \(rssAtHalfKiB / 1024) MiB at ½, \(rssAtEndKiB / 1024) MiB at end of parse; process peak "
          + "\(peakRSSKiB / 1024) MiB (\(peakRSSBeforeKiB / 1024) MiB before the run)"
      ),
    ]
    if let awkSeconds, let speedup = speedupOverAwk {
      rows.append(
        (
          "awk join",
          "\(fixed(awkSeconds, 3)) s (\(awkCommand)), \(awkJoinedRecords ?? 0) pairs" + Self.runs(awkRunSeconds)
        ))
      rows.append(("ratio", "parse is \(fixed(speedup, 1))× faster than the awk join"))
    } else {
      rows.append(("awk join", "not run: \(awkError ?? "unknown error")"))
    }
    let width = rows.map(\.0.count).max() ?? 0
    return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
  }

  /// `; best of N runs (median M s)` for more than one run.
  public static func runs(_ seconds: [Double]) -> String {
    guard seconds.count > 1 else { return "" }
    return "; best of \(seconds.count) runs (median \(String(format: "%.3f", median(seconds))) s)"
  }

  /// The median of `values` (0 for none).
  public static func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1
      ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
  }
}

/// A failure of the ingest benchmark: which file, which operation, the system's words.
public struct IngestBenchmarkError: Error, CustomStringConvertible, Sendable {
  /// The file or script concerned.
  public var path: String
  /// What was attempted (`open`, `read`, `run awk on` …).
  public var operation: String
  /// The system's or the tool's words.
  public var message: String
  /// "Unable to <operation> <path>: <message>".
  public var description: String { "Unable to \(operation) \(path): \(message)" }
}

/// Generates node logs and measures how fast they are parsed, next to an awk join of the same files.
public enum IngestBenchmark {
  /// The reference join a human would write: pair each node's PRE and POST lines by SRC+SPT and
  /// print one record per pair (time, client, service, pod, node file).
  public static let awkJoinScript = #"""
    /SVCT:PRE |SVCT:POST / {
      pre = index($0, "SVCT:PRE ") > 0
      src = ""; spt = ""; dst = ""; dpt = ""
      for (i = 1; i <= NF; i++) {
        f = $i
        if (substr(f, 1, 1) == "[") break
        k = substr(f, 1, 4)
        if (k == "SRC=" && src == "") src = substr(f, 5)
        else if (k == "DST=" && dst == "") dst = substr(f, 5)
        else if (k == "SPT=" && spt == "") spt = substr(f, 5)
        else if (k == "DPT=" && dpt == "") dpt = substr(f, 5)
      }
      if (src == "" || spt == "") next
      key = FILENAME " " src " " spt
      if (pre) { svc[key] = dst ":" dpt; at[key] = $1 }
      else if (key in svc) {
        print at[key], src ":" spt, svc[key], "->", dst ":" dpt, FILENAME
        delete svc[key]; delete at[key]
      }
    }
    """#

  /// Generates `lines` lines (at least one per node) over `nodes` node files in
  /// `directory`, times the streaming parse and the awk join over the same files, and returns the
  /// figures. The files stay in `directory` (the caller removes them).
  /// - Throws: ``IngestBenchmarkError`` or ``GeneratorError`` when files cannot be written or read.
  public static func run(
    lines: Int = 2_000_000, directory: String, nodes: Int = 3, seed: UInt64 = 42, awk: String = "awk", runs: Int = 1
  ) async throws -> IngestFigures {
    let peakBefore = ResourceUsage.peakRSSKiB()
    let clock = ContinuousClock()
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let nodeCount = max(1, nodes)
    var generator = LogGenerator(seed: seed, nodes: nodeCount)
    let generateStart = clock.now
    let files = try generator.writeNodeFiles(directory: directory, totalLines: max(nodeCount, lines))
    let generateSeconds = (clock.now - generateStart).seconds
    let paths = files.map(\.path)
    let totalBytes = files.reduce(0) { $0 + $1.summary.bytes }

    // Written back to disk now, so that the timed legs do not compete with the kernel flushing
    // the generated files (the ingest leg writes to the same disk).
    sync()
    // Read every file once first so both legs (parse, then awk) start from a warm page cache.
    _ = try parse(paths: paths, referenceMicros: 0, parseLines: false)
    // The fastest of `runs` parses: the machine's speed varies from second to second.
    var best: (seconds: Double, cpu: Double, outcome: ParseOutcome)?
    var parseRuns: [Double] = []
    for _ in 0..<max(1, runs) {
      let cpuStart = ResourceUsage.threadCPUSeconds()
      let parseStart = clock.now
      let outcome = try parse(
        paths: paths, referenceMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), halfBytes: totalBytes / 2)
      let seconds = (clock.now - parseStart).seconds
      parseRuns.append(seconds)
      if seconds < best?.seconds ?? .infinity { best = (seconds, ResourceUsage.threadCPUSeconds() - cpuStart, outcome) }
    }
    guard let (parseSeconds, parseCPU, outcome) = best else {
      throw IngestBenchmarkError(path: directory, operation: "parse", message: "no run")
    }
    let rssAtEnd = ResourceUsage.currentRSSKiB()

    var figures = IngestFigures(
      lines: files.reduce(0) { $0 + $1.summary.totalLines }, nodes: nodeCount, bytes: totalBytes,
      generateSeconds: generateSeconds, parseSeconds: parseSeconds, parseCPUSeconds: parseCPU,
      parsedLines: outcome.stats.parsed, skippedLines: outcome.stats.skipped,
      expectedPacketLines: files.reduce(0) { $0 + $1.summary.packetLines },
      linesPerSecond: Double(outcome.stats.parsed + outcome.stats.skipped) / max(parseSeconds, 1e-9),
      megabytesPerSecond: Double(totalBytes) / 1_000_000 / max(parseSeconds, 1e-9),
      linesPerCPUSecond: Double(outcome.stats.parsed + outcome.stats.skipped) / max(parseCPU, 1e-9),
      rssAtHalfKiB: outcome.rssAtHalfKiB, rssAtEndKiB: rssAtEnd, peakRSSKiB: ResourceUsage.peakRSSKiB(),
      peakRSSBeforeKiB: peakBefore,
      parseRunSeconds: parseRuns, awkCommand: awk, awkSeconds: nil, awkJoinedRecords: nil, awkError: nil,
      speedupOverAwk: nil)

    do {
      let joinedPath = directory + "/awk-joined.txt"
      for _ in 0..<max(1, runs) {
        let awkStart = clock.now
        try await runAwk(awk, paths: paths, scriptDirectory: directory, output: joinedPath)
        figures.awkRunSeconds.append((clock.now - awkStart).seconds)
      }
      figures.awkSeconds = figures.awkRunSeconds.min()
      figures.awkJoinedRecords = try countLines(path: joinedPath)
      if let awkSeconds = figures.awkSeconds, parseSeconds > 0 { figures.speedupOverAwk = awkSeconds / parseSeconds }
    } catch {
      figures.awkError = "\(error)"
    }
    return figures
  }

  /// The result of ``parse(paths:referenceMicros:halfBytes:)``.
  public struct ParseOutcome: Sendable {
    /// Lines parsed and skipped over all files.
    public var stats: ParseStats
    /// Bytes read.
    public var bytes: Int
    /// RSS (KiB) when `halfBytes` had been read; 0 if never reached.
    public var rssAtHalfKiB: Int
    /// A sum over fields of every parsed line, so the parse work is observable (and cannot be
    /// optimized away).
    public var checksum: UInt64
  }

  /// Streams each file in 1 MiB reads through a ``LineSplitter`` into one ``PacketLineParser`` per
  /// file, the way collect ingests a node's log.
  /// - Throws: ``IngestBenchmarkError`` when a file cannot be opened or read.
  /// With `parseLines: false` the files are only read (to warm the page cache).
  public static func parse(
    paths: [String], referenceMicros: Int64, halfBytes: Int = 0, parseLines: Bool = true
  ) throws -> ParseOutcome {
    let chunkSize = 1 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    defer { buffer.deallocate() }
    var total = ParseStats()
    var bytes = 0
    var rssAtHalf = 0
    var checksum: UInt64 = 0
    for path in paths {
      let fd = open(path, O_RDONLY | O_CLOEXEC)
      guard fd >= 0 else {
        throw IngestBenchmarkError(path: path, operation: "open", message: String(cString: strerror(errno)))
      }
      defer { close(fd) }
      var parser = PacketLineParser(referenceMicros: referenceMicros)
      var splitter = LineSplitter()
      while true {
        let got = read(fd, buffer.baseAddress, chunkSize)
        if got < 0 {
          if errno == EINTR { continue }
          throw IngestBenchmarkError(path: path, operation: "read", message: String(cString: strerror(errno)))
        }
        if got == 0 { break }
        bytes += got
        guard parseLines else { continue }
        let chunk = UnsafeBufferPointer(start: buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), count: got)
        splitter.feed(chunk) { line in
          if let packet = parser.parse(line) { checksum &+= Self.fold(packet) }
        }
        if rssAtHalf == 0, bytes >= halfBytes { rssAtHalf = ResourceUsage.currentRSSKiB() }
      }
      splitter.finish { line in
        if let packet = parser.parse(line) { checksum &+= Self.fold(packet) }
      }
      total.parsed += parser.stats.parsed
      total.skipped += parser.stats.skipped
    }
    return ParseOutcome(stats: total, bytes: bytes, rssAtHalfKiB: rssAtHalf, checksum: checksum)
  }

  /// Streams one log file (1 MiB reads → ``LineSplitter`` → ``PacketLineParser``) and calls `body`
  /// with every packet line, in file order; returns the parse statistics. The building block for
  /// a parse + store leg.
  /// - Throws: ``IngestBenchmarkError`` when the file cannot be opened or read.
  public static func forEachPacket(
    path: String, referenceMicros: Int64, utcOffsetSeconds: Int32 = 0, _ body: (PacketLine) throws -> Void
  ) throws -> ParseStats {
    let chunkSize = 1 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    defer { buffer.deallocate() }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw IngestBenchmarkError(path: path, operation: "open", message: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var parser = PacketLineParser(referenceMicros: referenceMicros, utcOffsetSeconds: utcOffsetSeconds)
    var splitter = LineSplitter()
    var failure: (any Error)? = nil
    while failure == nil {
      let got = read(fd, buffer.baseAddress, chunkSize)
      if got < 0 {
        if errno == EINTR { continue }
        throw IngestBenchmarkError(path: path, operation: "read", message: String(cString: strerror(errno)))
      }
      if got == 0 { break }
      let chunk = UnsafeBufferPointer(start: buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), count: got)
      splitter.feed(chunk) { line in
        guard failure == nil, let packet = parser.parse(line) else { return }
        do { try body(packet) } catch { failure = error }
      }
    }
    if let failure { throw failure }
    splitter.finish { line in
      guard failure == nil, let packet = parser.parse(line) else { return }
      do { try body(packet) } catch { failure = error }
    }
    if let failure { throw failure }
    return parser.stats
  }

  /// Folds the fields of a parsed line into a checksum.
  @inline(__always)
  private static func fold(_ packet: PacketLine) -> UInt64 {
    UInt64(bitPattern: packet.timeMicros) &+ packet.source.low &+ packet.destination.low
      &+ UInt64(packet.sourcePort) &<< 16 &+ UInt64(packet.destinationPort) &+ UInt64(packet.ipID ?? 0)
      &+ UInt64(packet.length) &+ UInt64(packet.tcpFlags) &+ UInt64(packet.mark)
  }

  /// Runs the awk join over `paths` with its output into `output`.
  /// - Throws: ``IngestBenchmarkError`` when awk cannot start or fails.
  private static func runAwk(_ awk: String, paths: [String], scriptDirectory: String, output: String) async throws {
    let scriptPath = scriptDirectory + "/join.awk"
    try awkJoinScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
    let file: FileDescriptor
    do {
      file = try FileDescriptor.open(
        FilePath(output), .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead])
    } catch {
      throw IngestBenchmarkError(path: output, operation: "create", message: "\(error)")
    }
    let result: ExecutionResult<Void, FileDescriptorOutput, StringOutput<UTF8>>
    do {
      result = try await Subprocess.run(
        .path("/usr/bin/env"), arguments: Arguments([awk, "-f", scriptPath] + paths),
        output: .fileDescriptor(file, closeAfterSpawningProcess: true), error: .string(limit: 1 << 20))
    } catch {
      throw IngestBenchmarkError(path: scriptPath, operation: "run \(awk) on", message: "\(error)")
    }
    guard result.terminationStatus.isSuccess else {
      throw IngestBenchmarkError(
        path: scriptPath, operation: "run \(awk) on",
        message: "\(result.terminationStatus): \(result.standardError.prefix(500))")
    }
  }

  private static func countLines(path: String) throws -> Int {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw IngestBenchmarkError(path: path, operation: "read", message: "cannot read file")
    }
    return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
  }
}
