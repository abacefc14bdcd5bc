internal import Foundation

/// An Ansible inventory as teams already keep it: INI or YAML files, directories of them, and the
/// `group_vars/` / `host_vars/` beside them.
///
/// Loading mirrors ansible-core's `ini` and `yaml` inventory plugins and its variable precedence,
/// lowest first:
/// 1. inventory `vars` of `all`;
/// 2. inventory `vars` of the host's other groups, ordered by depth, then
///    `ansible_group_priority`, then name (children override parents);
/// 3. `group_vars/all` files, then `group_vars/<group>` files in the same group order
///    (per inventory source, in `-i` order);
/// 4. the host's own variables in the inventory;
/// 5. `host_vars/<host>` files.
///
/// Values are taken literally: Jinja expressions (`{{ … }}`) are not evaluated.
public struct Inventory: Sendable {
  /// Every host, in the order first seen (files in `-i` order, then file order), without repeats.
  public private(set) var hosts: [InventoryHost]
  /// Every group by name, including the implicit `all` and `ungrouped`.
  public private(set) var groups: [String: InventoryGroup]
  /// Things accepted but worth telling the user (ignored keys, skipped scripts…).
  public private(set) var warnings: [InventoryWarning]
  /// The inventory files actually read, in order.
  public private(set) var files: [String]

  /// The syntax of one inventory file.
  public enum Format: Sendable {
    case ini
    case yaml
  }

  /// File name endings a directory inventory skips (Ansible's `INVENTORY_IGNORE_EXTS` minus `.ini`).
  static let ignoredExtensions = [
    "~", ".orig", ".cfg", ".retry", ".pyc", ".pyo", ".swp", ".bak", ".rpm", ".md", ".txt", ".rst",
  ]
  /// Entry names a directory inventory always skips.
  static let ignoredNames: Set<String> = ["group_vars", "host_vars", "vars_plugins"]

  /// Loads and merges inventory sources, as `-i` does (it may repeat).
  ///
  /// A path that does not exist but contains a comma is an Ansible host list (`node1,node2,`).
  /// Each path is a file (INI or YAML, told apart by extension or content) or a directory (every
  /// inventory file in it, recursively, in name order; skipping hidden entries, `group_vars/`,
  /// `host_vars/` and backup / retry / documentation files). `group_vars/` and `host_vars/` are
  /// read beside each file source and inside each directory source.
  /// - Throws: ``InventoryError`` naming the file and line of the first problem.
  public static func load(paths: [String]) throws(InventoryError) -> Inventory {
    var loader = Loader()
    for path in paths { try loader.addSource(path) }
    return try loader.finish()
  }

  /// Parses one inventory held in memory (no `group_vars/` or `host_vars/`); `file` names it in errors.
  ///
  /// - Throws: ``InventoryError`` naming `file` and the line of the first problem.
  public static func parse(_ text: String, file: String, format: Format? = nil) throws(InventoryError) -> Inventory {
    var loader = Loader()
    try loader.parse(text, file: file, format: format ?? detectFormat(file: file, text: text))
    loader.files.append(file)
    return try loader.finish()
  }

  /// The host called `name`, if any.
  public func host(named name: String) -> InventoryHost? {
    guard let index = hostIndex[name] else { return nil }
    return hosts[index]
  }

  /// Position of each host in ``hosts``.
  let hostIndex: [String: Int]

  /// Tells INI from YAML: `.yml`, `.yaml`, `.json` are YAML, `.ini` is INI; otherwise the first
  /// meaningful line decides (`---`, `{` or `key:` mean YAML; `[section]` or a host line mean INI).
  public static func detectFormat(file: String, text: String) -> Format {
    let lower = file.lowercased()
    if lower.hasSuffix(".yml") || lower.hasSuffix(".yaml") || lower.hasSuffix(".json") { return .yaml }
    if lower.hasSuffix(".ini") { return .ini }
    for raw in text.split(separator: "\n") {
      let line = raw.trimmingWhitespace()
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line == "---" || line.hasPrefix("{") || line.hasPrefix("%YAML") { return .yaml }
      if line.hasPrefix("[") { return .ini }
      // `name:` or `name: value` with no space before the colon is YAML; `node1:2222` is INI.
      if let colon = line.firstIndex(of: ":"), !line[..<colon].contains(where: { " \t=\"'".contains($0) }) {
        let after = line[line.index(after: colon)...]
        if after.isEmpty || after.first == " " || after.first == "\t" { return .yaml }
      }
      return .ini
    }
    return .ini
  }

