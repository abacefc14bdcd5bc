/// Runs `body` for every element, at most `limit` at once: a sliding window that starts the next
/// element as soon as one finishes. Returns one result per element, in completion order.
///
/// When the calling task is cancelled, elements not started yet are not started: they get
/// `notStarted(element)` instead.
public func slidingWindow<Element: Sendable, Result: Sendable>(
  _ elements: [Element], limit: Int, notStarted: (Element) -> Result,
  _ body: @escaping @Sendable (Element) async -> Result
) async -> [Result] {
  await withTaskGroup(of: Result.self) { group in
    var pending = elements[...]
    var results: [Result] = []
    results.reserveCapacity(elements.count)
    func startNext() -> Bool {
      guard let element = pending.popFirst() else { return false }
      group.addTask { await body(element) }
      return true
    }
    for _ in 0..<max(1, limit) where startNext() {}
    while let result = await group.next() {
      results.append(result)
      if Task.isCancelled {
        results += pending.map(notStarted)
        pending = []
      }
      _ = startNext()
    }
    return results
  }
}
