import Foundation

/// The export's sidecar (model.json beside model.mlpackage), the contract of
/// edgepool/data/schemas/model.schema.json. A Core ML export takes raw 0...255 pixels: its
/// `normalization` is scale 1, offset 0 and `baked_normalization` is what the package applies itself.
struct TensorInfo: Codable {
    let name: String?
    let shape: [Int]
    let dtype: String
    let scale: Double?
    let zeroPoint: Int?
    let layout: String?
    let type: String?

    enum CodingKeys: String, CodingKey {
        case name, shape, dtype, scale, layout, type
        case zeroPoint = "zero_point"
    }
}

struct Normalization: Codable {
    let scale: Double
    let offset: Double

    enum CodingKeys: String, CodingKey {
        case scale, offset
    }
}

struct ModelMetadata: Codable {
    let schemaVersion: Int
    let format: String
    let file: String
    let recipe: String?
    let labels: [String]
    let input: TensorInfo
    let output: TensorInfo
    let normalization: Normalization
    let bakedNormalization: Normalization?
    let outputKind: String?
    let computeUnits: String?
    let deploymentTarget: String?

    enum CodingKeys: String, CodingKey {
        case format, file, recipe, labels, input, output, normalization
        case schemaVersion = "schema_version"
        case bakedNormalization = "baked_normalization"
        case outputKind = "output_kind"
        case computeUnits = "compute_units"
        case deploymentTarget = "deployment_target"
    }

    /// (height, width, channels) of the input image.
    var geometry: (Int, Int, Int) {
        let s = input.shape.count == 3 ? [1] + input.shape : input.shape
        return input.layout == "NCHW" ? (s[2], s[3], s[1]) : (s[1], s[2], s[3])
    }

    static func load(from folder: URL) throws -> ModelMetadata {
        let data = try Data(contentsOf: folder.appendingPathComponent("model.json"))
        let meta = try JSONDecoder().decode(ModelMetadata.self, from: data)
        guard meta.schemaVersion == 1 else { throw CocoaError(.fileReadCorruptFile) }
        return meta
    }
}
