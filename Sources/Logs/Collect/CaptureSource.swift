public import SVCTraceCore

/// Where a capture source stands in its input, opaque to the ingest pipeline and the store: the
/// kind of source that made it and that source's own encoding of its position. Only a source of
/// that kind reads it (a log file's is a ``FileCursor``); the store keeps it as it is and commits
/// it in the same transaction as the data it covers.
public struct SourceCursor: Sendable, Equatable, Codable {
  /// The kind of source that made it (``FileCursor/kind`` for log files). Stored with the
  /// cursor and with every batch; it picks the parser that replays the batch's lines.
  public var kind: String
  /// The source's encoding of its position.
  public var state: [UInt8]

  public init(kind: String, state: [UInt8]) {
    self.kind = kind
    self.state = state
  }
}

/// Something notable a source met while reading; reported, never an error.
public enum CaptureEvent: Sendable, Equatable, CustomStringConvertible {
  /// The cursor's file had been rotated; reading continued in `file`.
  case followedRotation(file: String)
  /// The file shrank below the cursor with no rotated copy: bytes in between are lost.
  case truncated(file: String, previousOffset: UInt64)
  /// The cursor's file is gone (rotated out of retention, or rewritten); reading restarted at
  /// the oldest file available. Lines may be missing.
  case cursorFileLost
  /// No cursor yet: reading started at `file`.
  case started(file: String)

  public var description: String {
    switch self {
    case .followedRotation(let file): "followed rotation into \(file)"
    case .truncated(let file, let offset): "\(file) was truncated below offset \(offset); lines may be lost"
    case .cursorFileLost: "the file last read is gone; restarted at the oldest file, lines may be lost"
    case .started(let file): "started at \(file)"
    }
  }
}

/// A connection a source saw whole, both tuples at once (a conntrack event): stored as it is,
/// not dressed up as two packet lines for the correlator.
public struct FinishedConnection: Sendable, Equatable {
  /// When the connection was made (node clock, µs since the epoch).
  public var timeMicros: Int64
  public var proto: UInt8
  public var client: IPAddress
  public var clientPort: UInt16
  /// The address the client connected to (the Service's, before DNAT).
  public var service: IPAddress
  public var servicePort: UInt16
  /// The endpoint the connection went to (after DNAT).
  public var pod: IPAddress
  public var podPort: UInt16

  public init(
    timeMicros: Int64, proto: UInt8, client: IPAddress, clientPort: UInt16, service: IPAddress, servicePort: UInt16,
    pod: IPAddress, podPort: UInt16
  ) {
    self.timeMicros = timeMicros
    self.proto = proto
    self.client = client
    self.clientPort = clientPort
    self.service = service
    self.servicePort = servicePort
    self.pod = pod
    self.podPort = podPort
  }
}

/// One pull from a source: complete lines and the cursor that follows them, and connections the
/// source saw whole.
public struct SourceChunk: Sendable {
  /// Complete lines, each ending with `\n`.
  public var data: [UInt8]
  /// Connections the source reported whole (none for a log file).
  public var connections: [FinishedConnection]
  /// The cursor to commit together with `data`.
  public var cursor: SourceCursor
  /// `true` when the source had nothing more to give at the time of the pull.
  public var isCaughtUp: Bool
  /// Bytes that crossed the wire (compressed size when compression was used).
  public var transferredBytes: Int
  /// The file the data came from.
  public var file: String
  public var events: [CaptureEvent]
  /// The node's clock offset, sampled in the same exchange as the data (`nil`: the source took
  /// no sample, e.g. a local file).
  public var clock: ClockOffset?
  /// The LOG rules' counters, read in the same exchange after ``data`` (`nil`: not read, or
  /// the source has none). See ``LossLedger``.
  public var counters: RuleCounterSample?

  public init(
    data: [UInt8], connections: [FinishedConnection] = [], cursor: SourceCursor, isCaughtUp: Bool,
    transferredBytes: Int, file: String, events: [CaptureEvent], clock: ClockOffset? = nil
  ) {
    self.clock = clock
    self.data = data
    self.connections = connections
    self.cursor = cursor
    self.isCaughtUp = isCaughtUp
    self.transferredBytes = transferredBytes
    self.file = file
    self.events = events
  }
}

/// A source of packet log lines for one node: the seam between "where lines come from" (a
/// rotated log file over SSH, a local file, later conntrack events) and the store.
///
/// A source never keeps position itself: the caller passes the cursor it committed last and
/// commits the returned cursor in the same transaction as the returned data.
public protocol CaptureSource: Sendable {
  /// The node the lines belong to.
  var node: HostID { get }
  /// A stable name of the input on that node (`file:/var/log/iptables.log`), the cursor's key.
  var sourceID: String { get }

  /// Returns the next complete lines after `cursor` (at most about `maxBytes`).
  ///
  /// - Parameter cursor: the last committed cursor, `nil` on the first collect.
  /// - Throws: ``CaptureError`` or ``RemoteError``.
  func pull(after cursor: SourceCursor?, maxBytes: Int) async throws -> SourceChunk
}

/// A capture failure: the host, the operation ("read /var/log/iptables.log"), its cause as a
/// value and the reason in words. Reads "Unable to <operation> on <host>: <message>".
public struct CaptureError: Error, Sendable, CustomStringConvertible, Equatable {
  /// Why a capture failed.
  public enum Cause: Sendable, Equatable {
    /// A command on the node failed with this exit status.
    case remoteCommand(exitStatus: Int32)
    /// A local system call failed with this `errno`.
    case system(errno: Int32)
    /// The input kept changing while it was read (rotated again and again).
    case inputChanging
    /// Compressed input did not decompress.
    case decompression
    /// The source kept moving without data, or restarted twice in one collect.
    case noProgress
    /// What came back is not in the expected form (the message says how).
    case invalidData
  }

  public var host: HostID
  public var operation: String
  public var cause: Cause
  public var message: String

  public init(host: HostID, operation: String, cause: Cause = .invalidData, message: String) {
    self.host = host
    self.operation = operation
    self.cause = cause
    self.message = message
  }

  public var description: String { "Unable to \(operation) on \(host): \(message)" }
}
