import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Testing

@testable import Rollout

/// RHEL-family nodes: rsyslog's kernel input (imjournal), the drop-in by input, SELinux, firewalld,
/// a global `dateext`.
@Suite struct RHELNodeTests {
  /// Rocky/RHEL 8's stock `/etc/rsyslog.conf` modules section (comments at line ends, a module
  /// statement over two lines, imklog commented out).
  static let rhel8Conf = """
    # rsyslog configuration file
    #### MODULES ####
    module(load="imuxsock"    # provides support for local system logging (e.g. via logger command)
           SysSock.Use="off") # Turn off message reception via local log socket;
                              # local messages are retrieved through imjournal now.
    module(load="imjournal"             # provides access to the systemd journal
           StateFile="imjournal.state") # File to store the position in the journal
    #module(load="imklog") # reads kernel messages (the same are read from journald)
    #module(load="immark") # provides --MARK-- message capability
    include(file="/etc/rsyslog.d/*.conf" mode="optional")
    *.info;mail.none;authpriv.none;cron.none                /var/log/messages

    """

  static let debianConf = """
    module(load="imuxsock") # provides support for local system logging
    module(load="imklog")   # provides kernel logging support
    #module(load="immark")  # provides --MARK-- message capability
    $IncludeConfig /etc/rsyslog.d/*.conf

    """

  static let centos7Conf = """
    $ModLoad imuxsock # provides support for local system logging (e.g. via logger command)
    $ModLoad imjournal # provides access to the systemd journal
    #$ModLoad imklog # reads kernel messages (the same are read from journald)
    $imjournalRatelimitInterval 0
    $IMJournalStateFile imjournal.state

    """

  static func inputs(_ text: String) -> RsyslogInputs { RsyslogInputs(parsing: "==> /etc/rsyslog.conf\n" + text) }

  // MARK: Detection

  @Test func rhel8ReadsTheKernelThroughRateLimitedImjournal() {
    let inputs = Self.inputs(Self.rhel8Conf)
    #expect(inputs.loaded == ["imjournal", "imuxsock"])
    #expect(inputs.kernelModule == nil)
    #expect(inputs.imjournalLimited)
    #expect(inputs.imjournalLimitText == "20000 messages per 600 s (imjournal's default)")
    #expect(inputs.lineSource == .ownImklog)
    #expect(inputs.evidence.first?.hasPrefix("/etc/rsyslog.conf: module(load=\"imuxsock\"") == true)
  }

  @Test func debianAndCentOS7AndBoth() {
    let debian = Self.inputs(Self.debianConf)
    #expect(debian.loaded == ["imklog", "imuxsock"])
    #expect(debian.lineSource == .anyInput)
    let centos = Self.inputs(Self.centos7Conf)
    #expect(centos.loaded == ["imjournal", "imuxsock"])
    #expect(centos.imjournalInterval == 0)
    #expect(!centos.imjournalLimited)
    #expect(centos.lineSource == .ownImklog)
    let both = Self.inputs(
      Self.rhel8Conf.replacingOccurrences(of: "#module(load=\"imklog\")", with: "module(load=\"imklog\")")
        + "==> /etc/rsyslog.d/limits.conf\n")
    #expect(both.loaded == ["imjournal", "imklog", "imuxsock"])
    #expect(both.lineSource == .input("imklog"))
    let tuned = Self.inputs(
      "module(load=\"imjournal\" Ratelimit.Interval=\"60\"\n  Ratelimit.Burst=\"500\")\n$ModLoad /usr/lib64/rsyslog/imkmsg.so\n"
    )
    #expect(tuned.imjournalLimitText == "500 messages per 60 s")
    #expect(tuned.lineSource == .input("imkmsg"))
    #expect(Self.inputs("module(load=\"imfile\")\n# module(load=\"imjournal\")\n").loaded.isEmpty)
  }