  init(hosts: [InventoryHost], groups: [String: InventoryGroup], warnings: [InventoryWarning], files: [String]) {
    self.hosts = hosts
    self.groups = groups
    self.warnings = warnings
    self.files = files
    var index: [String: Int] = [:]
    for (position, host) in hosts.enumerated() { index[host.name] = position }
    hostIndex = index
  }
}

/// Reads sources into one ``InventoryData`` and computes the final hosts and groups.
private struct Loader {
  var data = InventoryData()
  var files: [String] = []
  /// Where each source's `group_vars/` and `host_vars/` live, in `-i` order.
  var baseDirectories: [String] = []
  var varsCache: [String: [String: InventoryValue]] = [:]

  mutating func addSource(_ path: String) throws(InventoryError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      if path.contains(",") {
        try addHostList(path)
        return
      }
      throw InventoryError(file: path, message: "no such inventory file or directory")
    }
    if isDirectory.boolValue {
      baseDirectories.append(path)
      try addDirectory(path)
    } else {
      baseDirectories.append(
        (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
      try addFile(path)
    }
  }

  /// Adds an Ansible host list (`-i 'node1,node2:2222,'`) as ungrouped hosts.
  ///
  /// Ranges and ports are allowed in each entry. A host list has no `group_vars/` or `host_vars/`.
  private mutating func addHostList(_ list: String) throws(InventoryError) {
    for entry in list.split(separator: ",") {
      let pattern = entry.trimmingWhitespace()
      guard !pattern.isEmpty else { continue }
      do {
        let (names, port) = try HostExpansion.expand(pattern)
        for name in names { data.addHost(name, group: "ungrouped", port: port) }
      } catch {
        throw InventoryError(file: list, message: error.message)
      }
    }
    files.append(list)
  }

  private mutating func addDirectory(_ directory: String) throws(InventoryError) {
    let entries: [String]
    do {
      entries = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    } catch {
      throw InventoryError(file: directory, message: "cannot list inventory directory: \(error.localizedDescription)")
    }
    for entry in entries {
      if entry.hasPrefix(".") || Inventory.ignoredNames.contains(entry)
        || Inventory.ignoredExtensions.contains(where: { entry.hasSuffix($0) })
      {
        continue
      }
      let path = (directory as NSString).appendingPathComponent(entry)
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
      if isDirectory.boolValue {
        try addDirectory(path)
        continue
      }
      let text = try read(path)
      if text.hasPrefix("#!") && FileManager.default.isExecutableFile(atPath: path) {
        data.warnings.append(
          InventoryWarning(file: path, line: 1, message: "skipping executable dynamic inventory script (not supported)")
        )
        continue
      }
      let lower = entry.lowercased()
      if lower.hasSuffix(".toml") || lower.hasSuffix(".py") || lower.hasSuffix(".sh") {
        data.warnings.append(
          InventoryWarning(file: path, line: nil, message: "skipping file that is not an INI or YAML inventory"))
        continue
      }
      try parse(text, file: path, format: Inventory.detectFormat(file: path, text: text))
      files.append(path)
    }
  }

  private mutating func addFile(_ path: String) throws(InventoryError) {
    let text = try read(path)
    try parse(text, file: path, format: Inventory.detectFormat(file: path, text: text))
    files.append(path)
  }

  private func read(_ path: String) throws(InventoryError) -> String {
    guard let contents = FileManager.default.contents(atPath: path) else {
      throw InventoryError(file: path, message: "cannot read file (permission denied or not a regular file)")
    }
    if contents.contains(0) {
      throw InventoryError(file: path, message: "binary file, expected an INI or YAML inventory")
    }
    return String(decoding: contents, as: UTF8.self)
  }

  mutating func parse(_ rawText: String, file: String, format: Inventory.Format) throws(InventoryError) {
    let text = rawText.hasPrefix("\u{FEFF}") ? String(rawText.dropFirst()) : rawText
    if text.hasPrefix("$ANSIBLE_VAULT;") {
      throw InventoryError(
        file: file, line: 1,
        message: "inventory is encrypted with ansible-vault; decrypt it first (ansible-vault view \(file) > plain-file)"
      )
    }
    switch format {
    case .ini:
      var parser = INIParser(file: file, data: data)
      try parser.parse(text)
      data = parser.data
    case .yaml:
      var parser = YAMLParser(file: file, data: data)
      try parser.parse(text)
      data = parser.data
    }
  }

  /// Variables from `<base>/<kind>/<name>` files, merged in Ansible's file order.
  private mutating func fileVars(base: String, kind: String, name: String) throws(InventoryError) -> [String:
    InventoryValue]
  {
    var result: [String: InventoryValue] = [:]
    for path in VarsFiles.find(in: (base as NSString).appendingPathComponent(kind), name: name) {
      if varsCache[path] == nil {
        let (vars, warnings) = try YAMLSupport.variables(try read(path), file: path)
        varsCache[path] = vars
        data.warnings += warnings
      }
      result.merge(varsCache[path] ?? [:]) { _, new in new }
    }
    return result
  }

  mutating func finish() throws(InventoryError) -> Inventory {
    data.reconcile(warningFile: files.last ?? "inventory")
    let depths = data.depths()
    func sortKey(_ name: String) -> (Int, Int, String) {
      (depths[name] ?? 0, data.groups[name]?.priority ?? 1, name)
    }

    // group_vars per source and group, loaded once.
    var groupFileVars: [String: [[String: InventoryValue]]] = [:]
    for name in data.groupOrder {
      var perSource: [[String: InventoryValue]] = []
      for base in baseDirectories { perSource.append(try fileVars(base: base, kind: "group_vars", name: name)) }
      groupFileVars[name] = perSource
    }

    var hosts: [InventoryHost] = []
    var members: [String: [String]] = [:]
    for name in data.hostOrder {
      guard let record = data.hosts[name] else { continue }
      let memberOf = data.allGroups(ofHost: name)
      for group in memberOf { members[group, default: []].append(name) }
      let ordered = memberOf.filter { $0 != "all" }.sorted { sortKey($0) < sortKey($1) }
      var vars = data.groups["all"]?.vars ?? [:]
      for group in ordered { vars.merge(data.groups[group]?.vars ?? [:]) { _, new in new } }
      for (sourceIndex, _) in baseDirectories.enumerated() {
        vars.merge(groupFileVars["all"]?[sourceIndex] ?? [:]) { _, new in new }
      }
      for (sourceIndex, _) in baseDirectories.enumerated() {
        for group in ordered { vars.merge(groupFileVars[group]?[sourceIndex] ?? [:]) { _, new in new } }
      }
      vars.merge(record.vars) { _, new in new }
      for base in baseDirectories {
        vars.merge(try fileVars(base: base, kind: "host_vars", name: name)) { _, new in new }
      }
      hosts.append(InventoryHost(name: name, groups: memberOf, vars: vars))
    }

    var groups: [String: InventoryGroup] = [:]
    for name in data.groupOrder {
      guard let record = data.groups[name] else { continue }
      var vars = record.vars
      for perSource in groupFileVars[name] ?? [] { vars.merge(perSource) { _, new in new } }
      groups[name] = InventoryGroup(
        name: name, hosts: record.hosts, allHosts: members[name] ?? [],
        children: record.children, parents: record.parents, vars: vars,
        depth: depths[name] ?? 0, priority: record.priority)
    }
    return Inventory(hosts: hosts, groups: groups, warnings: data.warnings, files: files)
  }
}

/// Finds `group_vars` / `host_vars` files the way Ansible's `find_vars_files` does.
enum VarsFiles {
  static let extensions = [".yml", ".yaml", ".json"]

  /// Files for entity `name` in `directory`: `name` (a file, or a directory read recursively),
  /// then `name.yml`, `name.yaml`, `name.json` — the first plain file found ends the search.
  static func find(in directory: String, name: String) -> [String] {
    var found: [String] = []
    for ext in [""] + extensions {
      let path = (directory as NSString).appendingPathComponent(name + ext)
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
      if isDirectory.boolValue {
        found.append(contentsOf: filesInside(path))
      } else {
        found.append(path)
        break
      }
    }
    return found
  }

  /// Every vars file under `directory`, sorted, recursing into extension-less subdirectories;
  /// hidden files and `~` backups skipped; files need no extension or a YAML/JSON one.
  private static func filesInside(_ directory: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    var found: [String] = []
    for entry in entries.sorted() where !entry.hasPrefix(".") && !entry.hasSuffix("~") {
      let path = (directory as NSString).appendingPathComponent(entry)
      let ext = (entry as NSString).pathExtension
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
      if isDirectory.boolValue {
        if ext.isEmpty { found.append(contentsOf: filesInside(path)) }
      } else if ext.isEmpty || extensions.contains("." + ext) {
        found.append(path)
      }
    }
    return found
  }
}
