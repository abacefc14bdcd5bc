import ArgumentParser
import Fleet
import SVCTraceCore

/// `collect --shard K/N`: this collector's part of the selected hosts, so that N collectors
/// (on several machines, into one team store) split a fleet between them without a list.
struct ShardOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Collect only shard K of N of the selected hosts (1 ≤ K ≤ N): hosts are split by a hash of their name, the same on every machine and run, so N collectors with --shard 1/N … N/N each take their own hosts.",
      valueName: "K/N"))
  var shard: String?

  /// The shard, `nil` without `--shard`.
  /// - Throws: ``ValidationError`` for anything but `K/N` with 1 ≤ K ≤ N.
  func parsed() throws -> Shard? {
    guard let shard else { return nil }
    let parts = shard.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, index >= 1,
      index <= count
    else {
      throw ValidationError("--shard takes K/N with 1 ≤ K ≤ N (e.g. 2/3), got '\(shard)'.")
    }
    return Shard(index: index, count: count)
  }

  func validate() throws { _ = try parsed() }

  /// `context` with only this shard's hosts (all of them without `--shard`).
  /// - Throws: ``ValidationError`` when the shard holds none of the selected hosts.
  func apply(to context: FleetContext) throws -> FleetContext {
    guard let shard = try parsed() else { return context }
    var context = context
    context.hosts = shard.select(context.hosts)
    guard !context.hosts.isEmpty else {
      throw ValidationError("No hosts in shard \(shard.index)/\(shard.count) of the selected hosts.")
    }
    return context
  }
}

/// Shard `index` (from 1) of `count`: the hosts whose name hashes to it.
struct Shard: Equatable {
  var index: Int
  var count: Int

  /// Whether the host named `name` is in this shard: FNV-1a (64 bits) of its UTF-8 bytes, mod
  /// `count`, is `index - 1`. Stable across runs, machines and Swift versions (no `Hasher`).
  func contains(_ name: String) -> Bool {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in name.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    return Int(hash % UInt64(count)) == index - 1
  }

  /// The hosts of this shard, in their order.
  func select(_ hosts: [FleetHost]) -> [FleetHost] { hosts.filter { contains($0.id.name) } }
}
