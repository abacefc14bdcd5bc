/// Ansible host patterns (`--limit`): names, globs, `~regex`, groups, `a:b` / `a,b` union,
/// `a:&b` intersection, `a:!b` exclusion, `group[0]` / `group[1:3]` subscripts.
extension Inventory {
  /// The hosts matching an Ansible pattern, in Ansible's order; `nil` selects every host.
  ///
  /// Terms are applied like ansible-core does: unions first (in the order given), then
  /// intersections, then exclusions; a pattern made only of `&`/`!` terms starts from `all`.
  /// A term that matches no host and no group is an error (Ansible only warns), so a typo in
  /// `--limit` never silently selects nothing or everything.
  /// - Throws: ``InventoryError`` (file `--limit`) naming the term.
  public func select(_ pattern: String?) throws(InventoryError) -> [InventoryHost] {
    guard let pattern else { return hosts }
    let terms = Self.splitPattern(pattern)
    guard !terms.isEmpty else { throw limitError("empty host pattern '\(pattern)'") }
    var regular = terms.filter { !$0.hasPrefix("&") && !$0.hasPrefix("!") }
    let intersections = terms.filter { $0.hasPrefix("&") }
    let exclusions = terms.filter { $0.hasPrefix("!") }
    if regular.isEmpty { regular = ["all"] }

    var selected: [String] = []
    var selectedSet: Set<String> = []
    for term in regular + intersections + exclusions {
      let matched = try match(term)
      if term.hasPrefix("!") {
        let drop = Set(matched)
        selected.removeAll { drop.contains($0) }
      } else if term.hasPrefix("&") {
        let keep = Set(matched)
        selected.removeAll { !keep.contains($0) }
      } else {
        for name in matched where !selectedSet.contains(name) { selected.append(name) }
      }
      selectedSet = Set(selected)
    }
    return selected.compactMap { host(named: $0) }
  }

  private func limitError(_ message: String) -> InventoryError {
    InventoryError(file: "--limit", line: nil, message: message)
  }

  /// Splits a pattern like ansible-core's `split_host_pattern`: on commas when there are any,
  /// otherwise on colons outside `[...]` (a lone `host:port` or IPv6 address stays whole).
  static func splitPattern(_ pattern: String) -> [String] {
    if pattern.contains(",") {
      return pattern.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
    }
    let trimmed = pattern.trimmingWhitespace()
    let colons = trimmed.filter { $0 == ":" }.count
    if colons >= 2 && trimmed.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) { return [trimmed] }  // IPv6
    var terms: [String] = []
    var current = ""
    var inBracket = false
    for char in trimmed {
      if inBracket {
        current.append(char)
        if char == "]" { inBracket = false }
      } else if char == "[" {
        current.append(char)
        inBracket = true
      } else if char == ":" || char == " " || char == "\t" {
        if !current.isEmpty { terms.append(current) }
        current = ""
      } else {
        current.append(char)
      }
    }
    if !current.isEmpty { terms.append(current) }
    return terms
  }

  /// The hosts one term (with its `&` / `!` prefix) matches, in inventory order.
  private func match(_ rawTerm: String) throws(InventoryError) -> [String] {
    var term = rawTerm
    if term.hasPrefix("&") || term.hasPrefix("!") { term.removeFirst() }
    guard !term.isEmpty else { throw limitError("empty term in host pattern '\(rawTerm)'") }
    if host(named: term) != nil { return [term] }
    let (base, slice) = Self.splitSubscript(term)
    let matcher = try NameMatcher(base)
    let matchingGroups = groups.keys.filter { matcher.matches($0) }
    var found: Set<String> = []
    for group in matchingGroups { found.formUnion(groups[group]?.allHosts ?? []) }
    let isWildcard = base.hasPrefix("~") || base.contains(where: { ".?*[".contains($0) })
    if matchingGroups.isEmpty || isWildcard {
      for host in hosts where matcher.matches(host.name) { found.insert(host.name) }
    }
    if found.isEmpty && matchingGroups.isEmpty && base != "all" {
      throw limitError("no host or group matches '\(base)' (in pattern term '\(rawTerm)')")
    }
    let ordered = hosts.map(\.name).filter { found.contains($0) }
    guard let (start, end) = slice else { return ordered }
    let count = ordered.count
    let outOfRange = limitError("subscript in '\(rawTerm)' is out of range: '\(base)' has \(count) host(s)")
    if let end {
      let last = end == -1 ? count - 1 : min(end, count - 1)
      guard start < count, start <= last else { throw outOfRange }
      return Array(ordered[start...last])
    }
    let index = start < 0 ? count + start : start
    guard index >= 0, index < count else { throw outOfRange }
    return [ordered[index]]
  }

  /// Splits `group[2]` / `group[0:3]` / `group[1:]` into the name and a subscript, as Ansible does.
  static func splitSubscript(_ term: String) -> (String, (Int, Int?)?) {
    guard !term.hasPrefix("~"), term.hasSuffix("]"), let open = term.lastIndex(of: "["), open != term.startIndex else {
      return (term, nil)
    }
    let base = String(term[..<open])
    let inner = term[term.index(after: open)..<term.index(before: term.endIndex)]
    if let index = Int(inner) { return (base, (index, nil)) }
    let parts = inner.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, let start = Int(parts[0]), start >= 0 else { return (term, nil) }
    if parts[1].isEmpty { return (base, (start, -1)) }
    guard let end = Int(parts[1]), end >= 0 else { return (term, nil) }
    return (base, (start, end))
  }
}

