package dev.edgepool.example

/**
 * What an edgepool export says about itself: model.json beside the model, or the same JSON embedded in
 * the .tflite (metadata entry "edgepool"). The contract is edgepool/data/schemas/model.schema.json:
 *
 *   x = raw * normalization.scale + normalization.offset           (raw: 0..255 pixels, NHWC)
 *   q = clamp(round(x / input.scale + input.zero_point))           (integer inputs only)
 *   y = (q_out - output.zero_point) * output.scale                 (integer outputs only)
 *   probabilities = softmax(y) when output_kind is "logits"
 */
data class TensorInfo(
    val name: String?,
    val shape: List<Int>,
    val dtype: String,
    val scale: Double?,
    val zeroPoint: Int?,
    val layout: String
) {
    val quantized: Boolean get() = dtype == "int8" || dtype == "uint8"
}

data class ModelMetadata(
    val format: String,
    val file: String,
    val cpuFile: String?,
    val recipe: String?,
    val labels: List<String>,
    val input: TensorInfo,
    val output: TensorInfo,
    val normScale: Double,
    val normOffset: Double,
    val outputKind: String,
    val computeUnits: String?
) {
    /** (height, width, channels) of the input image. */
    val height: Int get() = if (input.layout == "NCHW") input.shape[2] else input.shape[1]
    val width: Int get() = if (input.layout == "NCHW") input.shape[3] else input.shape[2]
    val channels: Int get() = if (input.layout == "NCHW") input.shape[1] else input.shape[3]

    companion object {
        const val SCHEMA_VERSION = 1L

        fun parse(json: String): ModelMetadata {
            @Suppress("UNCHECKED_CAST")
            val m = MiniJson.parse(json) as? Map<String, Any?> ?: throw IllegalArgumentException("model.json is not an object")
            val version = (m["schema_version"] as? Number)?.toLong()
            if (version != SCHEMA_VERSION) throw IllegalArgumentException("model.json schema_version $version is not $SCHEMA_VERSION")
            val norm = obj(m, "normalization")
            @Suppress("UNCHECKED_CAST")
            val labels = (m["labels"] as? List<Any?> ?: throw IllegalArgumentException("model.json has no labels")).map { it.toString() }
            return ModelMetadata(
                format = m["format"] as String,
                file = m["file"] as String,
                cpuFile = m["cpu_file"] as String?,
                recipe = m["recipe"] as String?,
                labels = labels,
                input = tensor(obj(m, "input")),
                output = tensor(obj(m, "output")),
                normScale = (norm["scale"] as Number).toDouble(),
                normOffset = (norm["offset"] as Number).toDouble(),
                outputKind = (m["output_kind"] as String?) ?: "logits",
                computeUnits = m["compute_units"] as String?
            )
        }

        /** The sidecar embedded in a .tflite, or null when it has none. */
        fun fromTflite(model: ByteArray): ModelMetadata? = TfliteMetadata.read(model)?.let { parse(it) }

        @Suppress("UNCHECKED_CAST")
        private fun obj(m: Map<String, Any?>, key: String): Map<String, Any?> =
            m[key] as? Map<String, Any?> ?: throw IllegalArgumentException("model.json has no object '$key'")

        private fun tensor(t: Map<String, Any?>): TensorInfo {
            @Suppress("UNCHECKED_CAST")
            val shape = (t["shape"] as List<Any?>).map { (it as Number).toInt() }
            return TensorInfo(
                name = t["name"] as String?,
                shape = if (shape.size == 3) listOf(1) + shape else shape,
                dtype = t["dtype"] as String,
                scale = (t["scale"] as Number?)?.toDouble(),
                zeroPoint = (t["zero_point"] as Number?)?.toInt(),
                layout = (t["layout"] as String?) ?: "NHWC"
            )
        }
    }
}

/** Reads the "edgepool" metadata entry of a .tflite flatbuffer (TFLite schema: Model.buffers = field 4,
 *  Model.metadata = field 6; Metadata.name = 0, .buffer = 1; Buffer.data = 0) without a schema library. */
object TfliteMetadata {
    private fun u32(b: ByteArray, p: Int): Int =
        (b[p].toInt() and 0xff) or ((b[p + 1].toInt() and 0xff) shl 8) or ((b[p + 2].toInt() and 0xff) shl 16) or ((b[p + 3].toInt() and 0xff) shl 24)

    private fun u16(b: ByteArray, p: Int): Int = (b[p].toInt() and 0xff) or ((b[p + 1].toInt() and 0xff) shl 8)

    private fun field(b: ByteArray, table: Int, i: Int): Int? {
        val vtable = table - u32(b, table)
        val off = 4 + 2 * i
        if (off >= u16(b, vtable)) return null
        val rel = u16(b, vtable + off)
        return if (rel == 0) null else table + rel
    }

    private fun deref(b: ByteArray, p: Int): Int = p + u32(b, p)

    fun read(model: ByteArray): String? {
        val root = deref(model, 0)
        val metaField = field(model, root, 6) ?: return null
        val bufField = field(model, root, 4) ?: return null
        val metas = deref(model, metaField)
        val bufs = deref(model, bufField)
        for (k in 0 until u32(model, metas)) {
            val md = deref(model, metas + 4 + 4 * k)
            val nameField = field(model, md, 0) ?: continue
            val bufIndexField = field(model, md, 1) ?: continue
            val name = deref(model, nameField)
            val nameLen = u32(model, name)
            if (String(model, name + 4, nameLen, Charsets.UTF_8) != "edgepool") continue
            val index = u32(model, bufIndexField)
            if (index >= u32(model, bufs)) return null
            val buf = deref(model, bufs + 4 + 4 * index)
            val dataField = field(model, buf, 0) ?: return null
            val data = deref(model, dataField)
            return String(model, data + 4, u32(model, data), Charsets.UTF_8)
        }
        return null
    }
}
