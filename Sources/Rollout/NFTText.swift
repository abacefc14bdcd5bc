import Foundation
public import SVCTraceCore

/// Reading `nft list …` output.
public enum NFTText {
  /// Names of base chains (`chain X { type … hook …`) in an `nft list table` listing.
  public static func baseChains(in listing: String) -> Set<String> {
    var result = Set<String>()
    var current: String?
    for rawLine in listing.split(separator: "\n") {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("chain "), line.hasSuffix("{") {
        current = line.dropFirst("chain ".count).dropLast().trimmingCharacters(in: .whitespaces)
      } else if let chain = current, line.hasPrefix("type "), line.contains(" hook ") {
        result.insert(chain)
        current = nil
      } else if line.hasPrefix("}") {
        current = nil
      }
    }
    return result
  }

  /// The elements of the set or map `name`: the `elements = { … }` of its `set NAME {` / `map NAME {`
  /// block in an `nft list` listing, and the `add element FAMILY TABLE NAME { … }` statements of an
  /// nft transaction (the form kube-proxy sends and its unit tests expect). Element comments
  /// (`1.2.3.4 . tcp . 80 comment "ns/svc:p" : goto …`) are dropped.
  public static func elements(of name: String, in listing: String) -> [String] {
    var items = listedElements(of: name, in: listing)
    for rawLine in listing.split(separator: "\n") {
      let words = rawLine.split(whereSeparator: \.isWhitespace)
      guard words.count >= 6, words[0] == "add", words[1] == "element", words[4] == name, words[5] == "{",
        let open = rawLine.firstIndex(of: "{"), let close = rawLine.lastIndex(of: "}"), open < close
      else { continue }
      items += rawLine[rawLine.index(after: open)..<close].split(separator: ",").map(String.init)
    }
    return items.map { dropComment($0).split(whereSeparator: \.isWhitespace).joined(separator: " ") }
      .filter { !$0.isEmpty }
  }

  private static func listedElements(of name: String, in listing: String) -> [String] {
    let starts = ["map \(name) {", "set \(name) {"]
    guard let start = starts.compactMap({ listing.range(of: $0) }).first,
      let open = listing[start.upperBound...].range(of: "elements = {")
    else { return [] }
    let body = listing[open.upperBound...]
    guard let close = body.firstIndex(of: "}") else { return [] }
    // A block without elements ends before "elements = {" is reached: check it is ours.
    if let blockEnd = listing[start.upperBound...].firstIndex(of: "}"), blockEnd < open.lowerBound { return [] }
    return body[body.startIndex..<close].split(separator: ",").map(String.init)
  }

  /// An element without its `comment "…"`.
  private static func dropComment(_ element: String) -> String {
    guard let range = element.range(of: " comment \"") else { return element }
    let rest = element[range.upperBound...]
    guard let end = rest.firstIndex(of: "\"") else { return String(element[..<range.lowerBound]) }
    return String(element[..<range.lowerBound] + rest[rest.index(after: end)...])
  }

  /// Service addresses (`service-ips` map) and NodePorts (`service-nodeports` map) of kube-proxy's nft
  /// table, from `nft list table ip[6] kube-proxy` (or kube-proxy's transaction, see
  /// ``elements(of:in:)``). A Service address is a ClusterIP when its verdict goes to a `service-` chain;
  /// `external-` (externalIPs, load-balancer IPs) and `firewall-` chains mark the others.
  public static func kubeProxyServices(_ listing: String, family: IPFamily)
    -> (services: [LearnedService], nodePorts: [LearnedNodePort])
  {
    var services = Set<LearnedService>()
    for element in elements(of: "service-ips", in: listing) {
      // "10.96.0.10 . udp . 53 : goto service-…"; IPv6 addresses contain ':', so split at " : ".
      let parts = element.components(separatedBy: " : ")
      let verdict = parts.count == 2 ? parts[1].split(separator: " ").last.map(String.init) ?? "" : ""
      let keyWords = parts[0].split(separator: " ").filter { $0 != "." }.map(String.init)
      guard parts.count == 2, keyWords.count == 3, let address = ServiceAddress.address(keyWords[0]),
        address.family == family, let proto = IPProtocol(serviceName: keyWords[1]), let port = UInt16(keyWords[2])
      else { continue }
      services.insert(
        LearnedService(
          address: ServiceAddress(address: address, port: port, proto: proto),
          isClusterIP: !verdict.hasPrefix("external-") && !verdict.hasPrefix("firewall-")))
    }
    var nodePorts = Set<LearnedNodePort>()
    for element in elements(of: "service-nodeports", in: listing) {
      let key = element.components(separatedBy: " : ").first ?? element
      let keyWords = key.split(separator: " ").filter { $0 != "." }.map(String.init)
      guard keyWords.count == 2, let proto = IPProtocol(serviceName: keyWords[0]), let port = UInt16(keyWords[1])
      else { continue }
      nodePorts.insert(LearnedNodePort(family: family, port: port, proto: proto))
    }
    return (services.sorted(), nodePorts.sorted { ($0.port, $0.proto) < ($1.port, $1.proto) })
  }