/// Matches names against a shell glob (fnmatch: `*`, `?`, `[seq]`, `[!seq]`) or a `~regex`
/// (anchored at the start only, like Python's `re.match`).
struct NameMatcher {
  private let glob: [Character]?
  private let regex: Regex<AnyRegexOutput>?

  init(_ pattern: String) throws(InventoryError) {
    if pattern.hasPrefix("~") {
      do {
        regex = try Regex(String(pattern.dropFirst()))
      } catch {
        throw InventoryError(
          file: "--limit", message: "invalid regular expression in host pattern '\(pattern)': \(error)")
      }
      glob = nil
    } else {
      glob = Array(pattern)
      regex = nil
    }
  }

  func matches(_ name: String) -> Bool {
    if let regex { return (try? regex.prefixMatch(in: name)) != nil }
    guard let glob else { return false }
    return Self.fnmatch(glob[...], Array(name)[...])
  }

  private static func fnmatch(_ pattern: ArraySlice<Character>, _ name: ArraySlice<Character>) -> Bool {
    var p = pattern.startIndex
    var n = name.startIndex
    var starP: Int?
    var starN = 0
    while n < name.endIndex {
      if p < pattern.endIndex {
        switch pattern[p] {
        case "*":
          starP = p
          starN = n
          p += 1
          continue
        case "?":
          p += 1
          n += 1
          continue
        case "[":
          if let (matched, next) = matchClass(pattern, at: p, name[n]) {
            if matched {
              p = next
              n += 1
              continue
            }
          } else if name[n] == "[" {
            p += 1
            n += 1
            continue
          }
        default:
          if pattern[p] == name[n] {
            p += 1
            n += 1
            continue
          }
        }
      }
      guard let star = starP else { return false }
      p = star + 1
      starN += 1
      n = starN
    }
    while p < pattern.endIndex && pattern[p] == "*" { p += 1 }
    return p == pattern.endIndex
  }

  /// Evaluates a `[...]` class at `start`; `nil` when it is not closed (then `[` is literal).
  private static func matchClass(_ pattern: ArraySlice<Character>, at start: Int, _ char: Character) -> (Bool, Int)? {
    var index = start + 1
    var negate = false
    if index < pattern.endIndex && (pattern[index] == "!" || pattern[index] == "^") {
      negate = true
      index += 1
    }
    var matched = false
    var first = true
    while index < pattern.endIndex {
      let current = pattern[index]
      if current == "]" && !first { return (matched != negate, index + 1) }
      first = false
      if index + 2 < pattern.endIndex && pattern[index + 1] == "-" && pattern[index + 2] != "]" {
        if pattern[index] <= char && char <= pattern[index + 2] { matched = true }
        index += 3
      } else {
        if current == char { matched = true }
        index += 1
      }
    }
    return nil
  }
}
