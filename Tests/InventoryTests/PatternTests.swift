import Testing

@testable import Inventory

@Suite struct PatternTests {
  let inventory: Inventory

  init() throws {
    inventory = try Inventory.load(paths: [Fixture.path("ini/hosts.ini")])
  }

  static let web = ["web1", "web2", "web3.example.com", "web4.example.com"]
  static let db = ["db-a", "db-b", "db-c", "node01", "node02", "node03"]

  @Test func nilAllAndStarSelectEverything() throws {
    #expect(try inventory.names(nil) == FormatTests.expectedOrder)
    #expect(try inventory.names("all") == FormatTests.expectedOrder)
    #expect(try inventory.names("*") == FormatTests.expectedOrder)
  }

  @Test func namesAndGroups() throws {
    #expect(try inventory.names("web1") == ["web1"])
    #expect(try inventory.names("web") == Self.web)
    #expect(try inventory.names("prod") == Self.web + Self.db)
    #expect(try inventory.names("ungrouped") == ["lonely.example.com", "bastion"])
  }

  @Test func globsAndRegexes() throws {
    #expect(try inventory.names("node0*") == ["node01", "node02", "node03"])
    #expect(try inventory.names("web?") == ["web1", "web2"])
    #expect(try inventory.names("node[0-9]") == ["node1", "node5", "node9"])
    #expect(try inventory.names("*.example.com") == ["lonely.example.com", "web3.example.com", "web4.example.com"])
    #expect(try inventory.names("~node0[12]") == ["node01", "node02"])
    #expect(try inventory.names("~db-") == ["db-a", "db-b", "db-c"])
    // A glob also matches group names: w* matches group `workers` and hosts web1...
    #expect(try inventory.names("w*") == Self.web + ["node1", "node5", "node9"])
  }

  @Test func unionKeepsTermOrder() throws {
    #expect(try inventory.names("web:db") == Self.web + Self.db)
    #expect(try inventory.names("web,db") == Self.web + Self.db)
    #expect(try inventory.names("db:web") == Self.db + Self.web)
    #expect(try inventory.names("web1:web1:web") == Self.web)
    #expect(try inventory.names("web1, bastion") == ["web1", "bastion"])
  }

  @Test func intersection() throws {
    #expect(try inventory.names("prod:&db") == Self.db)
    #expect(try inventory.names("&db:prod") == Self.db)  // intersections apply after unions
    #expect(try inventory.names("web:&db") == [])
    #expect(try inventory.names("&node0*") == ["node01", "node02", "node03"])  // only & starts from all
  }

  @Test func exclusion() throws {
    #expect(try inventory.names("prod:!db") == Self.web)
    #expect(try inventory.names("!prod") == ["lonely.example.com", "bastion", "node1", "node5", "node9"])
    #expect(try inventory.names("!web:prod") == Self.db)  // exclusions apply last
  }

  @Test func operatorsCombineInAnsibleOrder() throws {
    #expect(try inventory.names("all:!ungrouped:&prod:!node0*") == Self.web + ["db-a", "db-b", "db-c"])
    #expect(try inventory.names("workers,!node5,web1") == ["node1", "node9", "web1"])
  }

  @Test func subscripts() throws {
    #expect(try inventory.names("web[0]") == ["web1"])
    #expect(try inventory.names("web[1:2]") == ["web2", "web3.example.com"])
    #expect(try inventory.names("web[2:]") == ["web3.example.com", "web4.example.com"])
    #expect(try inventory.names("web[-1]") == ["web4.example.com"])
    #expect(try inventory.names("db:web[0]") == Self.db + ["web1"])
    #expect(
      throws: InventoryError(file: "--limit", message: "subscript in 'web[7]' is out of range: 'web' has 4 host(s)")
    ) {
      try inventory.select("web[7]")
    }
  }

  @Test(arguments: [
    ("nosuch", "nosuch"), ("web:nosuch", "nosuch"), ("web:&nosuch", "nosuch"), ("web:!nosuch", "nosuch"),
    ("node7*", "node7*"), ("~^zz", "~^zz"),
  ])
  func unknownTermsAreErrors(pattern: String, term: String) {
    #expect {
      try inventory.select(pattern)
    } throws: { error in
      let error = error as? InventoryError
      return error?.file == "--limit" && error?.message.hasPrefix("no host or group matches '\(term)'") == true
    }
  }

  @Test func invalidPatterns() {
    #expect(throws: InventoryError.self) { try inventory.select("") }
    #expect(throws: InventoryError.self) { try inventory.select("~(") }
    #expect(throws: InventoryError.self) { try inventory.select("web:!") }
  }

  @Test func splitting() {
    #expect(Inventory.splitPattern("a:b:&c:!d") == ["a", "b", "&c", "!d"])
    #expect(Inventory.splitPattern("a[1:2]:b") == ["a[1:2]", "b"])
    #expect(Inventory.splitPattern("fe80::1") == ["fe80::1"])
    #expect(Inventory.splitPattern(" a , b ") == ["a", "b"])
  }
}
