// swift-tools-version:6.1
// svctrace is a Linux-only tool: it calls Glibc directly and drives Linux nodes (iptables, rsyslog, logrotate),
// so the manifest declares no Apple platform.
import PackageDescription

/// Settings shared by every target: Swift 6 language mode and explicit imports.
let swiftSettings: [SwiftSetting] = [
  .enableUpcomingFeature("MemberImportVisibility"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
  name: "svctrace",
  products: [
    .executable(name: "svctrace", targets: ["svctrace"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
  ],
  targets: [
    // MARK: C boundary

    /** libssh2, through pkg-config. Only the SSH target imports it. */
    .systemLibrary(
      name: "CLibSSH2",
      pkgConfig: "libssh2",
      providers: [.apt(["libssh2-1-dev"])]
    ),

    // MARK: Foundation layers

    /** Shared value types: host identity, IP addresses, protocols, time, RemoteSession, command results, quoting. */
    .target(
      name: "SVCTraceCore",
      dependencies: [.product(name: "Logging", package: "swift-log")],
      swiftSettings: swiftSettings
    ),
    /** SSH client over libssh2: host keys, auth, exec, SFTP, ssh_config, ProxyJump. */
    .target(
      name: "SSH",
      dependencies: [
        "CLibSSH2", "SVCTraceCore", .product(name: "Logging", package: "swift-log"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      swiftSettings: swiftSettings
    ),
    /** Ansible-compatible inventories (INI, YAML, group_vars/host_vars) and host patterns. */
    .target(
      name: "Inventory",
      dependencies: ["SVCTraceCore", "Yams"],
      swiftSettings: swiftSettings
    ),
    /** Bounded fan-out over hosts, become (sudo), per-host results and recap. */
    .target(
      name: "Fleet",
      dependencies: ["SSH", "Inventory", "SVCTraceCore", .product(name: "Logging", package: "swift-log")],
      swiftSettings: swiftSettings
    ),

    // MARK: Features

    /** Dataplane detection, LOG rules, rsyslog drop-in, logrotate entry: a pure plan, one node-side apply/remove script. */
    .target(
      name: "Rollout",
      dependencies: ["SVCTraceCore", .product(name: "Logging", package: "swift-log")],
      swiftSettings: swiftSettings
    ),
    /** Kernel LOG line parser, capture sources, rotation-safe cursors and connection correlation. */
    .target(
      name: "Logs",
      dependencies: [
        "SVCTraceCore", .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      swiftSettings: swiftSettings
    ),
    /** The TraceStoring seam and its SQLite implementation (GRDB): one schema, atomic batch commits, lookups. */
    .target(
      name: "Store",
      dependencies: [
        "Logs", "SVCTraceCore", .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "GRDBSQLite", package: "GRDB.swift"),
      ],
      swiftSettings: swiftSettings
    ),
    /** The TraceStoring seam on PostgreSQL (postgres-nio): the team store several collectors and readers share. */
    .target(
      name: "PostgresStore",
      dependencies: [
        "Logs", "Store", "SVCTraceCore", .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: swiftSettings
    ),
    /** The ingest pipeline: pull a capture source, parse, correlate ahead, commit to the store. */
    .target(
      name: "Ingest",
      dependencies: ["Logs", "Store", "SVCTraceCore"],
      swiftSettings: swiftSettings
    ),

    // MARK: Commands

    /** The svctrace subcommands: thin glue from flags to the feature layers. */
    .target(
      name: "SVCTraceCommands",
      dependencies: [
        "SVCTraceCore", "SSH", "Inventory", "Fleet", "Rollout", "Logs", "Store", "PostgresStore", "Ingest",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Subprocess", package: "swift-subprocess"),
      ],
      swiftSettings: swiftSettings
    ),
    /** The executable: one file calling SVCTrace.main(). */
    .executableTarget(
      name: "svctrace",
      dependencies: ["SVCTraceCommands"],
      swiftSettings: swiftSettings
    ),

    // MARK: Benchmarks (not products)

    /** Deterministic kernel LOG lines of a simulated cluster, for tests and benchmarks (never the product). */
    .target(
      name: "LogGeneration",
      dependencies: ["SVCTraceCore"],
      swiftSettings: swiftSettings
    ),
    /** The svctrace-bench subcommands: svctrace next to OpenSSH, Ansible, awk; trace lookup latencies. */
    .target(
      name: "SVCTraceBenchmarks",
      dependencies: [
        "SVCTraceCommands", "SVCTraceCore", "Fleet", "Rollout", "Logs", "Store", "PostgresStore", "LogGeneration",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      swiftSettings: swiftSettings
    ),
    /** The benchmark executable, one file calling BenchMain.run(); not a product (`--product svctrace-bench`). */
    .executableTarget(
      name: "svctrace-bench",
      dependencies: ["SVCTraceBenchmarks"],
      swiftSettings: swiftSettings
    ),

    // MARK: Tests

    /** Test doubles shared by the test targets: a local /bin/sh session, a scripted fake, local process runs. */
    .target(
      name: "SVCTraceTestSupport",
      dependencies: [
        "SVCTraceCore", .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      path: "Tests/SVCTraceTestSupport",
      swiftSettings: swiftSettings
    ),

    /** Store and ingest test helpers: a parser for the tests' line format, fake rotating logs, temp directories. */
    .target(
      name: "StoreTestSupport",
      dependencies: ["Logs", "Store", "Ingest", "SVCTraceCore", "SVCTraceTestSupport"],
      path: "Tests/StoreTestSupport",
      swiftSettings: swiftSettings
    ),

    .testTarget(
      name: "SVCTraceCoreTests", dependencies: ["LogGeneration", "SVCTraceCore", "SVCTraceTestSupport"],
      swiftSettings: swiftSettings),
    .testTarget(
      name: "SSHTests", dependencies: ["SSH", "SVCTraceCore", "SVCTraceTestSupport"], swiftSettings: swiftSettings),
    .testTarget(
      name: "InventoryTests", dependencies: ["Inventory", "LogGeneration"], resources: [.copy("Fixtures")],
      swiftSettings: swiftSettings),
    .testTarget(
      name: "FleetTests", dependencies: ["Fleet", "SVCTraceCore", "SVCTraceTestSupport"], swiftSettings: swiftSettings),
    .testTarget(
      name: "RolloutTests", dependencies: ["Rollout", "Logs", "SVCTraceCore", "SVCTraceTestSupport"],
      resources: [.copy("Fixtures")], swiftSettings: swiftSettings),
    .testTarget(
      name: "LogsTests", dependencies: ["Logs", "LogGeneration", "SVCTraceCore"], resources: [.copy("Fixtures")],
      swiftSettings: swiftSettings),
    .testTarget(
      name: "StoreTests",
      dependencies: [
        "SVCTraceTestSupport", "StoreTestSupport", "Store", "PostgresStore", "Ingest", "Logs", "LogGeneration",
      ],
      resources: [.copy("Fixtures")],
      swiftSettings: swiftSettings),
    .testTarget(
      name: "IngestTests",
      dependencies: [
        "Ingest", "Store", "Logs", "LogGeneration", "SVCTraceCore", "SVCTraceTestSupport", "StoreTestSupport",
      ],
      swiftSettings: swiftSettings),
    .testTarget(
      name: "SVCTraceCommandsTests",
      dependencies: [
        "SVCTraceCommands", "SVCTraceCore", "Fleet", "Logs", "Store", "Ingest", "Rollout", "SVCTraceTestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: swiftSettings
    ),
    .testTarget(
      name: "SVCTraceBenchmarksTests",
      dependencies: [
        "SVCTraceBenchmarks", "SVCTraceCommands", "LogGeneration", "Logs", "Store", "Rollout", "SVCTraceCore",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: swiftSettings
    ),
    .testTarget(
      name: "EndToEndTests",
      dependencies: [
        "SVCTraceCore", "Inventory", "SSH", "Fleet", "Rollout", "Logs", "Store", "SVCTraceTestSupport",
        "StoreTestSupport",
      ],
      swiftSettings: swiftSettings
    ),
  ]
)
