/// Runs `body`, then `cleanup` whether `body` returned or threw: a `defer` whose clean-up may
/// `await` (Swift's `defer` cannot), e.g. a lab fault to undo or a scratch node to tear down.
///
/// - Returns: what `body` returned.
/// - Throws: what `body` threw, after `cleanup` ran.
public func withCleanup<Value>(
  isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Value, cleanup: () async -> Void
) async rethrows -> Value {
  let result: Value
  do {
    result = try await body()
  } catch {
    await cleanup()
    throw error
  }
  await cleanup()
  return result
}
