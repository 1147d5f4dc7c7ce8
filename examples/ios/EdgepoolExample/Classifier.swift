import CoreML
import CoreGraphics
import Vision

/// An edgepool Core ML export (model.mlpackage + model.json) classifying images.
/// With an image input the package is driven through Vision (VNCoreMLRequest scales the image);
/// with a MultiArray input (edgepool's default) the pixels are drawn at the input size and fed as raw
/// 0...255 values in NHWC order, which the package normalizes itself (baked_normalization).
final class Classifier {
    let meta: ModelMetadata
    let model: MLModel

    /// `computeUnits`: "ALL" | "CPU_AND_NE" | "CPU_AND_GPU" | "CPU_ONLY" (default: the export's compute_units).
    init(folder: URL, computeUnits: String? = nil) throws {
        meta = try ModelMetadata.load(from: folder)
        let config = MLModelConfiguration()
        config.computeUnits = Classifier.units(computeUnits ?? meta.computeUnits ?? "ALL")
        let compiled = try MLModel.compileModel(at: folder.appendingPathComponent(meta.file))
        model = try MLModel(contentsOf: compiled, configuration: config)
    }

    static func units(_ name: String) -> MLComputeUnits {
        switch name {
        case "CPU_ONLY": return .cpuOnly
        case "CPU_AND_GPU": return .cpuAndGPU
        case "CPU_AND_NE": return .cpuAndNeuralEngine
        default: return .all
        }
    }

    struct Top { let label: String; let index: Int; let score: Double }

    func classify(_ image: CGImage, k: Int = 3) throws -> [Top] {
        if meta.input.type == "image" {
            let request = VNCoreMLRequest(model: try VNCoreMLModel(for: model))
            request.imageCropAndScaleOption = .scaleFill
            try VNImageRequestHandler(cgImage: image).perform([request])
            let obs = (request.results as? [VNClassificationObservation]) ?? []
            return obs.prefix(k).map { o in
                Top(label: o.identifier, index: meta.labels.firstIndex(of: o.identifier) ?? -1, score: Double(o.confidence))
            }
        }
        let input = try rawInput(image)
        let out = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: [meta.input.name ?? "input": input]))
        let probs = out.featureValue(for: meta.output.name ?? "classLabel_probs")?.dictionaryValue ?? [:]
        let scored = meta.labels.enumerated().map { i, l in Top(label: l, index: i, score: (probs[l] as? NSNumber)?.doubleValue ?? 0) }
        return Array(scored.sorted { $0.score > $1.score || ($0.score == $1.score && $0.index < $1.index) }.prefix(k))
    }

    /// Raw 0...255 pixels at the input size (bilinear, on white), NHWC float32.
    func rawInput(_ image: CGImage) throws -> MLMultiArray {
        let (h, w, c) = meta.geometry
        let gray = c == 1
        var bytes = [UInt8](repeating: 255, count: h * w * (gray ? 1 : 4))
        let space = gray ? CGColorSpaceCreateDeviceGray() : CGColorSpaceCreateDeviceRGB()
        let info = gray ? CGImageAlphaInfo.none.rawValue : CGImageAlphaInfo.noneSkipLast.rawValue
        bytes.withUnsafeMutableBytes { buf in
            let ctx = CGContext(data: buf.baseAddress, width: w, height: h, bitsPerComponent: 8,
                                bytesPerRow: w * (gray ? 1 : 4), space: space, bitmapInfo: info)!
            ctx.interpolationQuality = .medium
            ctx.setFillColor(gray ? CGColor(gray: 1, alpha: 1) : CGColor(red: 1, green: 1, blue: 1, alpha: 1))
            ctx.fill(CGRect(x: 0, y: 0, width: w, height: h))
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
        }
        let arr = try MLMultiArray(shape: [1, NSNumber(value: h), NSNumber(value: w), NSNumber(value: c)], dataType: .float32)
        for y in 0..<h { for x in 0..<w { for ch in 0..<c {
            let v = gray ? bytes[y * w + x] : bytes[(y * w + x) * 4 + ch]
            arr[((y * w + x) * c + ch)] = NSNumber(value: Float(v))
        } } }
        return arr
    }
}
