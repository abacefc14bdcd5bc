/// The framed, versioned reply of a node-side script: every fact a fleet operation needs from one
/// node comes back from one exec in this format, so that an operation costs one round trip.
///
/// The script prints (see `docs/node-reply.md`):
///
/// ```
/// SVCTRACE-REPLY 1 <nonce>\n
/// S <name> <status> <length>\n<length bytes>\n      one per section, in order
/// E <nonce> <section count>\n
/// ```
///
/// A section's body is the raw stdout of its commands (any bytes: binary, or lines that look like
/// frames), its `status` their exit status. The nonce is random per exec: output that merely
/// contains frame text cannot end the reply early or forge a section, and a reply of another run
/// is refused. Anything a shell start-up file prints before the header is ignored; after the
/// header everything is checked: a short, garbled or trailing-garbage reply is an error naming
/// the node and the operation, never a partial answer.
public struct NodeReply: Sendable, Equatable {
  /// One section: what one part of the script printed and its exit status.
  public struct Section: Sendable, Equatable {
    public var name: String
    public var status: Int32
    public var body: [UInt8]

    public init(name: String, status: Int32, body: [UInt8]) {
      self.name = name
      self.status = status
      self.body = body
    }

    /// The body as UTF-8 text (invalid bytes replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
  }

  /// The format version this build writes and reads.
  public static let version = 1
  static let magic = "SVCTRACE-REPLY"
  /// A section name: what the parser accepts and ``Script/section(_:_:)`` may write.
  static let maxNameLength = 64

  public var sections: [Section]

  public init(sections: [Section]) { self.sections = sections }

  /// The first section called `name`.
  public func section(_ name: String) -> Section? { sections.first { $0.name == name } }

  /// The sections called `name`, in order.
  public func sections(named name: String) -> [Section] { sections.filter { $0.name == name } }

  /// A fresh random nonce: 16 hex digits.
  public static func makeNonce() -> String {
    var generator = SystemRandomNumberGenerator()
    let value = generator.next() as UInt64
    let hex = String(value, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }

  // MARK: Writing (the node side)

  /// Builds the shell script whose stdout is a reply.
  ///
  /// Section bodies are shell fragments svctrace wrote; every outside value in them must be
  /// quoted with ``ShellQuote``. Each body runs in a subshell (an `exit` ends only its section;
  /// variables it sets do not outlive it: set shared ones in ``prelude(_:usesTemporaryDirectory:)``),
  /// stderr to `/dev/null` unless the fragment redirects it. A text section is captured in a
  /// shell variable (no process beyond the body's own: the cheap kind, for small text; NUL bytes
  /// are dropped); a binary section goes through a file in a private temporary directory
  /// (`$svct_r`, removed when the script exits), byte for byte.
  public struct Script: Sendable {
    public let nonce: String
    private var parts: [String] = []
    private var usesTemporaryDirectory = false

    public init(nonce: String = NodeReply.makeNonce()) {
      self.nonce = nonce
    }

    /// Appends shell lines that run outside any section (variables, functions). With
    /// `usesTemporaryDirectory`, they may keep files in `$svct_r`.
    public mutating func prelude(_ shell: String, usesTemporaryDirectory: Bool = false) {
      self.usesTemporaryDirectory = self.usesTemporaryDirectory || usesTemporaryDirectory
      parts.append(shell)
    }

    /// Appends a text section: `body` runs and its stdout and exit status become section
    /// `name`. `name` is letters, digits and `-_.:/` (checked: a programming error otherwise).
    public mutating func section(_ name: String, _ body: String) {
      precondition(NodeReply.isValidName(name[...]), "invalid section name \(name)")
      parts.append("svct_v=$( (\n\(body)\n) 2>/dev/null </dev/null; printf '~%s' $?)\nsvct_text \(name)")
    }

    /// Appends a binary section: like ``section(_:_:)``, byte for byte (any size, NUL bytes).
    public mutating func binarySection(_ name: String, _ body: String) {
      precondition(NodeReply.isValidName(name[...]), "invalid section name \(name)")
      usesTemporaryDirectory = true
      parts.append("(\n\(body)\n) >\"$svct_r/b\" 2>/dev/null </dev/null\nsvct_file \(name) $?")
    }

    /// Appends a section with the node's clock in nanoseconds (`date +%s%N`): call it first and
    /// last, with ``ClockOffset/startSection`` and ``ClockOffset/endSection``, for an NTP-style
    /// sample. (`date`, not bash's `$EPOCHREALTIME`: any shell, and the testbed's clock-skew fault
    /// replaces `date`.)
    public mutating func clockSection(_ name: String) {
      section(name, "date +%s%N")
    }

    /// The whole script: set-up, header, the sections, then the end frame.
    public var text: String {
      var setup = [
        "umask 077", "LC_ALL=C", "export LC_ALL", "svct_n=0",
        // A text section: the body's output, then `~status` (so trailing newlines survive).
        "svct_text() { svct_s=${svct_v##*~}; svct_v=${svct_v%~*}; "
          + "printf 'S %s %s %s\\n%s\\n' \"$1\" \"$svct_s\" \"${#svct_v}\" \"$svct_v\"; svct_n=$((svct_n+1)); }",
      ]
      if usesTemporaryDirectory {
        setup += [
          "svct_r=$(mktemp -d \"${TMPDIR:-/tmp}/svctrace-reply.XXXXXX\") || exit 98",
          "trap 'rm -rf \"$svct_r\"' EXIT",
          // `wc -c` pads with spaces on some systems: arithmetic strips them.
          "svct_file() { printf 'S %s %s %s\\n' \"$1\" \"$2\" \"$(($(wc -c < \"$svct_r/b\")))\"; "
            + "cat \"$svct_r/b\"; printf '\\n'; svct_n=$((svct_n+1)); }",
        ]
      }
      setup.append("printf '\(NodeReply.magic) \(NodeReply.version) %s\\n' \(nonce)")
      return (setup + parts + ["printf 'E %s %s\\n' \(nonce) \"$svct_n\""]).joined(separator: "\n") + "\n"
    }
  }

  // MARK: Reading (this side)

  /// Parses a reply strictly.
  /// - Throws: ``RemoteError`` of kind `.protocolError` naming `host` and `operation` when the
  ///   header is missing, a frame is malformed, a section is truncated, the end frame's nonce or
  ///   count is wrong, or bytes follow it.
  public static func parse(_ output: [UInt8], nonce: String, host: HostID, operation: String) throws(RemoteError)
    -> NodeReply
  {
    func garbled(_ why: String) -> RemoteError {
      RemoteError(
        host: host, operation: operation, kind: .protocolError,
        message: "the node's reply is garbled: \(why) (\(output.count) bytes received)")
    }
    let header = Array("\(magic) \(version) \(nonce)\n".utf8)
    guard let start = firstRange(of: header, in: output) else {
      if firstRange(of: Array(magic.utf8), in: output) != nil {
        throw garbled("no header for this exec (another version or another run's reply)")
      }
      throw garbled("no reply header (the script did not run: \(preview(output)))")
    }
    var index = start + header.count
    var sections: [Section] = []
    while true {
      guard let newline = output[index...].firstIndex(of: UInt8(ascii: "\n")) else {
        throw garbled("truncated after \(sections.count) sections")
      }
      let fields = output[index..<newline].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
      index = newline + 1
      guard let kind = fields.first, kind.count == 1 else {
        throw garbled("unexpected frame \(preview(Array(output[(newline - min(40, newline - 0))..<newline])))")
      }
      if kind.first == UInt8(ascii: "E") {
        guard fields.count == 3, String(decoding: fields[1], as: UTF8.self) == nonce,
          let count = decimal(fields[2])
        else { throw garbled("malformed end frame") }
        guard count == sections.count else {
          throw garbled("the end frame counts \(count) sections, \(sections.count) arrived")
        }
        guard index == output.count else { throw garbled("\(output.count - index) bytes after the end frame") }
        return NodeReply(sections: sections)
      }
      guard kind.first == UInt8(ascii: "S"), fields.count == 4,
        isValidName(Substring(decoding: fields[1], as: UTF8.self)),
        let status = decimal(fields[2]), status <= 255, let length = decimal(fields[3])
      else { throw garbled("malformed section frame after \(sections.count) sections") }
      guard output.count - index > length, output[index + length] == UInt8(ascii: "\n") else {
        throw garbled("section \(String(decoding: fields[1], as: UTF8.self)) is truncated")
      }
      sections.append(
        Section(
          name: String(decoding: fields[1], as: UTF8.self), status: Int32(status),
          body: Array(output[index..<(index + length)])))
      index += length + 1
    }
  }

  static func isValidName(_ name: Substring) -> Bool {
    !name.isEmpty && name.utf8.count <= maxNameLength
      && name.utf8.allSatisfy { byte in
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
          UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
          UInt8(ascii: ":"), UInt8(ascii: "/"):
          true
        default: false
        }
      }
  }