  /// A comparable form of an `nft list table` listing or an nft file.
  ///
  /// Drops counters, handles and the `table X` / `delete table X` preamble of an nft file,
  /// writes symbolic priorities as numbers, collapses whitespace, sorts set elements.
  public static func normalize(_ text: String) -> [String] {
    var lines: [String] = []
    var pending = ""
    for rawLine in text.split(separator: "\n") {
      var line = rawLine.split(whereSeparator: \.isWhitespace).joined(separator: " ")
      if line.isEmpty || line.hasPrefix("#") { continue }
      if line.hasPrefix("delete table ") || (line.hasPrefix("table ") && !line.hasSuffix("{")) { continue }
      line = stripCounters(line)
      line = numericPriority(line)
      // Join set element lists that nft wraps over several lines.
      if !pending.isEmpty {
        pending += " " + line
        if line.contains("}") {
          lines.append(sortElements(pending))
          pending = ""
        }
        continue
      }
      if line.hasPrefix("elements = {") && !line.contains("}") {
        pending = line
        continue
      }
      lines.append(line.hasPrefix("elements = {") ? sortElements(line) : line)
    }
    if !pending.isEmpty { lines.append(pending) }
    return lines
  }

  private static func stripCounters(_ line: String) -> String {
    var words = line.split(separator: " ").map(String.init)
    var index = 0
    while index < words.count {
      if words[index] == "counter" {
        let hasValues = words[safe: index + 1] == "packets" && words[safe: index + 3] == "bytes"
        words.removeSubrange(index..<min(index + (hasValues ? 5 : 1), words.count))
        continue
      }
      if words[index] == "#", words[safe: index + 1] == "handle" {
        words.removeSubrange(index..<min(index + 3, words.count))
        continue
      }
      index += 1
    }
    return words.joined(separator: " ")
  }

  private static let symbolicPriorities: [String: Int] = [
    "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
  ]

  private static func numericPriority(_ line: String) -> String {
    guard let range = line.range(of: " priority ") else { return line }
    let rest = line[range.upperBound...]
    guard let semicolon = rest.firstIndex(of: ";") else { return line }
    let words = rest[rest.startIndex..<semicolon].split(separator: " ").map(String.init)
    var value: Int?
    if words.count == 1 {
      value = Int(words[0]) ?? symbolicPriorities[words[0]]
    } else if words.count == 3, let base = symbolicPriorities[words[0]], let offset = Int(words[2]) {
      value = words[1] == "-" ? base - offset : words[1] == "+" ? base + offset : nil
    }
    guard let value else { return line }
    return String(line[line.startIndex..<range.upperBound]) + String(value) + String(rest[semicolon...])
  }

  private static func sortElements(_ line: String) -> String {
    guard let open = line.range(of: "elements = {"), let close = line.lastIndex(of: "}") else { return line }
    let items = line[open.upperBound..<close].split(separator: ",").map {
      $0.trimmingCharacters(in: .whitespaces)
    }.filter { !$0.isEmpty }.sorted()
    return "elements = { " + items.joined(separator: ", ") + " }"
  }
}

extension Array {
  fileprivate subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
