import Foundation
import Testing

@testable import Inventory

@Suite struct SourceTests {
  @Test func kubesprayYamlWithGroupVarsWorksUnchanged() throws {
    let inventory = try Inventory.load(paths: [Fixture.path("kubespray/hosts.yaml")])
    #expect(inventory.names == ["node1", "node2", "node3", "node4"])
    #expect(inventory.groups["kube_control_plane"]?.allHosts == ["node1", "node2"])
    #expect(inventory.groups["etcd"]?.allHosts == ["node1", "node2", "node3"])
    #expect(inventory.groups["k8s_cluster"]?.allHosts == ["node1", "node2", "node3", "node4"])
    #expect(inventory.groups["k8s_cluster"]?.children == ["kube_control_plane", "kube_node", "calico_rr"])
    #expect(inventory.groups["calico_rr"]?.allHosts == [])
    #expect(inventory.groups["ungrouped"]?.allHosts == [])

    let node1 = try #require(inventory.host(named: "node1"))
    #expect(node1.groups == ["all", "kube_control_plane", "kube_node", "etcd", "k8s_cluster"])
    #expect(node1.address == "10.10.1.3")
    #expect(node1.user == "ubuntu")
    #expect(node1.become == true)
    #expect(node1.string("svctrace_service_cidr") == "10.233.0.0/18")
    #expect(node1.string("svctrace_nodeport_range") == "30000-32767")
    #expect(node1.int("svctrace_max_rate") == 200)
    #expect(node1.string("svctrace_log_path") == "/var/log/svctrace/iptables.log")
    #expect(node1.string("kube_proxy_mode") == "iptables")
    #expect(node1.string("etcd_deployment_type") == "host")
    #expect(node1.bool("helm_enabled") == false)

    let node4 = try #require(inventory.host(named: "node4"))
    #expect(node4.string("etcd_deployment_type") == nil)
    #expect(node4.string("svctrace_service_cidr") == "10.233.0.0/18")

    #expect(try inventory.names("kube_control_plane") == ["node1", "node2"])
    #expect(try inventory.names("k8s_cluster:!etcd") == ["node4"])
    #expect(try inventory.names("calico_rr") == [])
  }

  @Test func kubesprayIniWorksUnchanged() throws {
    let inventory = try Inventory.load(paths: [Fixture.path("kubespray-ini/inventory.ini")])
    #expect(inventory.names == ["node1", "node2", "node3", "node4", "node5"])
    #expect(inventory.groups["k8s_cluster"]?.allHosts == ["node1", "node2", "node3", "node4", "node5"])
    #expect(inventory.groups["kube_node"]?.allHosts == ["node2", "node3", "node4", "node5"])
    #expect(inventory.groups["calico_rr"]?.hosts == [])
    #expect(inventory.groups["ungrouped"]?.allHosts == [])
    #expect(inventory.host(named: "node1")?.address == "95.54.0.12")
    #expect(inventory.host(named: "node1")?.string("ip") == "10.3.0.1")
    #expect(inventory.host(named: "node4")?.string("etcd_member_name") == "")
    #expect(try inventory.names("etcd:&kube_node") == ["node2", "node3"])
  }

  @Test func precedenceFollowsAnsible() throws {
    let inventory = try Inventory.load(paths: [Fixture.path("precedence/inventory.ini")])
    let w1 = try #require(inventory.host(named: "w1"))
    let w2 = try #require(inventory.host(named: "w2"))

    // host_vars file > inventory host var > group_vars files > inventory group vars.
    #expect(w1.string("level") == "host_file")
    #expect(w1.string("port_src") == "inline")
    // Among group_vars files the deepest group wins; files in a group dir load in name order;
    // a .txt file in it is ignored.
    #expect(w2.string("level") == "web_file_02")
    #expect(w2.string("this") == nil)
    // Any group_vars file (even all's) beats any inventory group var.
    #expect(w2.string("mixed") == "all_file")
    // Parent-only values reach children, from inventory and from files.
    #expect(w2.string("parent_only") == "p")
    #expect(w2.bool("parent_file_only") == true)
    // Same depth: alphabetical, the later name wins...
    #expect(w2.string("tie") == "omega")
    // ...unless ansible_group_priority says otherwise.
    #expect(w2.string("prio") == "alpha")
    // host_vars file without extension, holding a list.
    #expect(w2.string("w2_file") == "yes")
    #expect(w2.strings("svctrace_services") == ["10.96.0.10:53", "10.96.0.1:443"])
    #expect(w1.string("w2_file") == nil)

    #expect(inventory.groups["web"]?.vars["level"] == .string("web_file_02"))
    #expect(inventory.groups["alpha"]?.priority == 10)
  }

