import Foundation

/// Line diffs for `--diff` output.
public enum LineDiff {
  /// One line of an edit script.
  public enum Edit: Sendable, Hashable {
    case same(String)
    case removed(String)
    case added(String)
  }

  /// The shortest edit script from `old` to `new` (LCS by dynamic programming; inputs are small config files).
  public static func edits(_ old: [String], _ new: [String]) -> [Edit] {
    let rows = old.count
    let columns = new.count
    var table = Array(repeating: Array(repeating: 0, count: columns + 1), count: rows + 1)
    if rows > 0 && columns > 0 {
      for row in stride(from: rows - 1, through: 0, by: -1) {
        for column in stride(from: columns - 1, through: 0, by: -1) {
          table[row][column] =
            old[row] == new[column]
            ? table[row + 1][column + 1] + 1 : max(table[row + 1][column], table[row][column + 1])
        }
      }
    }
    var result: [Edit] = []
    var row = 0
    var column = 0
    while row < rows || column < columns {
      if row < rows, column < columns, old[row] == new[column] {
        result.append(.same(old[row]))
        row += 1
        column += 1
      } else if row < rows, column == columns || table[row + 1][column] >= table[row][column + 1] {
        result.append(.removed(old[row]))
        row += 1
      } else {
        result.append(.added(new[column]))
        column += 1
      }
    }
    return result
  }

  /// A unified diff (`---`/`+++` headers, `@@` hunks with `context` lines); empty when equal.
  public static func unified(old: String, new: String, oldName: String, newName: String, context: Int = 3) -> String {
    let oldLines = splitLines(old)
    let newLines = splitLines(new)
    let script = edits(oldLines, newLines)
    guard script.contains(where: { if case .same = $0 { false } else { true } }) else { return "" }
    var output = ["--- \(oldName)", "+++ \(newName)"]
    // Positions of changes in the script, grouped into hunks separated by > 2*context unchanged lines.
    let changed = script.indices.filter { if case .same = script[$0] { false } else { true } }
    var hunks: [(Int, Int)] = []
    for index in changed {
      let start = max(0, index - context)
      let end = min(script.count - 1, index + context)
      if let last = hunks.last, start <= last.1 + 1 {
        hunks[hunks.count - 1].1 = end
      } else {
        hunks.append((start, end))
      }
    }
    for (start, end) in hunks {
      var oldStart = 1
      var newStart = 1
      for edit in script[..<start] {
        switch edit {
        case .same:
          oldStart += 1
          newStart += 1
        case .removed: oldStart += 1
        case .added: newStart += 1
        }
      }
      var oldCount = 0
      var newCount = 0
      var body: [String] = []
      for edit in script[start...end] {
        switch edit {
        case .same(let line):
          body.append(" " + line)
          oldCount += 1
          newCount += 1
        case .removed(let line):
          body.append("-" + line)
          oldCount += 1
        case .added(let line):
          body.append("+" + line)
          newCount += 1
        }
      }
      let oldHead = oldCount == 0 ? "\(oldStart - 1),0" : (oldCount == 1 ? "\(oldStart)" : "\(oldStart),\(oldCount)")
      let newHead = newCount == 0 ? "\(newStart - 1),0" : (newCount == 1 ? "\(newStart)" : "\(newStart),\(newCount)")
      output.append("@@ -\(oldHead) +\(newHead) @@")
      output += body
    }
    return output.joined(separator: "\n") + "\n"
  }

  private static func splitLines(_ text: String) -> [String] {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if lines.last == "" { lines.removeLast() }
    return lines
  }
}
