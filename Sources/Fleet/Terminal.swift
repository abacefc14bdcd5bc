#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Facts about the terminal svctrace writes to, and ANSI styling that respects `NO_COLOR`.
public struct Terminal: Sendable {
  /// `true` when standard output is a terminal.
  public var stdoutIsTTY: Bool
  /// `true` when standard error is a terminal (where progress goes).
  public var stderrIsTTY: Bool
  /// Colour is on for a TTY unless `NO_COLOR` is set (https://no-color.org).
  public var color: Bool

  public init(stdoutIsTTY: Bool, stderrIsTTY: Bool, color: Bool) {
    self.stdoutIsTTY = stdoutIsTTY
    self.stderrIsTTY = stderrIsTTY
    self.color = color
  }

  /// Detects the current process's terminal.
  public static func current(environment: [String: String]) -> Terminal {
    let out = isatty(STDOUT_FILENO) == 1
    let noColor = environment["NO_COLOR"].map { !$0.isEmpty } ?? false
    return Terminal(stdoutIsTTY: out, stderrIsTTY: isatty(STDERR_FILENO) == 1, color: out && !noColor)
  }

  public enum Style: String, Sendable {
    case green = "32"
    case yellow = "33"
    case red = "31"
    case magenta = "35"
    case bold = "1"
    case dim = "2"
  }

  /// Wraps `text` in an ANSI style when colour is on.
  public func paint(_ text: String, _ style: Style) -> String {
    color ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
  }

  /// Writes to standard error without buffering.
  public static func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
      var offset = 0
      while offset < buffer.count {
        let written = write(STDERR_FILENO, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
        if written <= 0 { break }
        offset += written
      }
    }
  }
}
