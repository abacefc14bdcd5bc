import SVCTraceBenchmarks

@main
struct Entrypoint {
  static func main() async {
    await BenchMain.run()
  }
}
