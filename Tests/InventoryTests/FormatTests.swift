import Testing

@testable import Inventory

/// The INI and YAML samples describe the same inventory; both must load to the same hosts.
@Suite struct FormatTests {
  static let expectedOrder = [
    "lonely.example.com", "bastion", "web1", "web2", "web3.example.com", "web4.example.com",
    "db-a", "db-b", "db-c", "node01", "node02", "node03", "node1", "node5", "node9",
  ]

  /// Checks every fact the two samples share.
  static func checkSample(_ inventory: Inventory) throws {
    #expect(inventory.names == expectedOrder)

    let web1 = try #require(inventory.host(named: "web1"))
    #expect(web1.address == "10.0.0.11")
    #expect(web1.port == 2222)
    #expect(web1.user == "deploy")  // prod (parent) beats all
    #expect(web1.become == true)
    #expect(web1.becomePassword == "s3cret")
    #expect(web1.string("note") == "two words")
    #expect(web1.string("quoted") == "single q")
    #expect(web1.groups == ["all", "web", "prod"])
    #expect(web1.vars["http_port"] == .int(8080))
    #expect(web1.vars["enabled"] == .bool(true))
    #expect(web1.vars["ratio"] == .double(0.5))
    #expect(web1.vars["name_literal"] == .string("quoted value"))
    #expect(web1.vars["plain"] == .string("yes"))
    #expect(web1.vars["list"] == .list([.int(1), .string("two")]))
    #expect(web1.string("proxy_args") == #"-o ProxyCommand="ssh -W %h:%p bastion""#)
    #expect(web1.string("svctrace_log_path") == "/var/log/iptables.log")

    let web2 = try #require(inventory.host(named: "web2"))
    #expect(web2.port == 2200)
    #expect(web2.address == "10.0.0.12")

    let lonely = try #require(inventory.host(named: "lonely.example.com"))
    #expect(lonely.groups == ["all", "ungrouped"])
    #expect(lonely.address == "lonely.example.com")
    #expect(lonely.user == "root")
    #expect(lonely.port == nil)
    #expect(lonely.become == nil)

    let bastion = try #require(inventory.host(named: "bastion"))
    #expect(bastion.address == "203.0.113.10")
    #expect(bastion.user == "jump")  // host var beats all:vars

    let node02 = try #require(inventory.host(named: "node02"))
    #expect(node02.groups == ["all", "db", "prod"])
    #expect(node02.become == true)
    #expect(node02.vars["http_port"] == nil)

    let node5 = try #require(inventory.host(named: "node5"))
    #expect(node5.groups == ["all", "workers"])
    #expect(node5.user == "root")

    #expect(inventory.groups["ungrouped"]?.hosts == ["lonely.example.com", "bastion"])
    #expect(inventory.groups["prod"]?.children == ["web", "db"])
    #expect(inventory.groups["prod"]?.allHosts.count == 10)
    #expect(inventory.groups["web"]?.parents == ["prod"])
    #expect(inventory.groups["web"]?.depth == 2)
    #expect(inventory.groups["prod"]?.depth == 1)
    #expect(inventory.groups["all"]?.depth == 0)
    #expect(Set(inventory.groups["all"]?.children ?? []) == ["ungrouped", "prod", "workers"])
    #expect(inventory.groups["all"]?.allHosts == expectedOrder)
    #expect(inventory.warnings.isEmpty)
  }

  @Test func iniSample() throws {
    let inventory = try Inventory.load(paths: [Fixture.path("ini/hosts.ini")])
    try Self.checkSample(inventory)
    #expect(inventory.files == [Fixture.path("ini/hosts.ini")])
  }

  @Test func yamlSample() throws {
    try Self.checkSample(try Inventory.load(paths: [Fixture.path("yaml/hosts.yml")]))
  }

  @Test func iniAndYamlAgreeOnEveryHostAndVariable() throws {
    let ini = try Inventory.load(paths: [Fixture.path("ini/hosts.ini")])
    let yaml = try Inventory.load(paths: [Fixture.path("yaml/hosts.yml")])
    #expect(ini.hosts == yaml.hosts)
    #expect(Set(ini.groups.keys) == Set(yaml.groups.keys))
  }

