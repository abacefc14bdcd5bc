import Foundation
import SVCTraceCore
import SVCTraceTestSupport
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A PostgreSQL server for the tests of the team store: the one `SVCTRACE_TEST_POSTGRES_URL`
/// names (a superuser URL, `postgres://user@127.0.0.1:port/postgres?sslmode=disable`; scripts/test
/// sets it), else a throwaway PostgreSQL 15 cluster this process starts on loopback (its own
/// data directory in a temporary directory, a free port, the socket in that directory; as the
/// `postgres` user when running as root) and stops when it exits.
///
/// Every test gets a database of its own (``makeDatabase()``). A test that cannot reach or start
/// PostgreSQL fails: nothing here skips.
package enum TestPostgres {
  /// The server's base URL (database `postgres`), started on first use.
  package static func serverURL() async throws -> String {
    try await Server.shared.url()
  }

  /// A new empty database on the server; returns its URL.
  package static func makeDatabase() async throws -> String {
    let base = try await serverURL()
    let name = "svctrace_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    try await psql(base, "CREATE DATABASE \(name)")
    return base.replacingOccurrences(of: "/postgres?", with: "/\(name)?")
  }

  /// Runs `sql` with psql against `url`.
  package static func psql(_ url: String, _ sql: String) async throws {
    let result = try await LocalProcess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
    guard result.exitStatus == 0 else {
      throw TestPostgresError(message: "psql \(sql) failed: \(String(decoding: result.stderr, as: UTF8.self))")
    }
  }

  /// The output of `sql` run with psql against `url` (unaligned, tuples only).
  package static func query(_ url: String, _ sql: String) async throws -> String {
    let result = try await LocalProcess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
    guard result.exitStatus == 0 else {
      throw TestPostgresError(message: "psql \(sql) failed: \(String(decoding: result.stderr, as: UTF8.self))")
    }
    return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The directory of the PostgreSQL programs (Debian's layout), newest version first.
  static func binaries() throws -> String {
    let root = "/usr/lib/postgresql"
    let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
      let bin = "\(root)/\(version)/bin"
      if FileManager.default.isExecutableFile(atPath: bin + "/initdb") { return bin }
    }
    throw TestPostgresError(
      message: "no PostgreSQL server under \(root) (install Debian's postgresql package: scripts/install-deps)")
  }

  /// The one server of this test process.
  actor Server {
    static let shared = Server()
    /// The one start of the server (tests ask for it concurrently: they all wait for this one).
    private var starting: Task<String, any Error>?

    func url() async throws -> String {
      if let starting { return try await starting.value }
      let task = Task { () async throws -> String in
        let environment = ProcessInfo.processInfo.environment
        if let given = environment["SVCTRACE_TEST_POSTGRES_URL"], !given.isEmpty { return given }
        return try await Self.start()
      }
      starting = task
      return try await task.value
    }

    private static func start() async throws -> String {
      let bin = try TestPostgres.binaries()
      var template = Array((FileManager.default.temporaryDirectory.path + "/svctrace-pg-XXXXXX").utf8CString)
      guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw TestPostgresError(message: "cannot make a temporary directory: \(String(cString: strerror(errno)))")
      }
      let directory = String(cString: made)
      let data = directory + "/data"
      let asRoot = getuid() == 0
      // As root the server runs as `postgres`, which must own its directory.
      let prefix = asRoot ? ["runuser", "-u", "postgres", "--"] : []
      if asRoot {
        try await expect(["chown", "postgres:postgres", directory], "give the cluster directory to postgres")
      }
      try await expect(
        prefix + ["\(bin)/initdb", "-D", data, "-U", "svctrace", "--auth=trust", "-E", "UTF8", "--no-sync"],
        "initdb")
      let port = try Self.freePort()
      let options =
        "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        + " -c full_page_writes=off -c max_connections=500"
      try await expect(
        prefix + [
          "\(bin)/pg_ctl", "-D", data, "-l", directory + "/server.log", "-o", options, "-w", "-t", "60", "start",
        ],
        "start the cluster")
      try Self.register(stop: prefix + ["\(bin)/pg_ctl", "-D", data, "-m", "immediate", "stop"], directory: directory)
      return "postgres://svctrace@127.0.0.1:\(port)/postgres?sslmode=disable"
    }

    private static func expect(_ arguments: [String], _ what: String) async throws {
      let result = try await LocalProcess.run(arguments)
      guard result.exitStatus == 0 else {
        throw TestPostgresError(
          message:
            "\(what) failed (\(arguments.joined(separator: " "))): \(String(decoding: result.stdout + result.stderr, as: UTF8.self))"
        )
      }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    private static func freePort() throws -> Int {
      let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      guard descriptor >= 0 else { throw TestPostgresError(message: "socket: \(String(cString: strerror(errno)))") }
      defer { close(descriptor) }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      address.sin_port = 0
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
          bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
      }
      guard bound else { throw TestPostgresError(message: "bind: \(String(cString: strerror(errno)))") }
      return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops the cluster and removes its directory when the test process exits.
    private static func register(stop: [String], directory: String) throws {
      let script = try ShellQuote.join(stop) + " >/dev/null 2>&1; rm -rf " + ShellQuote.quote(directory)
      stopCommand.withLock { $0 = script }
      atexit {
        guard let script = stopCommand.withLock({ $0 }) else { return }
        // Runs while the process exits: a plain fork/exec of /bin/sh, waited for.
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", script]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ) == 0 else { return }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
      }
    }
  }
}

/// The shell command that stops the cluster this process started.
private let stopCommand = Mutex<String?>(nil)

/// The test PostgreSQL server could not be started or used.
package struct TestPostgresError: Error, CustomStringConvertible {
  package var message: String
  package var description: String { "Unable to use the test PostgreSQL server: \(message)" }
}