  @Test func directoryInventoryReadsEveryInventoryFileAndSkipsTheRest() throws {
    let directory = Fixture.path("dir")
    #expect(FileManager.default.fileExists(atPath: directory + "/hosts.retry"))
    #expect(FileManager.default.fileExists(atPath: directory + "/README.md"))
    #expect(FileManager.default.fileExists(atPath: directory + "/old.ini~"))
    let inventory = try Inventory.load(paths: [directory])
    #expect(inventory.files == [directory + "/01-hosts.ini", directory + "/02-more.yml", directory + "/sub/03-cache"])
    #expect(inventory.names == ["d1", "d2", "d3", "d4"])
    #expect(inventory.host(named: "d1")?.groups == ["all", "web", "db"])
    #expect(inventory.host(named: "d1")?.string("dir_var") == "from_dir")
    #expect(inventory.host(named: "d3")?.string("dir_var") == nil)
    #expect(inventory.host(named: "d4")?.port == 2201)
  }

  @Test func hiddenFilesAndScriptsInADirectoryAreSkipped() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svctrace-inv-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try "[web]\nh1\n".write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
    try "[broken\n".write(to: directory.appendingPathComponent(".hidden.ini"), atomically: true, encoding: .utf8)
    let script = directory.appendingPathComponent("ec2.sh")
    try "#!/bin/sh\necho {}\n".write(to: script, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
    let inventory = try Inventory.load(paths: [directory.path])
    #expect(inventory.names == ["h1"])
    #expect(inventory.warnings.map(\.message) == ["skipping executable dynamic inventory script (not supported)"])
  }

  @Test func severalSourcesMergeInOrder() throws {
    let a = Fixture.path("multi/one/a.ini")
    let b = Fixture.path("multi/two/b.yml")
    let inventory = try Inventory.load(paths: [a, b])
    #expect(inventory.names == ["m1", "m2"])
    let m1 = try #require(inventory.host(named: "m1"))
    #expect(m1.groups == ["all", "web", "db"])
    #expect(m1.bool("from_b") == true)
    // group_vars beside the second source apply to the group's hosts from the first one.
    #expect(m1.int("from_two") == 2)
    #expect(try Inventory.load(paths: [b, a]).names == ["m2", "m1"])
  }

  @Test func missingSourceIsNamed() {
    #expect(throws: InventoryError(file: "/nonexistent/hosts", message: "no such inventory file or directory")) {
      try Inventory.load(paths: ["/nonexistent/hosts"])
    }
  }

  @Test func shippedExamplesLoad() throws {
    let ini = try Inventory.load(paths: [Fixture.example("hosts.ini")])
    let yaml = try Inventory.load(paths: [Fixture.example("hosts.yml")])
    #expect(ini.hosts == yaml.hosts)
    #expect(!ini.hosts.isEmpty)
    let kubespray = try Inventory.load(paths: [Fixture.example("kubespray/hosts.yaml")])
    #expect(kubespray.groups["k8s_cluster"]?.allHosts.isEmpty == false)
    #expect(kubespray.hosts.allSatisfy { $0.string("svctrace_service_cidr") != nil })
    #expect(ini.warnings.isEmpty && yaml.warnings.isEmpty && kubespray.warnings.isEmpty)
  }
}

@Suite struct VaultTests {
  @Test func vaultedValuesAreSkippedWithAWarning() throws {
    let inventory = try Inventory.load(paths: [Fixture.path("vault/hosts.yml")])
    let host = try #require(inventory.host(named: "v1"))
    #expect(host.becomePassword == nil)
    #expect(host.password == nil)
    #expect(host.user == "admin")
    #expect(host.int("svctrace_max_rate") == 100)
    #expect(
      inventory.warnings.map(\.description) == [
        Fixture.path("vault/hosts.yml")
          + ":4: warning: 'ansible_become_password' is encrypted with ansible-vault, which svctrace cannot decrypt; the variable is ignored",
        Fixture.path("vault/group_vars/all/main.yml")
          + ":2: warning: 'ansible_password' is encrypted with ansible-vault, which svctrace cannot decrypt; the variable is ignored",
        Fixture.path("vault/group_vars/all/vault.yml")
          + ":1: warning: file is encrypted with ansible-vault, which svctrace cannot decrypt; its variables are ignored",
      ])
  }

  @Test func vaultedInventoryIsRefused() {
    #expect {
      try Inventory.parse("$ANSIBLE_VAULT;1.1;AES256\n6231\n", file: "hosts")
    } throws: { error in
      (error as? InventoryError)?.line == 1
    }
  }
}