  /// The probe's section on a real shell: main config and `*.conf` beside the drop-in, the drop-in
  /// itself excluded (it loads imklog on RHEL; counting it would flip the plan at the next install).
  @Test func probeSectionSkipsSvctracesOwnDropIn() async throws {
    let directory = NSTemporaryDirectory() + "svctrace-rsyslogconf-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/rsyslog.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var settings = RolloutSettings()
    settings.legacyRsyslogConf = directory + "/rsyslog.conf"
    settings.rsyslogDropInPath = directory + "/rsyslog.d/10-svctrace.conf"
    try Self.rhel8Conf.write(toFile: settings.legacyRsyslogConf, atomically: true, encoding: .utf8)
    try Renderer.rsyslogDropIn(logPath: "/var/log/x.log", rotateSize: "1M", logrotatePath: "/l", source: .ownImklog)
      .write(toFile: settings.rsyslogDropInPath, atomically: true, encoding: .utf8)
    try "$ModLoad imkmsg\n".write(toFile: directory + "/rsyslog.d/20-other.conf", atomically: true, encoding: .utf8)
    try "module(load=\"imklog\")\n".write(
      toFile: directory + "/rsyslog.d/x.conf.off", atomically: true, encoding: .utf8)
    let section = try NodeProber.rsyslogConfSection(settings)
    let result = try await LocalProcess.shell(section.body)
    let inputs = RsyslogInputs(parsing: result.stdoutText)
    #expect(inputs.loaded == ["imjournal", "imkmsg", "imuxsock"])
    #expect(inputs.evidence.contains("\(directory)/rsyslog.d/20-other.conf: $ModLoad imkmsg"))
    #expect(!result.stdoutText.contains("10-svctrace.conf"))
  }

  @Test func platformFacts() {
    let rocky = NodePlatform(
      parsing: "id=\"rocky\"\nlike=\"rhel centos fedora\"\nselinux=Enforcing\nfirewalld\nrestorecon\n")
    #expect(rocky.isRHELFamily)
    #expect(rocky.selinux == .enforcing)
    #expect(rocky.firewalld && rocky.hasRestorecon)
    let debian = NodePlatform(parsing: "id=debian\n")
    #expect(!debian.isRHELFamily)
    #expect(debian.selinux == .absent && !debian.firewalld)
    let probe = NodeProber.make(
      host: HostID("n1"), sections: ["platform": "id=almalinux\nselinux=Permissive\n", "rsyslog-conf": ""])
    #expect(probe.platform.isRHELFamily && probe.platform.selinux == .permissive)
  }

  // MARK: The drop-in

