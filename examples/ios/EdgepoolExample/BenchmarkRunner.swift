import CoreML
import Foundation
import UIKit

/// The benchmark mode edgepool's ios transport (edgepool/bench/transports/ios.py) drives: read the request
/// JSON (paths relative to Documents: `model_path`, `result_path`; the agent's request fields `runs`,
/// `windows`, `min_seconds`, `warmup_runs`, `warmup_min_seconds`, `max_seconds`, `run_delay_s`, `threads`,
/// plus `compute_units`), run the agent's protocol (only prediction is timed), then write `result_path`
/// atomically: the agent's `result` event fields plus `windows` with raw `latencies_ms`, or
/// {"event": "error", "kind", "message", "hint"} -- $defs/device_result / device_error of
/// edgepool/data/schemas/benchmark-result.schema.json, the same JSON the Android example writes.
enum BenchmarkRunner {
    static func requestPath() -> String? {
        let args = CommandLine.arguments
        if let i = args.firstIndex(of: "--edgepool-request"), i + 1 < args.count { return args[i + 1] }
        return ProcessInfo.processInfo.environment["EDGEPOOL_REQUEST"]
    }

    static func run(requestPath rel: String) {
        let docs = ExportLocation.documents
        var resultRel = (rel as NSString).deletingLastPathComponent + "/result.json"
        var doc: [String: Any]
        do {
            let req = try JSONSerialization.jsonObject(with: Data(contentsOf: docs.appendingPathComponent(rel))) as? [String: Any] ?? [:]
            resultRel = req["result_path"] as? String ?? resultRel
            doc = try measure(req, docs: docs)
        } catch let e as BenchError {
            doc = ["event": "error", "kind": e.kind, "message": e.message, "hint": e.hint]
        } catch {
            doc = ["event": "error", "kind": "device", "message": "\(error)", "hint": "see the device log in Xcode"]
        }
        let url = docs.appendingPathComponent(resultRel)
        if let data = try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys]) {
            try? data.write(to: url, options: .atomic) // a temporary file, then rename
        }
    }

    struct BenchError: Error { let kind: String; let message: String; let hint: String }

    static func num(_ req: [String: Any], _ key: String, _ def: Double) -> Double { (req[key] as? NSNumber)?.doubleValue ?? def }

    static func measure(_ req: [String: Any], docs: URL) throws -> [String: Any] {
        guard let modelRel = req["model_path"] as? String else {
            throw BenchError(kind: "input", message: "the request names no model_path", hint: "update edgepool")
        }
        let modelURL = docs.appendingPathComponent(modelRel)
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            throw BenchError(kind: "input", message: "\(modelRel) does not exist", hint: "the model was not copied")
        }
        let units = req["compute_units"] as? String ?? "ALL"
        let runs = Int(num(req, "runs", 50)), windows = Int(num(req, "windows", 5))
        let minS = num(req, "min_seconds", 1), warmRuns = Int(num(req, "warmup_runs", 1))
        let warmMinS = num(req, "warmup_min_seconds", 0.5), maxS = num(req, "max_seconds", 150)
        let delay = num(req, "run_delay_s", 0)
        let now = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

        let t0 = now()
        let config = MLModelConfiguration()
        config.computeUnits = Classifier.units(units)
        let compiled = try MLModel.compileModel(at: modelURL)
        let model = try MLModel(contentsOf: compiled, configuration: config)
        let initMs = (now() - t0) * 1000
        let input = try randomInput(model, seed: UInt64((req["inputs"] as? [String: Any])?["seed"] as? Int ?? 0))
        let t1 = now()
        _ = try model.prediction(from: input)
        let firstMs = (now() - t1) * 1000
        var warm = 0
        let w0 = now()
        while warm < warmRuns || now() - w0 < warmMinS { _ = try model.prediction(from: input); warm += 1 }
        let warmS = now() - w0
        var out: [[String: Any]] = []
        var stopped: Any = NSNull()
        let phase0 = now()
        outer: for w in 0..<windows {
            var lat: [Double] = []
            let start = now()
            while lat.count < runs || now() - start < minS {
                if now() - phase0 >= maxS {
                    stopped = "max_seconds"
                    if !lat.isEmpty { out.append(["index": w, "runs": lat.count, "seconds": now() - start, "partial": true, "latencies_ms": lat]) }
                    break outer
                }
                let a = now()
                _ = try model.prediction(from: input)
                lat.append((now() - a) * 1000)
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            }
            out.append(["index": w, "runs": lat.count, "seconds": now() - start, "partial": false, "latencies_ms": lat])
        }
        let size = (try? FileManager.default.allocatedSizeOfDirectory(at: modelURL)) ?? 0
        return [
            "event": "result", "protocol": 1, "request_id": req["request_id"] ?? NSNull(),
            "runtime": "coreml", "runtime_version": UIDevice.current.systemVersion,
            "model_size_bytes": size, "threads": NSNull(), "delegates": [String](), "compute_units": units,
            "input_mode": "random", "init_ms": initMs, "first_inference_ms": firstMs,
            "warmup": ["runs": warm, "seconds": warmS], "windows_requested": windows,
            "windows_finished": out.filter { !($0["partial"] as! Bool) }.count, "stopped": stopped,
            "accuracy": NSNull(), "nonfinite_outputs": NSNull(), "memory": NSNull(),
            "environment": ["thermal_state": thermalState(), "device_model": UIDevice.current.model,
                            "low_power_mode": ProcessInfo.processInfo.isLowPowerModeEnabled],
            "windows": out,
        ]
    }

    static func thermalState() -> String {
        switch ProcessInfo.processInfo.thermalState {
        case .nominal: return "nominal"
        case .fair: return "fair"
        case .serious: return "serious"
        case .critical: return "critical"
        @unknown default: return "unknown"
        }
    }

    /// Random 0...255 raw pixels for the model's one input (MultiArray), as the agent's random mode.
    static func randomInput(_ model: MLModel, seed: UInt64) throws -> MLFeatureProvider {
        guard let first = model.modelDescription.inputDescriptionsByName.first,
              let c = first.value.multiArrayConstraint else {
            throw BenchError(kind: "input", message: "the model's input is not a MultiArray", hint: "export without an image input")
        }
        let arr = try MLMultiArray(shape: c.shape, dataType: .float32)
        var state = seed &+ 0x9E3779B97F4A7C15
        for i in 0..<arr.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            arr[i] = NSNumber(value: Float((state >> 33) % 256))
        }
        return try MLDictionaryFeatureProvider(dictionary: [first.key: arr])
    }
}

extension FileManager {
    func allocatedSizeOfDirectory(at url: URL) throws -> Int {
        var isDir: ObjCBool = false
        guard fileExists(atPath: url.path, isDirectory: &isDir) else { return 0 }
        if !isDir.boolValue { return (try attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0 }
        guard let files = enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total = 0
        for case let f as URL in files {
            total += (try? f.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0
        }
        return total
    }
}
