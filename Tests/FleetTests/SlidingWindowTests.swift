import Fleet
import Synchronization
import Testing

@Suite struct SlidingWindowTests {
  /// Counts the bodies running at once.
  final class Gauge: Sendable {
    let state = Mutex((running: 0, peak: 0))
    func enter() {
      state.withLock {
        $0.running += 1
        $0.peak = max($0.peak, $0.running)
      }
    }
    func leave() { state.withLock { $0.running -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
  }

  @Test func everyElementRunsOnceAndNeverMoreThanTheLimitAtOnce() async {
    let gauge = Gauge()
    let results = await slidingWindow(
      Array(0..<40), limit: 3, notStarted: { -$0 },
      { element in
        gauge.enter()
        try? await Task.sleep(for: .milliseconds(element % 4 + 1))
        gauge.leave()
        return element
      })
    #expect(results.sorted() == Array(0..<40))
    #expect(gauge.peak == 3)
  }

  @Test func afterCancellationTheRestIsReportedNotStarted() async {
    let (started, signal) = AsyncStream.makeStream(of: Int.self)
    let task = Task {
      await slidingWindow(Array(0..<20), limit: 2, notStarted: { "skipped \($0)" }) { element in
        signal.yield(element)
        // Runs until the caller is cancelled (bounded: at most 10 s).
        for _ in 0..<10_000 where !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
        return "ran \(element)"
      }
    }
    var seen = 0
    for await _ in started {
      seen += 1
      if seen == 2 { break }
    }
    task.cancel()
    let results = await task.value
    #expect(results.count == 20)
    #expect(results.filter { $0.hasPrefix("ran") }.count == 2, "\(results)")
    #expect(results.filter { $0.hasPrefix("skipped") }.count == 18)
  }
}
