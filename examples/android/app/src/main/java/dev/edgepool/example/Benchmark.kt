package dev.edgepool.example

/**
 * The benchmark protocol of edgepool's agent (edgepool/bench/agent.py), in plain Kotlin so it is tested on
 * a JVM: init, one first inference, a warmup (>= warmupRuns and >= warmupMinSeconds), then `windows` timed
 * windows, each >= runs invokes and >= minSeconds; only invoke() is timed; maxSeconds caps the timed phase.
 * The result is the agent's `result` event fields plus the windows with their raw latencies in ms, the JSON
 * described by edgepool/data/schemas/benchmark-result.schema.json ($defs/device_result) -- the same
 * result.json the iOS app writes, which edgepool's ios transport reads.
 */
data class BenchRequest(
    val modelPath: String,
    val resultPath: String,
    val runs: Int = 50,
    val windows: Int = 5,
    val minSeconds: Double = 1.0,
    val warmupRuns: Int = 1,
    val warmupMinSeconds: Double = 0.5,
    val maxSeconds: Double = 150.0,
    val runDelaySeconds: Double = 0.0,
    val threads: Int? = null,
    val delegate: String = "cpu",
    val requestId: String? = null
) {
    companion object {
        /** Extras names the benchmark activity reads (`am start --es model_path ... --ei runs 50 ...`). */
        val EXTRAS = listOf("model_path", "result_path", "runs", "windows", "min_seconds", "warmup_runs",
            "warmup_min_seconds", "max_seconds", "run_delay_s", "threads", "delegate", "request_id")

        /** From a request JSON (the agent's request fields; what the ios transport sends) or extras as a map. */
        fun fromMap(m: Map<String, Any?>): BenchRequest {
            fun num(k: String): Number? = when (val v = m[k]) {
                is Number -> v
                is String -> v.toDoubleOrNull()
                else -> null
            }
            return BenchRequest(
                modelPath = m["model_path"]?.toString() ?: throw IllegalArgumentException("the request names no model_path"),
                resultPath = m["result_path"]?.toString() ?: "result.json",
                runs = num("runs")?.toInt() ?: 50,
                windows = num("windows")?.toInt() ?: 5,
                minSeconds = num("min_seconds")?.toDouble() ?: 1.0,
                warmupRuns = num("warmup_runs")?.toInt() ?: 1,
                warmupMinSeconds = num("warmup_min_seconds")?.toDouble() ?: 0.5,
                maxSeconds = num("max_seconds")?.toDouble() ?: 150.0,
                runDelaySeconds = num("run_delay_s")?.toDouble() ?: 0.0,
                threads = num("threads")?.toInt(),
                delegate = m["delegate"]?.toString() ?: "cpu",
                requestId = m["request_id"]?.toString()
            )
        }
    }
}

class Window(val index: Int, val latenciesMs: List<Double>, val seconds: Double, val partial: Boolean)

class Benchmark(private val clockNs: () -> Long = System::nanoTime, private val sleepMs: (Long) -> Unit = { Thread.sleep(it) }) {
    var stopRequested = false // set from another thread to stop after the current invoke

    /**
     * Runs the protocol. `load()` builds the interpreter (timed as init), `invoke()` runs one inference.
     * Returns the fields of result.json (see the class doc); `environment` is merged in as given.
     */
    fun run(req: BenchRequest, runtime: String, runtimeVersion: String?, modelSizeBytes: Long,
            environment: Map<String, Any?>, load: () -> Unit, invoke: () -> Unit): Map<String, Any?> {
        val t0 = clockNs()
        load()
        val initMs = (clockNs() - t0) / 1e6
        val t1 = clockNs()
        invoke()
        val firstMs = (clockNs() - t1) / 1e6
        var warm = 0
        val w0 = clockNs()
        while (warm < req.warmupRuns || (clockNs() - w0) / 1e9 < req.warmupMinSeconds) {
            invoke(); warm++
        }
        val warmupSeconds = (clockNs() - w0) / 1e9
        val windows = ArrayList<Window>()
        var stopped: String? = null
        val phase0 = clockNs()
        loop@ for (w in 0 until req.windows) {
            val lat = ArrayList<Double>()
            val start = clockNs()
            while (lat.size < req.runs || (clockNs() - start) / 1e9 < req.minSeconds) {
                if (stopRequested) { stopped = "interrupted" }
                if ((clockNs() - phase0) / 1e9 >= req.maxSeconds) { stopped = "max_seconds" }
                if (stopped != null) {
                    if (lat.isNotEmpty()) windows.add(Window(w, lat, (clockNs() - start) / 1e9, true))
                    break@loop
                }
                val a = clockNs()
                invoke()
                lat.add((clockNs() - a) / 1e6)
                if (req.runDelaySeconds > 0) sleepMs((req.runDelaySeconds * 1000).toLong())
            }
            windows.add(Window(w, lat, (clockNs() - start) / 1e9, false))
        }
        return result(req, runtime, runtimeVersion, modelSizeBytes, initMs, firstMs, warm, warmupSeconds, windows, stopped, environment)
    }

    companion object {
        fun result(req: BenchRequest, runtime: String, runtimeVersion: String?, modelSizeBytes: Long, initMs: Double,
                   firstMs: Double, warmupRuns: Int, warmupSeconds: Double, windows: List<Window>, stopped: String?,
                   environment: Map<String, Any?>): Map<String, Any?> = linkedMapOf(
            "event" to "result",
            "protocol" to 1,
            "request_id" to req.requestId,
            "runtime" to runtime,
            "runtime_version" to runtimeVersion,
            "model_size_bytes" to modelSizeBytes,
            "threads" to req.threads,
            "delegates" to (if (req.delegate == "cpu") emptyList() else listOf(req.delegate)),
            "input_mode" to "random",
            "init_ms" to initMs,
            "first_inference_ms" to firstMs,
            "warmup" to linkedMapOf("runs" to warmupRuns, "seconds" to warmupSeconds),
            "windows_requested" to req.windows,
            "windows_finished" to windows.count { !it.partial },
            "stopped" to stopped,
            "accuracy" to null,
            "nonfinite_outputs" to null,
            "memory" to null,
            "environment" to environment,
            "windows" to windows.map {
                linkedMapOf("index" to it.index, "runs" to it.latenciesMs.size, "seconds" to it.seconds,
                    "partial" to it.partial, "latencies_ms" to it.latenciesMs)
            }
        )

        /** The error document (kind "input" or "device"), as the agent's `error` event. */
        fun error(kind: String, message: String, hint: String): Map<String, Any?> =
            linkedMapOf("event" to "error", "kind" to kind, "message" to message, "hint" to hint)
    }
}
