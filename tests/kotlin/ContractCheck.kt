// Test driver for the Android example's plain-Kotlin code (tests/integration/test_android_kotlin.py compiles
// it with examples/android/.../{MiniJson,ModelMetadata,Preprocess,Benchmark}.kt using Debian's kotlinc).
// Args: MODEL_JSON TFLITE RAW_PIXELS(uint8 N*H*W*C) RAW_OUTPUTS(N*K output bytes) OUT_JSON
import dev.edgepool.example.BenchRequest
import dev.edgepool.example.Benchmark
import dev.edgepool.example.MiniJson
import dev.edgepool.example.ModelMetadata
import dev.edgepool.example.Postprocess
import dev.edgepool.example.Preprocess
import java.io.File

fun main(args: Array<String>) {
    val meta = ModelMetadata.parse(File(args[0]).readText())
    val embedded = ModelMetadata.fromTflite(File(args[1]).readBytes())
    val pixels = File(args[2]).readBytes()
    val outputs = File(args[3]).readBytes()
    val n = meta.height * meta.width * meta.channels
    val k = meta.labels.size
    val images = pixels.size / n
    val inputs = ArrayList<List<Int>>()
    val tops = ArrayList<List<Map<String, Any?>>>()
    for (i in 0 until images) {
        // gray pixels as ARGB, as Bitmap.getPixels gives them, back through rawFromArgb
        val argb = IntArray(meta.height * meta.width) {
            if (meta.channels == 1) {
                val v = pixels[i * n + it].toInt() and 0xff
                (0xff shl 24) or (v shl 16) or (v shl 8) or v
            } else {
                val b = i * n + 3 * it
                (0xff shl 24) or ((pixels[b].toInt() and 0xff) shl 16) or ((pixels[b + 1].toInt() and 0xff) shl 8) or (pixels[b + 2].toInt() and 0xff)
            }
        }
        val raw = Preprocess.rawFromArgb(argb, meta.channels)
        inputs.add(Preprocess.inputBytes(raw, meta).map { it.toInt() })
        val y = Postprocess.dequantize(outputs.copyOfRange(i * k, (i + 1) * k), meta)
        tops.add(Postprocess.topK(y, meta, 3).map { linkedMapOf<String, Any?>("label" to it.label, "index" to it.index, "score" to it.score) })
    }
    // the benchmark protocol on a fake clock: every invoke takes 2 ms
    var now = 0L
    val req = BenchRequest.fromMap(mapOf("model_path" to "m.tflite", "result_path" to "r.json", "runs" to "4", "windows" to 2L,
        "min_seconds" to 0.0, "warmup_min_seconds" to 0.0, "threads" to 2L, "delegate" to "gpu"))
    val result = Benchmark(clockNs = { now }).run(req, "litert-android", "1.4.0", File(args[1]).length(),
        mapOf("device_model" to "JVM"), load = { now += 5_000_000L }, invoke = { now += 2_000_000L })
    val doc = linkedMapOf<String, Any?>(
        "format" to meta.format, "labels" to meta.labels, "height" to meta.height, "width" to meta.width,
        "channels" to meta.channels, "norm" to listOf(meta.normScale, meta.normOffset),
        "input" to listOf(meta.input.dtype, meta.input.scale, meta.input.zeroPoint),
        "embedded_equal" to (embedded == meta), "inputs" to inputs, "tops" to tops, "bench" to result,
        "error" to Benchmark.error("input", "no model", "push one"), "extras" to BenchRequest.EXTRAS)
    File(args[4]).writeText(MiniJson.write(doc))
}
