/// A problem in an inventory source: which file, which line, and what was expected there.
///
/// Its description reads `<file>:<line>: <message>` (or `<file>: <message>` when no line applies),
/// the way compilers and Ansible itself report them.
public struct InventoryError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The inventory file (or directory, or `--limit` for a pattern error) the problem is in.
  public var file: String
  /// The 1-based line of the problem, when it has one.
  public var line: Int?
  /// What is wrong and what was expected instead.
  public var message: String

  /// Creates an error for `file`, at `line` when known.
  ///
  /// Values of secret variables (`*pass*`, tokens…) quoted in `message` are replaced by `***`.
  public init(file: String, line: Int? = nil, message: String) {
    self.file = file
    self.line = line
    self.message = Redaction.redactSecrets(in: message)
  }

  /// `<file>:<line>: <message>`, or `<file>: <message>` without a line.
  public var description: String {
    if let line { return "\(file):\(line): \(message)" }
    return "\(file): \(message)"
  }
}

/// Something svctrace accepted but that is probably a mistake, or that Ansible would ignore.
///
/// Examples: a YAML group key other than `hosts`, `vars`, `children`; a name used both for a host
/// and a group; an executable dynamic-inventory script skipped in a directory.
public struct InventoryWarning: Sendable, CustomStringConvertible, Equatable {
  /// The file the warning is about.
  public var file: String
  /// The 1-based line, when known.
  public var line: Int?
  /// What was noticed.
  public var message: String

  /// Creates a warning; secret values quoted in `message` are replaced by `***`.
  init(file: String, line: Int?, message: String) {
    self.file = file
    self.line = line
    self.message = Redaction.redactSecrets(in: message)
  }

  /// `<file>:<line>: warning: <message>`, or without the line when there is none.
  public var description: String {
    if let line { return "\(file):\(line): warning: \(message)" }
    return "\(file): warning: \(message)"
  }
}
