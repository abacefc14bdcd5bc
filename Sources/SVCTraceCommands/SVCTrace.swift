public import ArgumentParser

/// The root command: subcommands only.
public struct SVCTrace: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "svctrace",
    abstract: "Find which pod served a request to a Kubernetes Service, and through which node.",
    version: "0.1.0",
    subcommands: []
  )

  public init() {}
}

/// What the `svctrace` executable calls: parses the command line and runs the chosen command.
public enum Main {
  public static func run() async {
    await SVCTrace.main()
  }
}
