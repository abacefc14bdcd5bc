import ArgumentParser
import Fleet
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Asks for secrets once, before any connection, and never echoes or logs them.
enum Secrets {
  /// Prompts on the terminal without echo.
  /// - Throws: ``ValidationError`` when there is no terminal to ask on.
  static func prompt(_ text: String) throws -> String {
    guard isatty(STDIN_FILENO) == 1, let pointer = getpass(text) else {
      throw ValidationError("Cannot prompt for a password without a terminal; use the environment variable instead.")
    }
    return String(cString: pointer)
  }

  /// The passphrase for encrypted private keys: `SVCTRACE_KEY_PASSPHRASE`, or one prompt when a
  /// key the hosts will use is encrypted and a terminal is there to ask on.
  static func keyPassphrase(for hosts: [FleetHost], home: String, environment: [String: String]) throws -> String? {
    if let given = environment["SVCTRACE_KEY_PASSPHRASE"] { return given }
    var keys = Set(hosts.flatMap(\.identityFiles))
    if keys.isEmpty { keys = [home + "/.ssh/id_ed25519", home + "/.ssh/id_ecdsa"] }
    let encrypted = keys.sorted().filter { isEncrypted(keyFile: $0) }
    guard let first = encrypted.first, isatty(STDIN_FILENO) == 1 else { return nil }
    return try prompt("Passphrase for \(first): ")
  }

  /// Reads an OpenSSH private key's header to tell whether it is passphrase-protected.
  static func isEncrypted(keyFile path: String) -> Bool {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
    if text.contains("ENCRYPTED") { return true }  // PEM keys
    let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    guard let data = Data(base64Encoded: body), data.count > 40 else { return false }
    // openssh-key-v1\0, then uint32 length + cipher name ("none" when unencrypted).
    let bytes = [UInt8](data)
    let magic = Array("openssh-key-v1\0".utf8)
    guard bytes.starts(with: magic) else { return false }
    let at = magic.count
    let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
    guard length > 0, at + 4 + length <= bytes.count else { return false }
    return String(decoding: bytes[(at + 4)..<(at + 4 + length)], as: UTF8.self) != "none"
  }
}
