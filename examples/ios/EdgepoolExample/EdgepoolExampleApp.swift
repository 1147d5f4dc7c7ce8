import SwiftUI

@main
struct EdgepoolExampleApp: App {
    init() {
        // launched by edgepool's ios transport: `--edgepool-request edgepool/<id>/request.json` (also EDGEPOOL_REQUEST)
        if let rel = BenchmarkRunner.requestPath() {
            DispatchQueue.global(qos: .userInitiated).async { BenchmarkRunner.run(requestPath: rel) }
        }
    }

    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
