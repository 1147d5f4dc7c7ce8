import PhotosUI
import SwiftUI

/// Pick a photo, see the export's top classes. The export is `Documents/model/` (model.mlpackage +
/// model.json: copy it with Finder's file sharing, or `pymobiledevice3 apps push`), else the bundled one.
struct ContentView: View {
    @State private var item: PhotosPickerItem?
    @State private var image: UIImage?
    @State private var lines: [String] = []
    @State private var units = "ALL"
    @State private var status = ""

    var body: some View {
        VStack(spacing: 12) {
            Text(status).font(.footnote)
            Picker("Compute units", selection: $units) {
                ForEach(["ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY"], id: \.self) { Text($0) }
            }.pickerStyle(.segmented)
            PhotosPicker("Choose a photo", selection: $item, matching: .images)
            if let image { Image(uiImage: image).resizable().scaledToFit().frame(maxHeight: 260) }
            ForEach(lines, id: \.self) { Text($0).font(.title3.monospacedDigit()) }
            Spacer()
        }
        .padding()
        .onChange(of: item) { _, newItem in
            Task {
                guard let data = try? await newItem?.loadTransferable(type: Data.self), let ui = UIImage(data: data) else { return }
                image = ui
                classify(ui)
            }
        }
    }

    private func classify(_ ui: UIImage) {
        do {
            let c = try Classifier(folder: ExportLocation.folder(), computeUnits: units)
            status = "\(c.meta.file): \(c.meta.format) \(c.meta.recipe ?? ""), \(units)"
            lines = try c.classify(ui.cgImage!).map { String(format: "%@  %.1f%%", $0.label, 100 * $0.score) }
        } catch {
            status = "error: \(error.localizedDescription)"
        }
    }
}

enum ExportLocation {
    static var documents: URL { FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0] }

    static func folder() -> URL {
        let mine = documents.appendingPathComponent("model")
        if FileManager.default.fileExists(atPath: mine.appendingPathComponent("model.json").path) { return mine }
        return Bundle.main.resourceURL!.appendingPathComponent("model")
    }
}
