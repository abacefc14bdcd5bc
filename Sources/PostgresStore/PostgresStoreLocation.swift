public import Foundation
import NIOSSL
import PostgresNIO
import Store

#if canImport(Glibc)
  import Glibc
#endif

/// Where a team store lives: `postgres://user@host:port/db?sslmode=…` (`postgresql://` too).
///
/// The URL never carries the password (svctrace refuses one there: a flag value ends up in shell
/// history and `ps`); it comes from `PGPASSWORD` or the password file (``PostgresPassword``).
/// ``description`` is the URL as given, which therefore holds no secret.
public struct PostgresStoreLocation: Sendable, Equatable, CustomStringConvertible {
  /// How the connection is secured, as libpq's `sslmode` names it.
  public enum SSLMode: String, Sendable, Equatable, CaseIterable {
    /// Plain TCP.
    case disable
    /// TLS when the server offers it, else plain (libpq's default).
    case prefer
    /// TLS, the server's certificate not checked.
    case require
    /// TLS, the certificate checked against the trusted roots (`sslrootcert=PATH`, else the
    /// system's) and the host name.
    case verifyFull = "verify-full"
  }

  public var user: String
  public var host: String
  public var port: Int
  public var database: String
  public var sslMode: SSLMode
  /// `sslrootcert=PATH`: the CA certificates (PEM) that sign the server's certificate.
  public var rootCertificatePath: String?

  public var description: String {
    var text =
      "postgres://\(Self.escape(user))@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(Self.escape(database))"
    text += "?sslmode=\(sslMode.rawValue)"
    if let rootCertificatePath { text += "&sslrootcert=\(Self.escape(rootCertificatePath))" }
    return text
  }

  public init(
    user: String, host: String, port: Int = 5432, database: String, sslMode: SSLMode = .prefer,
    rootCertificatePath: String? = nil
  ) {
    self.user = user
    self.host = host
    self.port = port
    self.database = database
    self.sslMode = sslMode
    self.rootCertificatePath = rootCertificatePath
  }

  /// Whether `text` names a PostgreSQL store (and not a SQLite file path).
  public static func isPostgresURL(_ text: String) -> Bool {
    text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
  }

  /// Parses a `postgres://` URL.
  ///
  /// - Throws: ``StoreError`` (`.invalidData`) naming the URL with any password masked: a URL
  ///   with a password, no user, no database, an unknown `sslmode` or parameter.
  public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
    let masked = Self.masked(text)
    func invalid(_ message: String) -> StoreError {
      StoreError(operation: "open the store \(masked)", message: message)
    }
    guard Self.isPostgresURL(text), let components = URLComponents(string: text) else {
      throw invalid("not a postgres://user@host:port/database URL")
    }
    if components.password != nil {
      throw invalid(
        "the URL holds a password; give it in PGPASSWORD or ~/.pgpass (never in --store or SVCTRACE_STORE)")
    }
    let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? environment["PGUSER"]
    guard let user, !user.isEmpty else { throw invalid("the URL names no user (postgres://USER@host/db)") }
    guard var host = components.host, !host.isEmpty else { throw invalid("the URL names no host") }
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    let path = components.percentEncodedPath.removingPercentEncoding ?? components.path
    let database = path.hasPrefix("/") ? String(path.dropFirst()) : path
    guard !database.isEmpty, !database.contains("/") else {
      throw invalid("the URL names no database (postgres://user@host:port/DATABASE)")
    }
    var mode = SSLMode.prefer
    var rootCertificate: String?
    for item in components.queryItems ?? [] {
      switch item.name {
      case "sslmode":
        guard let value = item.value, let parsed = SSLMode(rawValue: value) else {
          throw invalid(
            "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(item.value ?? "empty")"
          )
        }
        mode = parsed
      case "sslrootcert":
        rootCertificate = item.value
      default:
        throw invalid("unknown URL parameter \(item.name) (known: sslmode, sslrootcert)")
      }
    }
    self.init(
      user: user, host: host, port: components.port ?? 5432, database: database, sslMode: mode,
      rootCertificatePath: rootCertificate)
  }

  /// `text` with the password of a `scheme://user:password@` URL replaced by `***`.
  public static func masked(_ text: String) -> String {
    guard let scheme = text.range(of: "://") else { return text }
    let rest = text[scheme.upperBound...]
    let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
    let authority = rest[..<authorityEnd]
    guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return text }
    return String(text[..<rest.startIndex]) + authority[..<colon] + ":***" + rest[at...]
  }

  private static func escape(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed.subtracting(CharacterSet(charactersIn: ":@/?")))
      ?? text
  }

  /// The TLS settings `sslMode` asks for.
  /// - Throws: ``StoreError`` when the root certificates cannot be read.
  func tls() throws -> PostgresClient.Configuration.TLS {
    guard let configuration = try tlsConfiguration() else { return .disable }
    return sslMode == .prefer ? .prefer(configuration) : .require(configuration)
  }

  /// The TLS configuration of `sslMode` (`nil`: plain TCP): the server's certificate checked
  /// (chain and host name) only for `verify-full`.
  /// - Throws: ``StoreError`` when the root certificates cannot be read.
  func tlsConfiguration() throws -> TLSConfiguration? {
    var configuration = TLSConfiguration.makeClientConfiguration()
    switch sslMode {
    case .disable: return nil
    case .prefer, .require: configuration.certificateVerification = .none
    case .verifyFull:
      configuration.certificateVerification = .fullVerification
      if let rootCertificatePath {
        do {
          configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(rootCertificatePath))
        } catch {
          throw StoreError(
            operation: "read the root certificates \(rootCertificatePath) for the store \(self)", message: "\(error)")
        }
      }
    }
    return configuration
  }
}

