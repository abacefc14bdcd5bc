import Testing

@testable import Inventory

@Suite struct ValueTests {
  @Test(arguments: [
    ("5", InventoryValue.int(5)),
    ("-3", .int(-3)),
    ("1_000", .int(1000)),
    ("010", .string("010")),
    ("1.5e3", .double(1500)),
    ("0.5", .double(0.5)),
    ("True", .bool(true)),
    ("False", .bool(false)),
    ("true", .string("true")),
    ("yes", .string("yes")),
    ("None", .null),
    ("'a b'", .string("a b")),
    ("\"quoted value\"", .string("quoted value")),
    ("\"x\" y", .string("\"x\" y")),
    ("[1, 'x']", .list([.int(1), .string("x")])),
    ("(1, 2)", .list([.int(1), .int(2)])),
    ("{'a': 1, 'b': [True]}", .map(["a": .int(1), "b": .list([.bool(true)])])),
    ("10.0.0.1", .string("10.0.0.1")),
    ("/var/log/iptables.log", .string("/var/log/iptables.log")),
    ("", .string("")),
    ("[1, 2", .string("[1, 2")),
  ])
  func iniValuesAreTypedLikeLiteralEval(text: String, expected: InventoryValue) {
    #expect(INIValues.value(text) == expected)
  }

  @Test func hostLinesSplitLikeShlex() throws {
    #expect(
      try INIValues.split(#"a "b c" 'd e' f\ g x="1 2"z # comment 'unclosed"#) == ["a", "b c", "d e", "f g", "x=1 2z"])
    #expect(try INIValues.split(#"a b#c"#) == ["a", "b"])
    #expect(try INIValues.split(#"k="say \"hi\"""#) == [#"k=say "hi""#])
    #expect(throws: INIValues.Failure.self) { try INIValues.split("a 'b") }
    #expect(throws: INIValues.Failure.self) { try INIValues.split("a \"b") }
    #expect(throws: INIValues.Failure.self) { try INIValues.split("a b\\") }
  }

  @Test(arguments: [
    ("yes", true), ("Yes", true), ("on", true), ("1", true), ("true", true), ("y", true),
    ("no", false), ("NO", false), ("off", false), ("0", false), ("false", false), ("n", false),
  ])
  func stringsReadAsAnsibleBooleans(text: String, expected: Bool) {
    #expect(InventoryValue.string(text).boolValue == expected)
  }

  @Test func otherValuesAsBooleansAndLists() {
    #expect(InventoryValue.bool(true).boolValue == true)
    #expect(InventoryValue.int(0).boolValue == false)
    #expect(InventoryValue.string("maybe").boolValue == nil)
    #expect(InventoryValue.list([]).boolValue == nil)
    #expect(InventoryValue.string("a, b,,c").stringList == ["a", "b", "c"])
    #expect(InventoryValue.list([.string("a"), .int(2)]).stringList == ["a", "2"])
    #expect(InventoryValue.string(" 2222 ").intValue == 2222)
    #expect(InventoryValue.bool(true).stringValue == "True")
  }

  @Test(arguments: [
    ("node[01:03].example.com", ["node01.example.com", "node02.example.com", "node03.example.com"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("node[1:9:4]", ["node1", "node5", "node9"]),
    ("n[1:2]-[a:b]", ["n1-a", "n1-b", "n2-a", "n2-b"]),
    ("x[:2]", ["x0", "x1", "x2"]),
    ("[A:C]x", ["Ax", "Bx", "Cx"]),
    ("plain", ["plain"]),
  ])
  func rangesExpand(pattern: String, expected: [String]) throws {
    #expect(try HostExpansion.expand(pattern).names == expected)
  }

  @Test func portsSplitOff() throws {
    #expect(try HostExpansion.expand("node1:2222").port == 2222)
    #expect(try HostExpansion.expand("node[1:2]:22") == (names: ["node1", "node2"], port: 22))
    #expect(try HostExpansion.expand("[fe80::1]:2222") == (names: ["fe80::1"], port: 2222))
    #expect(try HostExpansion.expand("fe80::1") == (names: ["fe80::1"], port: nil))
    #expect(try HostExpansion.expand("10.0.0.1").port == nil)
  }

  @Test func hostsNeverShowTheirVariables() {
    let host = InventoryHost(name: "n1", vars: ["ansible_password": .string("hunter2")])
    #expect("\(host)" == "n1")
    #expect(host.password == "hunter2")
  }
}

@Suite struct ConnectionTests {
  @Test(
    arguments: [
      ("-o ProxyJump=jump@bastion", "jump@bastion"),
      ("-J jump@bastion:2222", "jump@bastion:2222"),
      ("-Jbastion", "bastion"),
      ("-o StrictHostKeyChecking=no -o 'ProxyJump bastion'", "bastion"),
      (#"-o ProxyCommand="ssh -W %h:%p -q ops@bastion.example.com""#, "ops@bastion.example.com"),
      (#"-o ProxyCommand="ssh -i ~/.ssh/k -p 2200 -W %h:%p bastion""#, "bastion:2200"),
      (#"-o ProxyCommand="nc -X 5 -x proxy:1080 %h %p""#, nil),
      ("-o StrictHostKeyChecking=no", nil),
    ] as [(String, String?)])
  func proxyJumpFromSSHArguments(args: String, expected: String?) {
    let host = InventoryHost(name: "n", vars: ["ansible_ssh_common_args": .string(args)])
    #expect(host.proxyJump == expected)
  }

  @Test func connectionAccessors() throws {
    let inventory = try Inventory.parse(
      "n1 ansible_ssh_host=10.0.0.1 ansible_ssh_port=2200 ansible_ssh_user=u ansible_private_key_file=/k "
        + "ansible_ssh_pass=p ansible_become_pass=b ansible_connection=ssh svctrace_become=no ansible_become=yes\n",
      file: "c.ini")
    let host = try #require(inventory.host(named: "n1"))
    #expect("\(host.id)" == "n1")
    #expect(host.address == "10.0.0.1")
    #expect(host.port == 2200)
    #expect(host.user == "u")
    #expect(host.privateKeyFile == "/k")
    #expect(host.password == "p")
    #expect(host.becomePassword == "b")
    #expect(host.connection == "ssh")
    #expect(host.become == true)
    #expect(host.svctraceBecome == false)
    #expect(host.becomeUser == nil)
  }
}