  /// Without imjournal the drop-in is the historical text, byte for byte.
  @Test func debianDropInIsUnchanged() {
    let expected = """
      # Managed by svctrace (svctrace install); do not edit — verify reports changes and install rewrites them.
      # Kernel LOG lines of svctrace's rules (prefixes SVCT:PRE / SVCT:POST) go to /var/log/iptables.log only.
      # Past 200M the file is rotated at once by logrotate (/etc/logrotate.d/svctrace), not only daily.
      template(name="SvcTrace" type="string"
        string="%timegenerated:::date-rfc3339% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n")
      if ($syslogfacility-text == "kern") and ($msg contains "SVCT:") then {
        action(type="omfile" file="/var/log/iptables.log" template="SvcTrace"
          rotation.sizeLimit="209715201" rotation.sizeLimitCommand="/usr/sbin/logrotate /etc/logrotate.d/svctrace")
        stop
      }

      """
    let rendered = Renderer.rsyslogDropIn(
      logPath: "/var/log/iptables.log", rotateSize: "200M", logrotatePath: "/etc/logrotate.d/svctrace")
    #expect(rendered == expected)
    let probe = NodeProber.make(
      host: HostID("n1"), sections: ["rsyslog-conf": "==> /etc/rsyslog.conf\n" + Self.debianConf])
    #expect(NodeRollout.desiredDropIn(probe: probe, settings: RolloutSettings()) == expected)
    #expect(
      NodeRollout.desiredDropIn(probe: NodeProber.make(host: HostID("n1"), sections: [:]), settings: RolloutSettings())
        == expected)
  }

  @Test func rhelDropInLoadsImklogAndTakesOnlyItsLines() {
    let probe = NodeProber.make(
      host: HostID("n1"), sections: ["rsyslog-conf": "==> /etc/rsyslog.conf\n" + Self.rhel8Conf])
    let dropIn = NodeRollout.desiredDropIn(probe: probe, settings: RolloutSettings())
    #expect(dropIn.contains(Renderer.imklogLoad + "\n"))
    #expect(dropIn.contains("  if ($inputname == \"imklog\") then {\n    action(type=\"omfile\""))
    #expect(dropIn.hasSuffix("  }\n  stop\n}\nif ($inputname == \"imklog\") then stop\n"))
    let both = Renderer.rsyslogDropIn(logPath: "/l", rotateSize: "1M", logrotatePath: "/r", source: .input("imkmsg"))
    #expect(!both.contains("module("))
    #expect(both.contains("if ($inputname == \"imkmsg\") then {"))
    #expect(!both.contains("then stop\n"))
  }

  /// A full RHEL-style configuration (imuxsock off, imjournal, the include) with each variant of
  /// the drop-in passes the real `rsyslogd -N1`; loading imklog where the configuration already
  /// does is refused, which is why the probe reads the configuration first.
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/rsyslogd")))
  func everyVariantPassesRsyslogValidation() async throws {
    let directory = NSTemporaryDirectory() + "svctrace-rhel-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/rsyslog.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    func main(_ modules: String) -> String {
      """
      global(workDirectory="\(directory)")
      \(modules)
      include(file="\(directory)/rsyslog.d/*.conf" mode="optional")
      *.info;mail.none;authpriv.none;cron.none \(directory)/messages

      """
    }
    let rhel = """
      module(load="imuxsock" SysSock.Use="off")
      module(load="imjournal" StateFile="imjournal.state")
      """
    let cases: [(String, KernelLineSource, Bool)] = [
      (rhel, .ownImklog, true),
      (rhel + "\nmodule(load=\"imklog\")", .input("imklog"), true),
      (rhel + "\nmodule(load=\"imkmsg\")", .input("imkmsg"), true),
      ("module(load=\"imuxsock\")\nmodule(load=\"imklog\")", .anyInput, true),
      (rhel + "\nmodule(load=\"imklog\")", .ownImklog, false),
    ]
    for (modules, source, valid) in cases {
      try main(modules).write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
      try Renderer.rsyslogDropIn(
        logPath: directory + "/iptables.log", rotateSize: "1M", logrotatePath: directory + "/logrotate", source: source
      ).write(toFile: directory + "/rsyslog.d/10-svctrace.conf", atomically: true, encoding: .utf8)
      let result = try await LocalProcess.run(["/usr/sbin/rsyslogd", "-N1", "-f", directory + "/rsyslog.conf"])
      if valid {
        #expect(result.exitStatus == 0, "\(source): \(result.stderrText)")
        #expect(!result.stderrText.contains("error"), "\(source): \(result.stderrText)")
      } else {
        #expect(result.exitStatus != 0)
        #expect(result.stderrText.contains("already in this config"), "\(result.stderrText)")
      }
    }
  }

  /// The filter logic on a real rsyslogd: two UDP inputs on loopback named `imklog` and
  /// `imjournal` stand in for the two kernel inputs (rsyslog sets `$inputname` from an imudp
  /// input's name; real kernel messages cannot be fed). The same `SVCT:` line arrives through both:
  /// svctrace's file gets it once, the node's catch-all file (rules after the include) never; with
  /// ``KernelLineSource/ownImklog`` (its module line cut: this machine's kernel log is not ours to
  /// read) imklog's other kernel messages are dropped, imjournal's reach the catch-all file.
  @Test(
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/rsyslogd")),
    arguments: [KernelLineSource.input("imklog"), .ownImklog])
  func realRsyslogWritesEachLineOnceFromTheKernelInput(source: KernelLineSource) async throws {
    let directory = NSTemporaryDirectory() + "svctrace-rhel-live-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/rsyslog.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let kernelPort = Int.random(in: 40_000...44_999)
    let journalPort = kernelPort + 5_000
    try """
    global(workDirectory="\(directory)")
    module(load="imudp")
    input(type="imudp" address="127.0.0.1" port="\(kernelPort)" name="imklog")
    input(type="imudp" address="127.0.0.1" port="\(journalPort)" name="imjournal")
    include(file="\(directory)/rsyslog.d/*.conf")
    *.* action(type="omfile" file="\(directory)/messages" template="RSYSLOG_TraditionalFileFormat")

    """.write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
    let dropIn = Renderer.rsyslogDropIn(
      logPath: directory + "/iptables.log", rotateSize: "1M", logrotatePath: directory + "/logrotate", source: source)
    #expect(dropIn.contains(Renderer.imklogLoad) == (source == .ownImklog))
    try dropIn.replacingOccurrences(of: Renderer.imklogLoad, with: "")
      .write(toFile: directory + "/rsyslog.d/10-svctrace.conf", atomically: true, encoding: .utf8)
    let rsyslogd = try await BackgroundProcess.start(
      ["/usr/sbin/rsyslogd", "-n", "-f", directory + "/rsyslog.conf", "-i", directory + "/rsyslogd.pid"],
      collectOutput: true)
    try await withCleanup {
      // kern.info (<6>) with the tag `kernel:`, as the kernel inputs deliver LOG lines.
      func send(_ datagrams: [(Int, String)]) async throws {
        let script = """
          import socket, sys
          s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
          for i in range(1, len(sys.argv), 2):
              s.sendto(("<6>kernel: " + sys.argv[i + 1]).encode(), ("127.0.0.1", int(sys.argv[i])))
          """
        _ = try await LocalProcess.run(["python3", "-c", script] + datagrams.flatMap { [String($0.0), $0.1] })
      }
      func files() -> (ours: String, messages: String) {
        (
          (try? String(contentsOfFile: directory + "/iptables.log", encoding: .utf8)) ?? "",
          (try? String(contentsOfFile: directory + "/messages", encoding: .utf8)) ?? ""
        )
      }
      func waitFor(_ done: () -> Bool) async throws -> Bool {
        for _ in 0..<300 {
          if done() { return true }
          try await Task.sleep(for: .milliseconds(50))
        }
        return done()
      }
      // Both inputs listen once a datagram through each has been written.
      var ready = false
      for _ in 0..<50 where !ready {
        try await send([(kernelPort, "SVCT:READY"), (journalPort, "ready")])
        ready = try await waitFor { files().ours.contains("SVCT:READY") && files().messages.contains("ready") }
      }
      #expect(ready, "rsyslogd did not write the readiness lines")
      try await send([
        (kernelPort, "SVCT:PRE IN=eth0 SRC=10.0.0.1 SPT=1111"), (kernelPort, "other kernel line"),
        (journalPort, "SVCT:PRE IN=eth0 SRC=10.0.0.1 SPT=1111"), (journalPort, "journal line"),
        (kernelPort, "SVCT:POST last"), (journalPort, "journal end"),
      ])
      #expect(try await waitFor { files().ours.contains("SVCT:POST last") && files().messages.contains("journal end") })
      // A clean stop drains the queue: nothing is still on its way to the files.
      await rsyslogd.stopAndWait()
      let (ours, messages) = files()
      #expect(ours.components(separatedBy: "SVCT:PRE IN=eth0").count - 1 == 1, "\(ours)")
      #expect(!ours.contains("other kernel line") && !ours.contains("journal line"))
      #expect(!messages.contains("SVCT:"), "\(messages)")
      #expect(messages.contains("journal line"))
      #expect(messages.contains("other kernel line") == (source != .ownImklog), "\(messages)")
    } cleanup: {
      await rsyslogd.stopAndWait()
    }
  }

  // MARK: verify

  @Test func verifyReportsTheInputAndWarnsWhenImjournalIsUnhandled() {
    let settings = RolloutSettings()
    let conf = "==> /etc/rsyslog.conf\n" + Self.rhel8Conf
    let old = Renderer.rsyslogDropIn(
      logPath: settings.logPath, rotateSize: settings.rotateSize, logrotatePath: settings.logrotatePath)
    let before = NodeProber.make(
      host: HostID("n1"), sections: ["rsyslog-conf": conf], files: [settings.rsyslogDropInPath: Array(old.utf8)])
    let desired = NodeRollout.desiredDropIn(probe: before, settings: settings)
    let warn = Verifier.kernelInputCheck(probe: before, desiredDropIn: desired, settings: settings)
    #expect(warn.status == .warn)
    #expect(warn.evidence.contains("imjournal's rate limit: 20000 messages per 600 s"))
    #expect(warn.evidence.contains("a busy node loses lines silently"))
    #expect(warn.fix?.contains("svctrace install") == true)
    let after = NodeProber.make(
      host: HostID("n1"), sections: ["rsyslog-conf": conf, "platform": "id=rocky\nselinux=Enforcing\n"],
      files: [settings.rsyslogDropInPath: Array(desired.utf8)])
    let pass = Verifier.kernelInputCheck(probe: after, desiredDropIn: desired, settings: settings)
    #expect(pass.evidence.contains("node: rocky (RHEL family), SELinux enforcing"))
    #expect(pass.status == .pass)
    #expect(pass.evidence.contains("loads imklog and takes its lines from imklog only"))
    let debian = NodeProber.make(
      host: HostID("n1"), sections: ["rsyslog-conf": "==> /etc/rsyslog.conf\n" + Self.debianConf],
      files: [settings.rsyslogDropInPath: Array(old.utf8)])
    let plain = Verifier.kernelInputCheck(probe: debian, desiredDropIn: old, settings: settings)
    #expect(plain.status == .pass)
    #expect(plain.evidence.contains("through imklog, once, without a rate limit"))
  }

  // MARK: SELinux, firewalld

  static func nftPlan(selinux: String?) throws -> NodePlan {
    let listing = """
      table ip kube-proxy {
      	map service-ips {
      		type ipv4_addr . inet_proto . inet_service : verdict
      		elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https }
      	}
      }
      """
    var sections = ["kp4": listing, "rsyslog-conf": "==> /etc/rsyslog.conf\n" + rhel8Conf]
    if let selinux { sections["platform"] = "id=rocky\nselinux=\(selinux)\nfirewalld\n" }
    let probe = NodeProber.make(host: HostID("n1"), sections: sections)
    return try NodeRollout.plan(probe: probe, settings: RolloutSettings())
  }

  @Test func restoreconIsRenderedOnlyWhereSELinuxEnforces() throws {
    for (mode, rendered) in [("Enforcing", true), ("Permissive", false), (nil, false)] {
      let plan = try Self.nftPlan(selinux: mode)
      let script = try ApplyScript.render(plan, nonce: "abc").script
      #expect(script.contains("restorecon") == rendered, "\(mode ?? "no SELinux")")
      let steps = try ApplyScript.render(plan, nonce: "abc").steps.map(\.key)
      if rendered {
        // Labelled before rsyslog is restarted, after the drop-in is written.
        let context = try #require(steps.firstIndex(of: "log-context"))
        #expect(context < (steps.firstIndex(of: "rsyslog-restart") ?? 0))
      }
    }
  }

  /// The step itself on a real shell, with a stand-in `restorecon` that records its arguments:
  /// it creates the file (0640), labels it, and the undo removes what it created.
  @Test func restoreconStepLabelsTheFileItCreates() async throws {
    let directory = NSTemporaryDirectory() + "svctrace-selinux-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try "#!/bin/sh\necho \"$@\" >> \(directory)/restorecon.calls\n".write(
      toFile: directory + "/bin/restorecon", atomically: true, encoding: .utf8)
    _ = try await LocalProcess.run(["chmod", "755", directory + "/bin/restorecon"])
    var plan = try Self.nftPlan(selinux: "Enforcing")
    plan.settings.logPath = directory + "/logs/iptables.log"
    let commands = try ApplyScript.logContextCommands(plan)
    let environment = ["PATH": directory + "/bin:/usr/bin:/bin", "B": directory]
    let apply = try await LocalProcess.shell(commands.apply.joined(separator: "\n"), environment: environment)
    #expect(apply.exitStatus == 0, "\(apply.stderrText)")
    #expect(FileManager.default.fileExists(atPath: plan.settings.logPath))
    let mode = try await LocalProcess.run(["stat", "-c", "%a", plan.settings.logPath])
    #expect(mode.stdoutText == "640\n")
    let calls = try String(contentsOfFile: directory + "/restorecon.calls", encoding: .utf8)
    #expect(calls == "\(plan.settings.logPath)\n\(directory)/logs\n")
    let undo = try await LocalProcess.shell("rc=0\n" + commands.undo.joined(separator: "\n"), environment: environment)
    #expect(undo.exitStatus == 0)
    #expect(!FileManager.default.fileExists(atPath: directory + "/logs"))
  }

  /// svctrace's rendered netfilter commands name only its own objects: never a firewalld table.
  @Test func renderedScriptsNeverTouchFirewalld() throws {
    let plan = try Self.nftPlan(selinux: "Enforcing")
    #expect(plan.probe.platform.firewalld)
    let apply = try ApplyScript.render(plan, nonce: "abc").script
    let remove = try ApplyScript.renderRemove(
      settings: plan.settings, purgeLogs: true, legacy: true, nonce: "abc")
    let removeScript = try NodeScripts.removeScript(settings: plan.settings, state: plan.nodeState)
    // The scripts carry payloads in base64: decode them too.
    var texts = [apply, remove, removeScript, plan.nftDesired ?? ""]
    for text in [apply, remove] {
      for block in text.components(separatedBy: "<<'SVCTRACE_B64'").dropFirst() {
        let body = block.components(separatedBy: "SVCTRACE_B64").first ?? ""
        let lines = body.split(separator: "\n").dropFirst().joined()
        if let data = Data(base64Encoded: lines) { texts.append(String(decoding: data, as: UTF8.self)) }
      }
    }
    func word(_ text: Substring) -> String {
      String(text.drop { $0 == "'" || $0 == "\"" }.prefix { $0.isLetter || $0.isNumber || $0 == "$" || $0 == "_" })
    }
    var seen = 0
    for text in texts {
      // The probe (the remove reply's first half) only asks whether firewalld is there.
      let readOnly = text.replacingOccurrences(of: "systemctl is-active --quiet firewalld", with: "")
        .replacingOccurrences(of: "nft list table inet firewalld >/dev/null", with: "")
        .replacingOccurrences(of: "&& echo firewalld;", with: "")
      #expect(!readOnly.contains("firewalld"))
      for match in text.matches(of: #/(?:delete|flush|add|create) (?:table|chain) (\S+) (\S+)/#) {
        seen += 1
        let family = word(match.output.1)
        let table = word(match.output.2)
        #expect(["inet", "ip", "ip6"].contains(family) || family.hasPrefix("$"), "\(match.output.0)")
        #expect(
          (family == "inet" && table == "svctrace") || (family != "inet" && table == "mangle"), "\(match.output.0)")
      }
    }
    #expect(seen > 0)
  }

  // MARK: dateext

  /// A global `dateext` (RHEL's default `/etc/logrotate.conf`) does not rename svctrace's rotated
  /// files: the real logrotate, with a global configuration that sets `dateext` and includes
  /// svctrace's entry, rotates to `.1`.
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/logrotate")))
  func globalDateextKeepsNumberedNames() async throws {
    let directory = NSTemporaryDirectory() + "svctrace-dateext-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/logrotate.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let log = directory + "/iptables.log"
    try "2026-12-07T10:00:00.000000+00:00 n1 kernel: SVCT:PRE IN=eth0\n".write(
      toFile: log, atomically: true, encoding: .utf8)
    // The postrotate (an rsyslog HUP) is replaced: this machine's rsyslog is not the node's.
    let entry = Renderer.logrotate(logPath: log, size: "1M", rotate: 3, hasRsyslogRotate: false)
      .replacingOccurrences(of: "systemctl kill -s HUP rsyslog.service >/dev/null 2>&1 || true", with: "true")
    #expect(entry.contains("    nodateext\n"))
    try entry.write(toFile: directory + "/logrotate.d/svctrace", atomically: true, encoding: .utf8)
    try """
    weekly
    rotate 4
    create
    dateext
    dateformat -%Y%m%d
    include \(directory)/logrotate.d

    """.write(toFile: directory + "/logrotate.conf", atomically: true, encoding: .utf8)
    let result = try await LocalProcess.run(
      ["/usr/sbin/logrotate", "-f", "-s", directory + "/state", directory + "/logrotate.conf"])
    #expect(result.exitStatus == 0, "\(result.stderrText)")
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    #expect(names.contains("iptables.log.1"), "\(names)")
    #expect(!names.contains { $0.hasPrefix("iptables.log-") }, "\(names)")
  }
}