/// The password of a team store, found as libpq finds it: `PGPASSWORD`, else the password file
/// (`PGPASSFILE`, else `~/.pgpass`), never a flag.
public enum PostgresPassword {
  /// The password for `location`, `nil` when none is given (the server may trust the client).
  /// A password file readable by group or others is ignored, with a warning through `warn`.
  public static func resolve(
    for location: PostgresStoreLocation, environment: [String: String] = ProcessInfo.processInfo.environment,
    warn: (String) -> Void
  ) -> String? {
    if let password = environment["PGPASSWORD"], !password.isEmpty { return password }
    let path =
      environment["PGPASSFILE"].flatMap { $0.isEmpty ? nil : $0 }
      ?? ((environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) as NSString)
      .appendingPathComponent(".pgpass")
    var status = stat()
    guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
    guard status.st_mode & 0o077 == 0 else {
      warn(
        "password file \(path) has group or world access; it is ignored (chmod 0600 \(path), as libpq requires)")
      return nil
    }
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return lookup(String(decoding: data, as: UTF8.self), for: location)
  }

  /// The password of the first line of a `.pgpass` file matching `location`:
  /// `hostname:port:database:username:password`, each of the first four `*` for any, `\`
  /// escaping `:` and `\`; blank lines and `#` comments skipped.
  public static func lookup(_ file: String, for location: PostgresStoreLocation) -> String? {
    let wanted = [location.host, String(location.port), location.database, location.user]
    for line in file.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
      if line.hasPrefix("#") || line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
      let fields = split(line)
      guard fields.count >= 5 else { continue }
      let matches = zip(fields.prefix(4), wanted).allSatisfy { field, value in
        field.text == value || (field.text == "*" && !field.escaped)
      }
      if matches { return fields[4...].map(\.text).joined(separator: ":") }
    }
    return nil
  }

  /// A line's fields, split at unescaped `:` (the escapes removed).
  private static func split(_ line: Substring) -> [(text: String, escaped: Bool)] {
    var fields: [(text: String, escaped: Bool)] = []
    var current = ""
    var escaped = false
    var iterator = line.makeIterator()
    while let character = iterator.next() {
      switch character {
      case "\\":
        if let next = iterator.next() {
          current.append(next)
          escaped = true
        }
      case ":":
        fields.append((current, escaped))
        current = ""
        escaped = false
      default:
        current.append(character)
      }
    }
    fields.append((current, escaped))
    return fields
  }
}
