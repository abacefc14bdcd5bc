import Foundation

@testable import Inventory

/// Paths to the fixtures copied into the test bundle, and to the repository's `inventory/` examples.
enum Fixture {
  static var root: URL {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
  }

  static func path(_ relative: String) -> String {
    root.appendingPathComponent(relative).path
  }

  /// The repository's top-level `inventory/` directory (examples shipped to users).
  static func example(_ relative: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("inventory").appendingPathComponent(relative).path
  }
}

extension Inventory {
  /// Host names in order, for compact assertions.
  var names: [String] { hosts.map(\.name) }

  /// The names `select` returns.
  func names(_ pattern: String?) throws -> [String] { try select(pattern).map(\.name) }
}
