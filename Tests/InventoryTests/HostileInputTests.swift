import LogGeneration
import Testing

@testable import Inventory

/// Every malformed input is refused with its file, its line and what was expected; none crashes.
@Suite struct HostileInputTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var file: String
    var line: Int?
    var message: String
    var testDescription: String { file }
  }

  static let cases: [Case] = [
    Case(
      file: "range-reversed.ini", line: 3, message: "host range in 'node[05:01]' must have begin <= end, got [05:01]"),
    Case(
      file: "range-unterminated.ini", line: 3,
      message: "unterminated host range in 'node[a:' (expected [start:end] or [start:end:step], closed by ']')"),
    Case(
      file: "range-nonnumeric.ini", line: 2,
      message: "host range end 'x' in 'node[1:x]' is not a number or a single letter"),
    Case(file: "range-step.ini", line: 2, message: "host range step '0' in 'node[1:3:0]' must be a positive integer"),
    Case(
      file: "range-width.ini", line: 2,
      message: "host range in 'node[01:3]' must have equal-length begin and end when zero-padded, got [01:3]"),
    Case(
      file: "unknown-section.ini", line: 4,
      message: "section [g:foo] has unknown type 'foo' (expected [g], [g:vars] or [g:children])"),
    Case(
      file: "bad-section.ini", line: 1,
      message:
        "invalid section header '[web servers]' (expected [group], [group:vars] or [group:children], with no spaces in the name)"
    ),
    Case(
      file: "undefined-child.ini", line: 2,
      message:
        "section [p:children] includes undefined group 'missing' (declare it with [missing] or [missing:children])"),
    Case(
      file: "undefined-vars.ini", line: 1,
      message: "section [ghost:vars] is for undefined group 'ghost' (declare it with [ghost] or [ghost:children])"),
    Case(
      file: "cycle.ini", line: 4,
      message: "children form a cycle: b -> a -> b (a group cannot contain one of its ancestors)"),
    Case(file: "self-child.ini", line: 2, message: "group 'a' cannot be a child of itself"),
    Case(
      file: "unterminated-quote.ini", line: 2,
      message: "cannot parse host line: unterminated double quote (expected a closing \")"),
    Case(
      file: "unterminated-quote-vars.ini", line: 4,
      message: "unterminated single quote in the value of 'k' (expected a closing ')"),
    Case(file: "vars-no-equals.ini", line: 5, message: "expected key=value, got 'just_a_word'"),
    Case(
      file: "hostvar-no-equals.ini", line: 2, message: "expected key=value host variable assignment, got 'ansible_host'"
    ),
    Case(
      file: "vars-in-hosts.ini", line: 2,
      message:
        "expected a host name, got 'ansible_host=10.0.0.1' (variables for the whole group go in a [web:vars] section)"),
    Case(file: "duplicate-vars.ini", line: 6, message: "duplicate variable 'a' in [g:vars] (first set on line 4)"),
    Case(file: "duplicate-hostvar.ini", line: 2, message: "duplicate variable 'a' on the line of host 'web1'"),
    Case(
      file: "bad-port.ini", line: 2,
      message: "invalid port 'ssh' in host 'web1:ssh' (expected host:port with a numeric port)"),
    Case(file: "port-range.ini", line: 2, message: "invalid port '70000' in host 'web1:70000' (expected 1-65535)"),
    Case(
      file: "duplicate-key.yml", line: 6,
      message: "duplicate key 'ansible_host' in a mapping (first defined on line 4); each key may appear once"),
    Case(file: "hosts-list.yml", line: 3, message: "'hosts' of group 'all' must be a mapping, got a list"),
    Case(
      file: "top-list.yml", line: 1,
      message: "expected a mapping of group names at the top of a YAML inventory, got a list"),
    Case(
      file: "cycle.yml", line: 5,
      message: "children form a cycle: a -> b -> a (a group cannot contain one of its ancestors)"),
    Case(
      file: "host-not-mapping.yml", line: 3,
      message: "host 'h1' in group 'web' must map to its variables (a mapping) or be empty, got a list"),
    Case(
      file: "group-not-mapping.yml", line: 1,
      message: "group 'web' must be a mapping with 'hosts', 'vars' and/or 'children', got the string 'just a string'"),
    Case(file: "vars-list.yml", line: 3, message: "'vars' of group 'web' must be a mapping, got a list"),
    Case(file: "range.yml", line: 3, message: "host range in 'node[3:1]' must have begin <= end, got [3:1]"),
    Case(
      file: "plugin.yml", line: 1,
      message:
        "this is an inventory plugin configuration (plugin: amazon.aws.aws_ec2); svctrace reads static INI and YAML inventories only"
    ),
    Case(
      file: "empty.yml", line: nil,
      message: "empty YAML inventory (expected a mapping of groups, e.g. 'all:' with 'hosts:')"),
  ]

  @Test(arguments: cases)
  func refusedWithFileAndLine(_ hostile: Case) {
    let path = Fixture.path("hostile/" + hostile.file)
    #expect(throws: InventoryError(file: path, line: hostile.line, message: hostile.message)) {
      try Inventory.load(paths: [path])
    }
  }

  @Test func yamlSyntaxErrorsCarryTheParsersLine() {
    let path = Fixture.path("hostile/syntax.yml")
    #expect {
      try Inventory.load(paths: [path])
    } throws: { error in
      guard let error = error as? InventoryError else { return false }
      return error.file == path && error.line == 3 && error.message.hasPrefix("invalid YAML: ")
    }
  }

  @Test func brokenGroupVarsFileIsNamedWithItsLine() {
    let file = Fixture.path("hostile/badvars/group_vars/web.yml")
    #expect {
      try Inventory.load(paths: [Fixture.path("hostile/badvars/inventory.ini")])
    } throws: { error in
      guard let error = error as? InventoryError else { return false }
      return error.file == file && error.line == 3 && error.message.hasPrefix("invalid YAML: ")
    }
  }

  @Test func groupVarsThatAreNotAMappingAreRefused() {
    let file = Fixture.path("hostile/listvars/group_vars/all.yml")
    #expect(
      throws: InventoryError(file: file, line: 2, message: "expected a mapping of variable names to values, got a list")
    ) {
      try Inventory.load(paths: [Fixture.path("hostile/listvars/inventory.ini")])
    }
  }

  @Test func descriptionReadsFileColonLine() {
    #expect(InventoryError(file: "hosts.ini", line: 3, message: "m").description == "hosts.ini:3: m")
    #expect(InventoryError(file: "hosts.ini", message: "m").description == "hosts.ini: m")
  }

  @Test func hugeRangesAreRefused() {
    #expect(throws: InventoryError.self) { try Inventory.parse("node[0:99999999]\n", file: "big.ini") }
    #expect(throws: InventoryError.self) { try Inventory.parse("n[0:999][0:999]\n", file: "big.ini") }
  }

  @Test func deepNestingIsRefusedNotACrash() {
    let flow = "all:\n  vars:\n    x: " + String(repeating: "[", count: 100_000) + "\n"
    #expect(
      throws: InventoryError(
        file: "deep.yml", line: 3, message: "YAML nested too deeply (more than 200 levels of [ or {)")
    ) {
      try Inventory.parse(flow, file: "deep.yml")
    }
    var block = "all:\n  vars:\n"
    for level in 0..<3000 { block += String(repeating: " ", count: level + 4) + "k:\n" }
    #expect(throws: InventoryError.self) { try Inventory.parse(block, file: "deep.yml") }
    var chain = ""
    for level in 0..<20_000 { chain += "[g\(level):children]\ng\(level + 1)\n" }
    chain += "[g20000]\nh1\n"
    let inventory = try? Inventory.parse(chain, file: "chain.ini")
    #expect(inventory?.groups["g20000"]?.depth == 20_001)
    #expect(inventory?.host(named: "h1")?.groups.count == 20_002)
  }

  @Test func largeRangesLoad() throws {
    let inventory = try Inventory.parse("lead\n[big]\nnode[1:50000] x=1\n[big2]\nnode[1:50000]\n", file: "big.ini")
    #expect(inventory.hosts.count == 50_001)
    #expect(inventory.groups["big"]?.allHosts.count == 50_000)
    #expect(inventory.groups["ungrouped"]?.allHosts == ["lead"])
    #expect(try inventory.select("big:&big2:!node1*").count == 50_000 - 11_111)
  }

  @Test func byteOrderMarkIsIgnored() throws {
    let inventory = try Inventory.parse("\u{FEFF}[web]\nh1\n", file: "bom.ini")
    #expect(inventory.names == ["h1"])
    #expect(inventory.host(named: "h1")?.groups == ["all", "web"])
  }

  @Test func aliasBombsAreRefused() {
    var bomb = "all:\n  vars:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for level in 1...7 {
      let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
      bomb += "    a\(level): &a\(level) [\(refs)]\n"
    }
    #expect(throws: InventoryError.self) { try Inventory.parse(bomb, file: "bomb.yml") }
  }

  /// Random edits of valid inventories never crash: they load or throw an ``InventoryError``.
  @Test func mutatedInputsNeverCrash() throws {
    let seeds = [
      "[web]\nweb1 ansible_host=10.0.0.1 a=\"b c\"\nnode[01:03]:22\n[web:vars]\nx=[1, {'a': 2}]\n[p:children]\nweb\n",
      "all:\n  hosts:\n    h[1:3]:\n      v: {a: [1, 2]}\n  children:\n    g:\n      hosts: h1\n",
    ]
    let alphabet = Array("[]:=\"'#;\n {}-,&!*~01a")
    var generator = SplitMix64(seed: 42)
    for seed in seeds {
      for round in 0..<1500 {
        var chars = Array(seed)
        for _ in 0...(round % 4) {
          let position = Int(generator.next() % UInt64(chars.count))
          switch generator.next() % 3 {
          case 0: chars[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
          case 1: chars.remove(at: position)
          default: chars.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
          }
          if chars.isEmpty { chars = ["x"] }
        }
        let text = String(chars)
        do {
          let inventory = try Inventory.parse(text, file: round % 2 == 0 ? "m.ini" : "m.yml")
          _ = try? inventory.select("all:!web:&g")
        } catch {
          #expect(!error.file.isEmpty && !error.message.isEmpty)
        }
      }
    }
  }
}

@Suite struct SecretTests {
  @Test func secretsNeverAppearInErrors() {
    for text in [
      "[web]\nansible_become_password=hunter2\n",
      "[web]\nweb1 ansible_password= hunter2\n",
      "[web]\nweb1 ansible_password=\"hunter2\n",
      "[g]\nh\n[g:vars]\nansible_password=\"hunter2\n",
    ] {
      #expect {
        try Inventory.parse(text, file: "s.ini")
      } throws: { error in
        !"\(error)".contains("hunter2")
      }
    }
  }

  @Test func hostListSource() throws {
    let inventory = try Inventory.load(paths: ["node1,node2:2222,db[1:2],"])
    #expect(inventory.names == ["node1", "node2", "db1", "db2"])
    #expect(inventory.host(named: "node2")?.port == 2222)
    #expect(inventory.host(named: "db1")?.groups == ["all", "ungrouped"])
  }
}