  /// A non-negative decimal of at most 12 digits (a section is far smaller than a terabyte).
  private static func decimal(_ bytes: ArraySlice<UInt8>) -> Int? {
    guard !bytes.isEmpty, bytes.count <= 12 else { return nil }
    var value = 0
    for byte in bytes {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return value
  }

  private static func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    let first = needle[0]
    var index = haystack.startIndex
    while let candidate = haystack[index...].firstIndex(of: first) {
      guard candidate + needle.count <= haystack.count else { return nil }
      if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
      index = candidate + 1
    }
    return nil
  }

  private static func preview(_ bytes: [UInt8]) -> String {
    let text = String(decoding: bytes.prefix(80), as: UTF8.self)
    return text.isEmpty ? "no output" : text.debugDescription
  }
}

extension RemoteSession {
  /// Runs a reply script and parses its reply (one round trip).
  ///
  /// - Parameters:
  ///   - script: the script; its sections' output is the reply.
  ///   - stdin: bytes for the script's standard input (`nil`: none).
  ///   - timeout: per-exec limit (`nil`: the session's default).
  ///   - operation: names the exchange in errors ("verify", "collect /var/log/iptables.log").
  /// - Returns: the reply and the local wall-clock readings (µs) taken just before the exec was
  ///   sent and just after its reply arrived, for ``ClockOffset/init(sentMicros:receivedMicros:nodeStartNanos:nodeEndNanos:)``.
  /// - Throws: ``RemoteError``: the session's, `.commandFailed` when the script exited non-zero
  ///   without a reply, `.protocolError` for a garbled reply.
  public func exchange(_ script: NodeReply.Script, stdin: [UInt8]? = nil, timeout: Duration?, operation: String)
    async throws -> (reply: NodeReply, sentMicros: Int64, receivedMicros: Int64)
  {
    let sent = ClockOffset.wallClockMicros()
    let result = try await run(script.text, stdin: stdin, timeout: timeout)
    let received = ClockOffset.wallClockMicros()
    do {
      let reply = try NodeReply.parse(result.stdout, nonce: script.nonce, host: host, operation: operation)
      return (reply, sent, received)
    } catch {
      // A script that stopped before its end frame: its exit status and stderr say more.
      if !result.succeeded {
        throw RemoteError(
          host: host, operation: operation, kind: .commandFailed,
          message: result.failureSummary + " (\(error.message))")
      }
      throw error
    }
  }
}
