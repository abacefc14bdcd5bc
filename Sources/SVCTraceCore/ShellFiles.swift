/// File operations expressed as shell commands, for sessions where SFTP does not apply
/// (privilege escalation through sudo, local test sessions).
public enum ShellFiles {
  /// Reads `maxLength` bytes (all when `nil`) from `offset` with GNU `dd` (one process, so its
  /// exit status is the read's).
  public static func readFile(
    _ session: some RemoteSession, _ path: String, offset: UInt64, maxLength: Int?
  ) async throws -> [UInt8] {
    var command = try "dd if=\(quoted(path, session, "read")) bs=65536 skip=\(offset) status=none iflag=skip_bytes"
    if let maxLength { command += ",count_bytes count=\(maxLength)" }
    let result = try await session.run(command, stdin: nil, timeout: nil)
    guard result.succeeded else {
      throw RemoteError(
        host: session.host, operation: "read \(path)", kind: .file, message: result.failureSummary)
    }
    return result.stdout
  }

  /// Writes a file atomically: a temporary file in the same directory, then `mv -f`.
  ///
  /// An existing file keeps its owner and group; `mode` is applied to the result. The temporary
  /// file is only moved into place when it holds exactly `contents.count` bytes: an upload cut
  /// short (a dropped connection, a full disk) leaves the old file untouched and fails.
  public static func writeFile(
    _ session: some RemoteSession, _ path: String, contents: [UInt8], mode: UInt32
  ) async throws {
    let target = try quoted(path, session, "write")
    let octal = String(mode, radix: 8)
    let expected = contents.count
    let script = """
      set -e; t=$(mktemp \(target).svctrace.XXXXXX); trap 'rm -f "$t"' EXIT; \
      cat > "$t"; n=$(wc -c < "$t"); n=$((n + 0)); \
      if [ "$n" -ne \(expected) ]; then echo "upload cut short: $n of \(expected) bytes arrived" >&2; exit 1; fi; \
      chmod \(octal) "$t"; \
      if [ -e \(target) ]; then chown --reference=\(target) "$t" 2>/dev/null || true; fi; \
      mv -f "$t" \(target); trap - EXIT
      """
    let result = try await session.run(script, stdin: contents, timeout: nil)
    guard result.succeeded else {
      throw RemoteError(
        host: session.host, operation: "write \(path)", kind: .file, message: result.failureSummary)
    }
  }

  /// Returns size, inode, mode, owner and mtime with `stat -c`, or `nil` when the path is absent.
  public static func stat(_ session: some RemoteSession, _ path: String) async throws -> RemoteFileStat? {
    let word = try quoted(path, session, "stat")
    let result = try await session.run(
      "if [ -e \(word) ]; then stat -c '%s %i %f %u %g %Y' -- \(word); else echo absent; fi", stdin: nil,
      timeout: nil)
    guard result.succeeded else {
      throw RemoteError(
        host: session.host, operation: "stat \(path)", kind: .file, message: result.failureSummary)
    }
    let fields = result.stdoutText.split(whereSeparator: { $0 == " " || $0 == "\n" })
    if fields.first == "absent" { return nil }
    guard fields.count == 6, let size = UInt64(fields[0]), let inode = UInt64(fields[1]),
      let mode = UInt32(fields[2], radix: 16), let uid = UInt32(fields[3]), let gid = UInt32(fields[4]),
      let mtime = Int64(fields[5])
    else {
      throw RemoteError(
        host: session.host, operation: "stat \(path)", kind: .protocolError,
        message: "unexpected `stat` output: \(result.stdoutText.prefix(200))")
    }
    return RemoteFileStat(size: size, inode: inode, mode: mode, uid: uid, gid: gid, mtime: mtime)
  }

  /// `path` quoted for the shell, or a file error naming the host and the operation.
  private static func quoted(
    _ path: String, _ session: some RemoteSession, _ operation: String
  ) throws(RemoteError) -> String {
    do {
      return try ShellQuote.quote(path)
    } catch {
      throw RemoteError(
        host: session.host, operation: "\(operation) \(path.debugDescription)", kind: .file, message: error.description)
    }
  }
}