/// firewalld's table beside svctrace's, on real nftables in a scratch namespace (root only).
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root for network namespaces"))
struct FirewalldCoexistenceTests {
  @Test(arguments: [(18, FakeKubeProxy.nftables), (19, .iptablesNFT)])
  func installAndRemoveLeaveFirewalldsTableAlone(id: Int, kind: FakeKubeProxy) async throws {
    let scratch = try await ScratchNode.make(id: id, kind: kind)
    try await withCleanup {
      let firewalld = """
        table inet firewalld {
        	chain filter_INPUT {
        		type filter hook input priority filter + 10; policy accept;
        		ct state established,related accept
        		iifname "lo" accept
        	}
        	chain mangle_PREROUTING {
        		type filter hook prerouting priority mangle + 10; policy accept;
        	}
        }
        """
      try await scratch.check("ip netns exec \(scratch.node) nft -f -", stdin: firewalld + "\n")
      let list = "ip netns exec \(scratch.node) nft list table inet firewalld"
      let before = try await scratch.check(list).stdoutText
      let snapshot = try await scratch.snapshot()
      let session = scratch.session()
      let settings = scratch.settings()
      let report = await NodeRollout.install(session, settings: settings)
      #expect(report.failure == nil, "\(String(describing: report.failure))")
      #expect(try await scratch.check(list).stdoutText == before)
      let removed = await NodeRollout.remove(session, settings: settings)
      #expect(removed.failure == nil, "\(String(describing: removed.failure))")
      #expect(try await scratch.check(list).stdoutText == before)
      #expect(try await scratch.snapshot() == snapshot)
    } cleanup: {
      await scratch.tearDown()
    }
  }
}

