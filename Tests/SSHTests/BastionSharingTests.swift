import Foundation
import SSH
import SVCTraceCore
import SVCTraceTestSupport
import Testing

/// Real sshds on loopback: a bastion and a node behind it (the same node sshd under many names).
@Suite(
  "ProxyJump: one shared bastion connection for many nodes",
  .enabled(if: sshdAvailable, "needs /usr/sbin/sshd and root"))
struct BastionSharingTests {
  /// A bastion, a node and options trusting both, with a shared pool.
  struct Lab {
    let bastion: TestSSHD
    let node: TestSSHD
    let pool: BastionPool
    let options: SSHOptions

    static func start(bastionMaxStartups: String = "100:30:200") async throws -> Lab {
      let bastion = try await TestSSHD.start(maxStartups: bastionMaxStartups)
      let node = try await TestSSHD.start()
      let knownHosts = try node.writeKnownHosts([bastion.knownHostsLine(), node.knownHostsLine()])
      let pool = BastionPool()
      var options = try node.options(knownHosts: [knownHosts])
      options.bastions = pool
      return Lab(bastion: bastion, node: node, pool: pool, options: options)
    }

    var jump: SSHTarget {
      var target = bastion.target()
      target.host = HostID("jumpbox")
      return target
    }

    /// `node-<index>`: the node sshd under its own inventory name, behind the bastion.
    func target(_ index: Int) -> SSHTarget {
      var target = node.target()
      target.host = HostID("node-\(index)")
      target.proxyJump = [jump]
      return target
    }

    func connect(_ index: Int) async throws -> SSHConnection {
      try await SSHConnection.connect(target(index), options: options, logger: testLogger)
    }

    func stop() async {
      await pool.close()
      bastion.stop()
      node.stop()
    }
  }

  /// How many logins the sshd accepted, from its DEBUG1 log.
  static func logins(_ server: TestSSHD) -> Int {
    server.log.components(separatedBy: "Accepted publickey for").count - 1
  }

  @Test("16 nodes at once through a bastion with MaxStartups 3: every command runs, one bastion login")
  func manyNodesOneLogin() async throws {
    let lab = try await Lab.start(bastionMaxStartups: "3")
    let count = 16
    let outcomes = await withTaskGroup(of: (Int, Result<String, any Error>).self) { group in
      for index in 1...count {
        group.addTask {
          do {
            let connection = try await lab.connect(index)
            let result = try await connection.run("echo node-\(index)", stdin: nil, timeout: .seconds(60))
            await connection.close()
            return (index, .success(result.stdoutText))
          } catch {
            return (index, .failure(error))
          }
        }
      }
      var all: [Int: Result<String, any Error>] = [:]
      for await (index, outcome) in group { all[index] = outcome }
      return all
    }
    for index in 1...count {
      switch outcomes[index] {
      case .success(let text): #expect(text == "node-\(index)\n")
      case .failure(let error): Issue.record("node-\(index): \(error)")
      case nil: Issue.record("node-\(index): no outcome")
      }
    }
    #expect(Self.logins(lab.bastion) == 1)
    #expect(lab.bastion.log.components(separatedBy: "server_request_direct_tcpip").count - 1 == count)
    #expect(Self.logins(lab.node) == count)
    await lab.stop()
  }

  @Test("closing one node's connection leaves the others working; a later node reuses the bastion")
  func closeOneKeepsOthers() async throws {
    let lab = try await Lab.start()
    let first = try await lab.connect(1)
    let second = try await lab.connect(2)
    let third = try await lab.connect(3)
    #expect(try await first.run("echo one").stdoutText == "one\n")
    await first.close()
    // Both directions, more than a window's worth, on the remaining tunnels.
    let payload = (0..<10_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    async let echoed = second.run("cat", stdin: payload, timeout: .seconds(120))
    async let zeros = third.run("head -c 20000000 /dev/zero", stdin: nil, timeout: .seconds(120))
    #expect(try await echoed.stdout == payload)
    #expect(try await zeros.stdout.count == 20_000_000)
    await second.close()
    let fourth = try await lab.connect(4)
    #expect(try await fourth.run("echo four").stdoutText == "four\n")
    #expect(try await third.run("echo three").stdoutText == "three\n")
    await third.close()
    await fourth.close()
    #expect(Self.logins(lab.bastion) == 1)
    await lab.stop()
  }

  @Test("a lost bastion connection fails every node behind it with an error naming the node and the bastion")
  func lostBastion() async throws {
    let lab = try await Lab.start()
    var connections: [SSHConnection] = []
    for index in 1...3 { connections.append(try await lab.connect(index)) }
    for connection in connections { #expect(try await connection.run("true").exitStatus == 0) }
    // Kill the bastion's session processes (the children of the listening sshd we started);
    // the listener stays, so the pool can log in again.
    let listener = lab.bastion.process.pid
    try await sh("for p in $(pgrep -P \(listener)); do pkill -KILL -P $p; kill -KILL $p; done; true")
    for (offset, connection) in connections.enumerated() {
      let error = await remoteError { _ = try await connection.run("echo still there") }
      #expect(error?.host == HostID("node-\(offset + 1)"))
      #expect(error?.kind == .connectionLost)
      #expect(error?.message.contains("bastion jumpbox") == true, "\(String(describing: error))")
      await connection.close()
    }
    // The next node gets a fresh bastion connection.
    let again = try await lab.connect(9)
    #expect(try await again.run("echo again").stdoutText == "again\n")
    await again.close()
    #expect(Self.logins(lab.bastion) == 2)
    await lab.stop()
  }

  @Test("a two-hop chain: each hop is logged into once for all nodes")
  func twoHops() async throws {
    let lab = try await Lab.start()
    let inner = try await TestSSHD.start()
    let knownHosts = try inner.writeKnownHosts([
      lab.bastion.knownHostsLine(), inner.knownHostsLine(), lab.node.knownHostsLine(),
    ])
    var chainOptions = lab.options
    chainOptions.knownHostsFiles = [knownHosts]
    let options = chainOptions
    var second = inner.target()
    second.host = HostID("jumpbox-2")
    let chain = [lab.jump, second]
    let results = try await withThrowingTaskGroup(of: String.self) { group in
      for index in 1...6 {
        var hop = lab.target(index)
        hop.proxyJump = chain
        let target = hop
        group.addTask {
          let connection = try await SSHConnection.connect(target, options: options, logger: testLogger)
          let text = try await connection.run("echo hop-\(index)").stdoutText
          await connection.close()
          return text
        }
      }
      var all: [String] = []
      for try await text in group { all.append(text) }
      return all.sorted()
    }
    #expect(results == (1...6).map { "hop-\($0)\n" }.sorted())
    #expect(Self.logins(lab.bastion) == 1)
    #expect(Self.logins(inner) == 1)
    await lab.stop()
    inner.stop()
  }

  @Test("without a pool a connection has its bastion to itself, closed with it")
  func privateBastion() async throws {
    let lab = try await Lab.start()
    var options = lab.options
    options.bastions = nil
    let connection = try await SSHConnection.connect(lab.target(1), options: options, logger: testLogger)
    #expect(try await connection.run("echo alone").stdoutText == "alone\n")
    await connection.close()
    // The bastion said goodbye when the node's connection closed.
    var closed = false
    for _ in 0..<100 where !closed {
      closed = lab.bastion.log.contains("Disconnected from user root")
      if !closed { try await Task.sleep(for: .milliseconds(50)) }
    }
    #expect(closed)
    await lab.stop()
  }
}
