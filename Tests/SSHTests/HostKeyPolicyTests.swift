import Dispatch
import Foundation
import Glibc
import SSH
import Synchronization
import Testing

/// A public-key blob in SSH wire format: `string type, string (32 × seed)`.
private func keyBlob(_ type: String, _ seed: UInt8) -> [UInt8] {
  func string(_ bytes: [UInt8]) -> [UInt8] {
    let n = UInt32(bytes.count)
    return [
      UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8),
      UInt8(truncatingIfNeeded: n),
    ]
      + bytes
  }
  return string(Array(type.utf8)) + string([UInt8](repeating: seed, count: 32))
}

/// `type base64` of a key blob, as the end of a known_hosts line.
private func keyField(_ type: String, _ seed: UInt8) -> String {
  "\(type) \(Data(keyBlob(type, seed)).base64EncodedString())"
}

/// A fresh directory for one test's known_hosts files.
private func scratchDirectory() throws -> String {
  let path = NSTemporaryDirectory() + "svctrace-hostkey-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

private func write(_ lines: [String], to path: String) throws {
  try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

private func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

@Suite("HostKeyPolicy over known_hosts files (no session)")
struct HostKeyPolicyTests {
  let ed1 = OfferedHostKey(hostname: "127.0.0.1", port: 2222, key: keyBlob("ssh-ed25519", 1))

  @Test("the offered key's type and fingerprint are read from the blob, as ssh prints them")
  func offeredKey() {
    // Expected values computed independently (Python hashlib/base64).
    #expect(ed1.keyType == "ssh-ed25519")
    #expect(ed1.fingerprint == "SHA256:RXm/ruZ0eTzRXKwi1AQEDynB0VgHQ2ac9KPSFdf/YnA")
    #expect(ed1.lookupName == "[127.0.0.1]:2222")
    #expect(OfferedHostKey(hostname: "Node1", port: 22, key: ed1.key).lookupName == "node1")
  }

  @Test("unknown host: strict refuses naming the host, the SHA256 fingerprint and the files searched")
  func unknown() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try write(["# nothing", "[10.0.0.1]:2222 " + keyField("ssh-ed25519", 1)], to: "\(dir)/kh")
    let policy = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/missing", "\(dir)/kh"])
    let error = #expect(throws: HostKeyError.self) { try policy.verify(ed1) }
    #expect(error?.reason == .unknown(searched: ["\(dir)/missing", "\(dir)/kh"]))
    let text = error?.description ?? ""
    #expect(text.contains("host key of [127.0.0.1]:2222 is not known"))
    #expect(text.contains("ssh-ed25519 key SHA256:RXm/ruZ0eTzRXKwi1AQEDynB0VgHQ2ac9KPSFdf/YnA"))
    #expect(text.contains("--accept-new-host-keys"))
    #expect(!FileManager.default.fileExists(atPath: "\(dir)/missing"))
  }

  @Test("known host: accepted, naming the file and line that vouch for it; later files are consulted too")
  func known() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try write(["# header", "other " + keyField("ssh-ed25519", 9)], to: "\(dir)/a")
    try write(["", "[127.0.0.1]:2222,[node]:2222 " + keyField("ssh-ed25519", 1)], to: "\(dir)/b")
    let policy = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/a", "\(dir)/b"])
    #expect(try policy.verify(ed1) == .accept(file: "\(dir)/b", line: 2))
    #expect(try read("\(dir)/a").split(separator: "\n").count == 2)
  }

  @Test("changed key: refused in both modes with the old key's file, line and fingerprint; nothing written")
  func changed() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let lines = [
      "# fleet", "[10.0.0.9]:22 " + keyField("ssh-ed25519", 1), "[127.0.0.1]:2222 " + keyField("ssh-ed25519", 2),
    ]
    try write(lines, to: "\(dir)/kh")
    for mode in [HostKeyPolicy.Mode.strict, .acceptNew] {
      let policy = HostKeyPolicy(mode: mode, knownHostsFiles: ["\(dir)/kh"])
      let error = #expect(throws: HostKeyError.self) { try policy.verify(ed1) }
      let old = OfferedHostKey(hostname: "x", port: 22, key: keyBlob("ssh-ed25519", 2)).fingerprint
      #expect(error?.reason == .changed(file: "\(dir)/kh", line: 3, oldKeyType: "ssh-ed25519", oldFingerprint: old))
      let text = error?.description ?? ""
      #expect(text.hasPrefix("HOST KEY CHANGED: 127.0.0.1:2222 now offers ssh-ed25519 key \(ed1.fingerprint)"))
      #expect(text.contains("\(dir)/kh:3 records a different ssh-ed25519 key (\(old))"))
      #expect(text.contains("ssh-keygen -R '[127.0.0.1]:2222' -f \(dir)/kh"))
    }
    #expect(try read("\(dir)/kh") == lines.joined(separator: "\n") + "\n")
  }

  @Test("hashed |1|salt|HMAC-SHA1 names match (known and changed), other names do not")
  func hashed() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // HMAC-SHA1(salt 00…13, "[127.0.0.1]:2222"), computed independently (Python hmac).
    let hashedName = "|1|AAECAwQFBgcICQoLDA0ODxAREhM=|zKYaAqmSav3Qxr2sffNqWFIcbe4="
    let hashedNode1 = "|1|AAECAwQFBgcICQoLDA0ODxAREhM=|mFkKXp7gYYtwrI9fxvaW8ybOwwo="
    try write(
      [hashedNode1 + " " + keyField("ssh-ed25519", 7), hashedName + " " + keyField("ssh-ed25519", 1)], to: "\(dir)/kh")
    let policy = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/kh"])
    #expect(try policy.verify(ed1) == .accept(file: "\(dir)/kh", line: 2))
    let node1 = OfferedHostKey(hostname: "node1", port: 22, key: keyBlob("ssh-ed25519", 1))
    let error = #expect(throws: HostKeyError.self) { try policy.verify(node1) }
    if case .changed(_, let line, _, _) = error?.reason {
      #expect(line == 1)
    } else {
      Issue.record("\(String(describing: error))")
    }
    let node2 = OfferedHostKey(hostname: "node2", port: 22, key: keyBlob("ssh-ed25519", 7))
    #expect(throws: HostKeyError.self) { try policy.verify(node2) }
  }

  @Test("[host]:port: a plain line vouches only for port 22, a bracketed line only for its port")
  func portForm() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try write(
      ["127.0.0.1 " + keyField("ssh-ed25519", 1), "[127.0.0.1]:2200 " + keyField("ssh-ed25519", 1)], to: "\(dir)/kh")
    let policy = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/kh"])
    let error = #expect(throws: HostKeyError.self) { try policy.verify(ed1) }
    #expect(error?.reason == .unknown(searched: ["\(dir)/kh"]))
    let on22 = OfferedHostKey(hostname: "127.0.0.1", port: 22, key: ed1.key)
    #expect(try policy.verify(on22) == .accept(file: "\(dir)/kh", line: 1))
    let on2200 = OfferedHostKey(hostname: "127.0.0.1", port: 2200, key: ed1.key)
    #expect(try policy.verify(on2200) == .accept(file: "\(dir)/kh", line: 2))
  }

  @Test(
    "key type matched to the offered key: another type is no mismatch when the offered one is known, else not known")
  func keyTypeMismatch() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try write(
      ["[127.0.0.1]:2222 " + keyField("ecdsa-sha2-nistp256", 5), "[127.0.0.1]:2222 " + keyField("ssh-ed25519", 1)],
      to: "\(dir)/mixed")
    let mixed = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/mixed"])
    #expect(try mixed.verify(ed1) == .accept(file: "\(dir)/mixed", line: 2))

    try write(["[127.0.0.1]:2222 " + keyField("ecdsa-sha2-nistp256", 5)], to: "\(dir)/ecdsa")
    let strict = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/ecdsa"])
    let error = #expect(throws: HostKeyError.self) { try strict.verify(ed1) }
    #expect(error?.reason == .typeMismatch(knownTypes: ["ecdsa-sha2-nistp256"], searched: ["\(dir)/ecdsa"]))
    #expect(error?.description.contains("is not known (known_hosts has only ecdsa-sha2-nistp256 keys for it)") == true)
  }

  @Test("@revoked refuses its key even when another line vouches for it; @cert-authority lines are not host keys")
  func revokedAndCertAuthority() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try write(
      ["[127.0.0.1]:2222 " + keyField("ssh-ed25519", 1), "@revoked * " + keyField("ssh-ed25519", 1)], to: "\(dir)/kh")
    let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: ["\(dir)/kh"])
    let error = #expect(throws: HostKeyError.self) { try policy.verify(ed1) }
    #expect(error?.reason == .revoked(file: "\(dir)/kh", line: 2))
    #expect(error?.description.contains("is marked @revoked in \(dir)/kh:2") == true)

    try write(["@cert-authority [127.0.0.1]:2222 " + keyField("ssh-ed25519", 1)], to: "\(dir)/ca")
    let ca = HostKeyPolicy(mode: .strict, knownHostsFiles: ["\(dir)/ca"])
    #expect(throws: HostKeyError(ed1, .unknown(searched: ["\(dir)/ca"]))) { try ca.verify(ed1) }
  }

  @Test("accept-new records an unknown host in the first file (created 0600, after a line without newline)")
  func acceptNewRecords() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let first = "\(dir)/sub/known_hosts"
    let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [first, "\(dir)/other"])
    let line = "[127.0.0.1]:2222 " + keyField("ssh-ed25519", 1)
    #expect(policy.decide(ed1) == .acceptAndRecord(file: first, entry: line))
    #expect(!FileManager.default.fileExists(atPath: first))  // decide writes nothing
    #expect(try policy.verify(ed1) == .acceptAndRecord(file: first, entry: line))
    #expect(try read(first) == line + "\n")
    let mode = try FileManager.default.attributesOfItem(atPath: first)[.posixPermissions] as? Int
    #expect(mode == 0o600)
    #expect(try policy.verify(ed1) == .accept(file: first, line: 1))

    let partial = "\(dir)/partial"
    try "# no newline at the end".write(toFile: partial, atomically: true, encoding: .utf8)
    let second = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [partial])
    _ = try second.verify(ed1)
    #expect(try read(partial) == "# no newline at the end\n" + line + "\n")
    #expect(try second.verify(ed1) == .accept(file: partial, line: 2))
  }

  @Test("accept-new refuses a key of a new type for a host known with another type, as a changed key")
  func newTypeRefused() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let lines = ["# ecdsa only", "[127.0.0.1]:2222 " + keyField("ecdsa-sha2-nistp256", 5)]
    try write(lines, to: "\(dir)/kh")
    let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: ["\(dir)/kh"])
    let error = #expect(throws: HostKeyError.self) { try policy.verify(ed1) }
    let old = OfferedHostKey(hostname: "x", port: 22, key: keyBlob("ecdsa-sha2-nistp256", 5)).fingerprint
    #expect(
      error?.reason == .changed(file: "\(dir)/kh", line: 2, oldKeyType: "ecdsa-sha2-nistp256", oldFingerprint: old))
    #expect(error?.description.hasPrefix("HOST KEY CHANGED") == true)
    #expect(error?.description.contains("\(dir)/kh:2 records a ecdsa-sha2-nistp256 key (\(old))") == true)
    #expect(try read("\(dir)/kh") == lines.joined(separator: "\n") + "\n")
  }

  @Test("parallel first contacts append one line (flock, re-read under the lock); a rival key is then a changed key")
  func parallelAppend() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let rival = OfferedHostKey(hostname: "127.0.0.1", port: 2222, key: keyBlob("ssh-ed25519", 2))
    // Several rounds: the window between re-reading and appending is short.
    for round in 0..<50 {
      let file = "\(dir)/known_hosts.\(round)"
      let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file])
      let results = runTogether(16) { [ed1] _ in Result { () throws(HostKeyError) in try policy.verify(ed1) } }
      let recorded = results.filter { if case .success(.acceptAndRecord) = $0 { true } else { false } }
      #expect(recorded.count == 1)
      #expect(results.filter { $0 == .success(.accept(file: file, line: 1)) }.count == 15)
      #expect(try read(file) == "[127.0.0.1]:2222 " + keyField("ssh-ed25519", 1) + "\n")

      // Two different keys racing for the same unknown host: one is recorded, the other refused as changed.
      let raceFile = "\(dir)/race.\(round)"
      let racePolicy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [raceFile])
      let raced = runTogether(16) { [ed1] index in
        Result { () throws(HostKeyError) in try racePolicy.verify(index % 2 == 0 ? ed1 : rival) }
      }
      #expect(try read(raceFile).split(separator: "\n").count == 1)
      let refused = raced.filter { if case .failure(let e) = $0, case .changed = e.reason { true } else { false } }
      #expect(refused.count == 8)
    }
  }

  @Test("recording waits for a writer holding the known_hosts lock, then decides on the file as that writer left it")
  func recordingWaitsForTheLock() throws {
    let dir = try scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let file = "\(dir)/known_hosts"
    try write(["# header"], to: file)
    let fd = open(file, O_RDWR | O_APPEND)
    try #require(fd >= 0)
    defer { close(fd) }
    try #require(flock(fd, LOCK_EX) == 0)
    let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file])
    let outcome = Mutex<Result<HostKeyDecision, HostKeyError>?>(nil)
    let finished = DispatchSemaphore(value: 0)
    Thread { [ed1] in
      let result = Result { () throws(HostKeyError) in try policy.verify(ed1) }
      outcome.withLock { $0 = result }
      finished.signal()
    }.start()
    // The policy decided "record" before the lock; it must now be blocked on it.
    #expect(finished.wait(timeout: .now() + .milliseconds(300)) == .timedOut)
    #expect(try read(file) == "# header\n")
    let line = Array(("[127.0.0.1]:2222 " + keyField("ssh-ed25519", 1) + "\n").utf8)
    #expect(line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == line.count)
    #expect(flock(fd, LOCK_UN) == 0)
    #expect(finished.wait(timeout: .now() + .seconds(10)) == .success)
    #expect(outcome.withLock { $0 } == .success(.accept(file: file, line: 2)))
    #expect(try read(file) == "# header\n" + String(decoding: line, as: UTF8.self))
  }
}

/// Runs `body` on `count` threads released together; returns the results in completion order.
private func runTogether<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
  let gate = DispatchSemaphore(value: 0)
  let done = DispatchGroup()
  let results = Mutex<[T]>([])
  for index in 0..<count {
    done.enter()
    Thread {
      gate.wait()
      let result = body(index)
      results.withLock { $0.append(result) }
      done.leave()
    }.start()
  }
  for _ in 0..<count { gate.signal() }
  done.wait()
  return results.withLock { $0 }
}