/// A journald node in miniature: a real `systemd-journald` (volatile storage, `ReadKMsg=no`) and a
/// real rsyslogd reading it through `imjournal`, in a private mount namespace (root only; the
/// journal sockets and directories are tmpfs there, so this machine's journal is not touched).
/// Kernel messages cannot be fed to journald in a test: the line is logged through the journal's
/// native socket with `SYSLOG_FACILITY=0` (kern) and the tag `kernel`, which is how imjournal sees
/// a kernel line; a loopback UDP input named `imklog` stands in for imklog.
@Suite(
  .serialized,
  .enabled(
    if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-journald")
      && FileManager.default.isExecutableFile(atPath: "/usr/sbin/rsyslogd")
      && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
      && FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/rsyslog/imjournal.so"),
    "needs root, systemd-journald, rsyslogd with imjournal, unshare"))
struct JournaldNodeTests {
  static let script = """
    set -e
    D=$1; KP=$2
    for d in /run/systemd/journal /run/log /var/log/journal; do mkdir -p $d; mount -t tmpfs tmpfs $d; done
    printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\n' > $D/journald.conf
    mount --bind $D/journald.conf /etc/systemd/journald.conf
    /lib/systemd/systemd-journald > $D/journald.out 2>&1 &
    jpid=$!
    i=0; while [ ! -S /run/systemd/journal/socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    /usr/sbin/rsyslogd -n -f $D/rsyslog.conf -i $D/rsyslogd.pid > $D/rsyslogd.out 2>&1 &
    rpid=$!
    python3 - $D $KP <<'PY'
    import socket, sys, time
    D, port = sys.argv[1], int(sys.argv[2])
    j = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    def jsend(text):
        j.sendto(("MESSAGE=%s\\nSYSLOG_FACILITY=0\\nPRIORITY=6\\nSYSLOG_IDENTIFIER=kernel\\n" % text).encode(),
                 "/run/systemd/journal/socket")
    def usend(text): u.sendto(("<6>kernel: " + text).encode(), ("127.0.0.1", port))
    def has(name, text):
        try: return text in open(D + "/" + name).read()
        except OSError: return False
    for _ in range(200):
        usend("SVCT:READY"); time.sleep(0.05)
        if has("iptables.log", "SVCT:READY"): break
    jsend("SVCT:PRE IN=eth0 SRC=10.0.0.1 SPT=1111"); jsend("journal line")
    usend("SVCT:PRE IN=eth0 SRC=10.0.0.1 SPT=1111")
    jsend("journal end")
    for _ in range(200):
        if has("messages", "journal end") and has("iptables.log", "SVCT:PRE IN=eth0"): break
        time.sleep(0.05)
    PY
    kill $rpid; wait $rpid || true
    kill $jpid; wait $jpid || true
    """

