import ArgumentParser
import Fleet
import SVCTraceCore

extension SVCTrace {
  /// `svctrace ping`: can every node be reached, and what is it?
  struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Connect to every host and report what svctrace needs to know about it.",
      discussion: """
        For each selected host: connects (strict host-key check), authenticates, checks privilege \
        escalation, and reports the OS, kernel, iptables version and backend (legacy or nf_tables), \
        whether rsyslog and logrotate are installed, and the clock offset to this workstation.

        Examples:
          svctrace ping -i inventory/hosts.ini
          svctrace ping -i hosts.yml --limit 'kube_node:!node07' --become
          svctrace ping -i hosts.ini --json | jq '.hosts[].result.kernel'

        Exit status: 0 when every host answered, 1 when any failed or was unreachable, 2 on usage errors.
        """)

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
      let context = try FleetContext.make(fleet, label: "ping")
      try await runFleet(context, json: output.json, command: "ping") { session, host in
        let facts = try await NodeFacts.gather(session, become: host.become)
        return HostOutcome(message: facts.summary, payload: facts)
      }
    }
  }
}

/// What `ping` learns about a node.
struct NodeFacts: Codable, Sendable {
  var os: String
  var kernel: String
  var iptables: String
  var iptablesBackend: String
  var rsyslog: Bool
  var logrotate: Bool
  var user: String
  var clockOffsetMs: Double
  var clockBoundMs: Double

  /// The recap line: everything on one line, clock offset with its error bound.
  var summary: String {
    let sign = clockOffsetMs >= 0 ? "+" : ""
    return "\(os) · kernel \(kernel) · \(iptables) · rsyslog \(rsyslog ? "yes" : "MISSING") · "
      + "logrotate \(logrotate ? "yes" : "MISSING") · clock \(sign)\(Output.decimal(clockOffsetMs))±\(Output.decimal(clockBoundMs)) ms · as \(user)"
  }

  /// The facts section's script.
  static let factsScript = """
    . /etc/os-release 2>/dev/null; echo "os=${PRETTY_NAME:-unknown}"; echo "kernel=$(uname -r)"; \
    echo "iptables=$(iptables -V 2>/dev/null | head -n1)"; \
    if command -v rsyslogd >/dev/null 2>&1; then echo rsyslog=yes; else echo rsyslog=no; fi; \
    if command -v logrotate >/dev/null 2>&1; then echo logrotate=yes; else echo logrotate=no; fi; \
    echo "user=$(id -un)"
    """

  /// The reply script of `ping`: the clock's start, the facts, the clock's end.
  static func script(nonce: String = NodeReply.makeNonce()) -> NodeReply.Script {
    var script = NodeReply.Script(nonce: nonce)
    script.clockSection(ClockOffset.startSection)
    script.section("facts", factsScript)
    script.clockSection(ClockOffset.endSection)
    return script
  }

  /// One round trip: the facts and an NTP-style clock sample in one ``NodeReply``.
  static func gather(_ session: any RemoteSession, become: BecomeConfig) async throws -> NodeFacts {
    let (reply, sent, received) = try await session.exchange(script(), timeout: nil, operation: "gather facts")
    return try facts(reply: reply, host: session.host, sentMicros: sent, receivedMicros: received)
  }

  /// The facts from a ping reply (pure).
  static func facts(reply: NodeReply, host: HostID, sentMicros: Int64, receivedMicros: Int64) throws(RemoteError)
    -> NodeFacts
  {
    guard let section = reply.section("facts") else {
      throw RemoteError(
        host: host, operation: "gather facts", kind: .protocolError,
        message: "the node's reply is garbled: no section facts")
    }
    var facts: [String: String] = [:]
    for line in section.text.split(separator: "\n") {
      guard let equals = line.firstIndex(of: "=") else { continue }
      facts[String(line[..<equals])] = String(line[line.index(after: equals)...])
    }
    let iptables = facts["iptables"] ?? ""
    let backend =
      iptables.contains("nf_tables")
      ? "nf_tables" : iptables.contains("legacy") ? "legacy" : iptables.isEmpty ? "none" : "unknown"
    // The same exchange is the clock sample: one round trip per host, like `ssh host cmd`.
    guard let clock = ClockOffset(reply: reply, sentMicros: sentMicros, receivedMicros: receivedMicros) else {
      throw RemoteError(
        host: host, operation: "read the clock", kind: .commandFailed,
        message: "`date +%s%N` printed nothing usable")
    }
    return NodeFacts(
      os: facts["os"] ?? "unknown", kernel: facts["kernel"] ?? "unknown",
      iptables: iptables.isEmpty ? "not installed" : iptables,
      iptablesBackend: backend, rsyslog: facts["rsyslog"] == "yes", logrotate: facts["logrotate"] == "yes",
      user: facts["user"] ?? "?", clockOffsetMs: Double(clock.offsetMicros) / 1000,
      clockBoundMs: Double(clock.boundMicros) / 1000)
  }
}
