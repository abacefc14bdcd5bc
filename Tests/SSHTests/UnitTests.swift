import SSH
import SVCTraceCore
import Testing

@Suite("ssh_config parsing")
struct SSHConfigTests {
  let text = """
    # comment
    Host bastion
      HostName 127.0.0.1
      User jump
      Port 2200

    Host node?? !node99 k8s-*
        hostname=%h.cluster.local
        USER = admin
        IdentityFile ~/.ssh/deploy_ed25519
        IdentityFile "/keys/with space"
        ProxyJump bastion,ops@gw.example:2222

    Host *
      User fallback
      Port 22
      IdentityFile ~/.ssh/id_ed25519
      ProxyJump none
    """

  @Test("Host patterns, first value wins, IdentityFile accumulates, %h and ~ expand")
  func resolve() throws {
    let config = try SSHConfig.parse(text, path: "cfg")
    let node = config.resolve("node01")
    #expect(node.hostName == "node01.cluster.local")
    #expect(node.user == "admin")
    #expect(node.port == 22)
    #expect(
      node.identityFiles == [
        SSHTarget.homeDirectory + "/.ssh/deploy_ed25519", "/keys/with space",
        SSHTarget.homeDirectory + "/.ssh/id_ed25519",
      ])
    #expect(node.proxyJump == [SSHJumpHost(host: "bastion"), SSHJumpHost(user: "ops", host: "gw.example", port: 2222)])

    let negated = config.resolve("node99")
    #expect(negated.hostName == nil)
    #expect(negated.user == "fallback")
    #expect(negated.proxyJump == [])

    #expect(config.resolve("K8S-worker").user == "admin")  // case-insensitive host match
    #expect(config.resolve("node1").user == "fallback")  // ?? needs two characters
  }

  @Test("target(for:) resolves the bastion chain through the config; inventory values win")
  func target() throws {
    let config = try SSHConfig.parse(text, path: "cfg")
    let target = config.target(for: "node01", host: HostID("n1"), user: "root")
    #expect(target.hostname == "node01.cluster.local")
    #expect(target.user == "root")
    #expect(target.proxyJump.map(\.hostname) == ["127.0.0.1", "gw.example"])
    #expect(target.proxyJump.first?.port == 2200)
    #expect(target.proxyJump.first?.user == "jump")
    #expect(target.proxyJump.last?.user == "ops")
    #expect(target.proxyJump.last?.port == 2222)
  }

  @Test("malformed lines are errors with file and line")
  func errors() {
    #expect(throws: SSHConfigError(path: "f", line: 2, message: "`Port` expects a number 1-65535, got `abc`")) {
      try SSHConfig.parse("Host a\n  Port abc\n", path: "f")
    }
    #expect(throws: SSHConfigError.self) { try SSHConfig.parse("Host a\n  User \"unterminated\n", path: "f") }
    #expect(throws: SSHConfigError.self) { try SSHConfig.parse("Host\n", path: "f") }
    #expect(throws: SSHConfigError.self) { try SSHConfig.parse("ProxyJump user@:22\n", path: "f") }
  }

  @Test("missing config file is empty; jump host syntax")
  func misc() throws {
    #expect(try SSHConfig.load(path: "/nonexistent/svctssh/config").resolve("x") == SSHConfigEntry(alias: "x"))
    #expect(SSHJumpHost(parsing: "u@[::1]:2022") == SSHJumpHost(user: "u", host: "::1", port: 2022))
    #expect(SSHJumpHost(parsing: "host:99999") == nil)
  }
}