  @Test(arguments: [KernelLineSource.input("imklog"), .ownImklog])
  func imjournalsCopyIsDroppedAndTheKernelInputsWrittenOnce(source: KernelLineSource) async throws {
    let directory = NSTemporaryDirectory() + "svctrace-journald-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/rsyslog.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let port = Int.random(in: 45_000...49_999)
    try """
    global(workDirectory="\(directory)")
    module(load="imjournal" StateFile="imjournal.state")
    module(load="imudp")
    input(type="imudp" address="127.0.0.1" port="\(port)" name="imklog")
    include(file="\(directory)/rsyslog.d/*.conf")
    *.* action(type="omfile" file="\(directory)/messages" template="RSYSLOG_TraditionalFileFormat")

    """.write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
    try Renderer.rsyslogDropIn(
      logPath: directory + "/iptables.log", rotateSize: "1M", logrotatePath: directory + "/logrotate", source: source
    ).replacingOccurrences(of: Renderer.imklogLoad, with: "")
      .write(toFile: directory + "/rsyslog.d/10-svctrace.conf", atomically: true, encoding: .utf8)
    try Self.script.write(toFile: directory + "/node.sh", atomically: true, encoding: .utf8)
    let run = try await LocalProcess.run(
      [
        "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", directory + "/node.sh", directory,
        String(port),
      ])
    #expect(run.exitStatus == 0, "\(run.stderrText)")
    let ours = (try? String(contentsOfFile: directory + "/iptables.log", encoding: .utf8)) ?? ""
    let messages = (try? String(contentsOfFile: directory + "/messages", encoding: .utf8)) ?? ""
    // journald delivered through imjournal: its own start message and the plain lines arrived.
    #expect(messages.contains("journal line") && messages.contains("journal end"), "\(messages)")
    // The SVCT line came through both inputs: written once (imklog's copy), imjournal's dropped.
    #expect(ours.components(separatedBy: "SVCT:PRE IN=eth0").count - 1 == 1, "\(ours)")
    #expect(!messages.contains("SVCT:"), "\(messages)")
  }
}
