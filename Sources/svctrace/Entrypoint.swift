import SVCTraceCommands

@main
struct Entrypoint {
  static func main() async {
    await Main.run()
  }
}
