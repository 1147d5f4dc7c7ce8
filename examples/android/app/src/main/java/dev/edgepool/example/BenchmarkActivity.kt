package dev.edgepool.example

import android.app.Activity
import android.os.Build
import android.os.Bundle
import java.io.File
import java.util.Random
import kotlin.concurrent.thread

/**
 * Benchmark entry point, started over adb (no UI):
 *
 *   adb shell am start -W -n dev.edgepool.bench/dev.edgepool.example.BenchmarkActivity \
 *     --es model_path edgepool/ID/model.tflite --es result_path edgepool/ID/result.json \
 *     --ei runs 50 --ei windows 5 --ef min_seconds 1 --ei warmup_runs 1 --ef warmup_min_seconds 0.5 \
 *     --ef max_seconds 150 --ei threads 4 --es delegate cpu|gpu|nnapi --es request_id ID
 *
 * Paths are relative to the app's external files folder (/sdcard/Android/data/dev.edgepool.bench/files),
 * where `adb push` puts the model and `adb pull` fetches result.json. Alternatively `--es request
 * edgepool/ID/request.json` names a request JSON with the same fields (the agent's request, as the iOS app
 * reads it). The result is written atomically (temporary name, then rename): the fields of the agent's
 * `result` event plus the windows' raw latencies, or {"event": "error", ...} (Benchmark.kt).
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val base = getExternalFilesDir(null)!!
        val fields = HashMap<String, Any?>()
        intent.getStringExtra("request")?.let { rel ->
            @Suppress("UNCHECKED_CAST")
            fields.putAll(MiniJson.parse(File(base, rel).readText()) as Map<String, Any?>)
        }
        for (key in BenchRequest.EXTRAS) intent.extras?.get(key)?.let { fields[key] = it }
        thread(name = "edgepool-benchmark") {
            val resultFile = File(base, (fields["result_path"] ?: "result.json").toString())
            val doc = try {
                measure(BenchRequest.fromMap(fields), base)
            } catch (e: IllegalArgumentException) {
                Benchmark.error("input", e.message ?: "bad request", "check the model file and the extras")
            } catch (e: Throwable) {
                Benchmark.error("device", "${e.javaClass.simpleName}: ${e.message}", "see adb logcat")
            }
            val tmp = File(resultFile.parentFile, ".${resultFile.name}.tmp")
            tmp.writeText(MiniJson.write(doc))
            tmp.renameTo(resultFile)
            runOnUiThread { finish() }
        }
    }

    private fun measure(req: BenchRequest, base: File): Map<String, Any?> {
        val model = File(base, req.modelPath)
        if (!model.isFile) throw IllegalArgumentException("$model does not exist")
        var classifier: Classifier? = null
        val env = linkedMapOf<String, Any?>(
            "transport" to "adb", "device_model" to Build.MODEL, "manufacturer" to Build.MANUFACTURER,
            "android_version" to Build.VERSION.RELEASE, "sdk" to Build.VERSION.SDK_INT, "soc" to socModel(),
            "machine" to Build.SUPPORTED_ABIS.firstOrNull(), "delegate" to req.delegate)
        var input: java.nio.ByteBuffer? = null
        return Benchmark().run(req, "litert-android", LITERT_VERSION, model.length(), env,
            load = {
                classifier = Classifier(model, req.delegate, req.threads ?: 1)
                val m = classifier!!.meta
                val rng = Random(0)
                input = classifier!!.inputBuffer(IntArray(m.height * m.width * m.channels) { rng.nextInt(256) })
            },
            invoke = { classifier!!.run(input!!) }
        ).also { classifier?.close() }
    }

    private fun socModel(): String? = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MODEL else Build.HARDWARE

    companion object {
        const val LITERT_VERSION = "1.4.0" // keep in step with app/build.gradle.kts
    }
}