  @Test func formatIsDetectedByExtensionThenContent() {
    #expect(Inventory.detectFormat(file: "x.yml", text: "[web]") == .yaml)
    #expect(Inventory.detectFormat(file: "x.ini", text: "all:") == .ini)
    #expect(Inventory.detectFormat(file: "hosts", text: "# c\n\nall:\n  hosts:") == .yaml)
    #expect(Inventory.detectFormat(file: "hosts", text: "---\nall:") == .yaml)
    #expect(Inventory.detectFormat(file: "hosts", text: "; c\n[web]\nh1") == .ini)
    #expect(Inventory.detectFormat(file: "hosts", text: "node1:2222\n") == .ini)
    #expect(Inventory.detectFormat(file: "hosts", text: "node1 ansible_host=a:b\n") == .ini)
    #expect(Inventory.detectFormat(file: "hosts", text: "{\"all\": {}}") == .yaml)
  }

  @Test func inMemoryParseHasNoVarsFiles() throws {
    let inventory = try Inventory.parse("h1\n[g]\nh2 ansible_user=u\n", file: "mem")
    #expect(inventory.names == ["h1", "h2"])
    #expect(inventory.host(named: "h2")?.user == "u")
    #expect(inventory.files == ["mem"])
  }

  @Test func allSectionAndHostsTypeAreAccepted() throws {
    let inventory = try Inventory.parse("[all]\nh1\n[g:hosts]\nh2\n", file: "mem")
    #expect(inventory.host(named: "h1")?.groups == ["all", "ungrouped"])
    #expect(inventory.host(named: "h2")?.groups == ["all", "g"])
  }

  @Test func laterDefinitionsOfAHostAddGroupsAndOverrideVars() throws {
    let inventory = try Inventory.parse("[a]\nh1 x=1 y=1\n[b]\nh1 x=2\n", file: "mem")
    let host = try #require(inventory.host(named: "h1"))
    #expect(inventory.names == ["h1"])
    #expect(host.groups == ["all", "a", "b"])
    #expect(host.vars["x"] == .int(2))
    #expect(host.vars["y"] == .int(1))
  }

  @Test func childrenMayBeDeclaredBeforeTheirGroup() throws {
    let inventory = try Inventory.parse("[p:children]\nc\n[c]\nh1\n", file: "mem")
    #expect(inventory.host(named: "h1")?.groups == ["all", "p", "c"])
  }

  @Test func yamlExtrasAreWarnedAboutNotFatal() throws {
    let inventory = try Inventory.parse("web:\n  host:\n    h1:\n  hosts: h2\n", file: "w.yml")
    #expect(inventory.names == ["h2"])
    #expect(
      inventory.warnings.map(\.description) == [
        "w.yml:2: warning: ignoring unexpected key 'host' in group 'web' (only 'hosts', 'vars' and 'children' are valid)"
      ])
  }

  @Test func yamlMergeKeysAndTypes() throws {
    let text = """
      all:
        vars:
          base: &base {a: 1, b: two}
          merged: {<<: *base, b: three}
          flag: on
          quoted: "on"
          when: 2024-01-02
          nothing: ~
        hosts:
          h1:
      """
    let host = try #require(try Inventory.parse(text, file: "m.yml").host(named: "h1"))
    #expect(host.vars["merged"] == .map(["a": .int(1), "b": .string("three")]))
    #expect(host.vars["flag"] == .bool(true))
    #expect(host.vars["quoted"] == .string("on"))
    #expect(host.vars["when"] == .string("2024-01-02"))
    #expect(host.vars["nothing"] == .null)
  }

  @Test func sameNameForHostAndGroupIsWarned() throws {
    let inventory = try Inventory.parse("[web]\nweb\n", file: "x.ini")
    #expect(inventory.warnings.map(\.message) == ["found both a group and a host named 'web'"])
  }
}
