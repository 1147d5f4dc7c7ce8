package dev.edgepool.example

import android.graphics.Bitmap
import org.tensorflow.lite.Interpreter // LiteRT (com.google.ai.edge.litert:litert) keeps TFLite's package
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * An edgepool .tflite export in LiteRT's Interpreter. The metadata comes from model.json beside the model
 * when there is one, else from the copy embedded in the .tflite. `delegate`: "cpu" (XNNPACK), "gpu" or
 * "nnapi" (NNAPI is deprecated from Android 15; kept for older phones).
 */
class Classifier(modelFile: File, delegate: String = "cpu", threads: Int = 4) : AutoCloseable {
    val meta: ModelMetadata
    val modelBytes: ByteArray = modelFile.readBytes()
    private val interpreter: Interpreter
    private var gpu: GpuDelegate? = null

    init {
        val sidecar = File(modelFile.parentFile, "model.json")
        meta = if (sidecar.isFile) ModelMetadata.parse(sidecar.readText())
        else ModelMetadata.fromTflite(modelBytes) ?: throw IllegalArgumentException("$modelFile has no edgepool metadata")
        val options = Interpreter.Options().setNumThreads(threads)
        when (delegate) {
            "gpu" -> GpuDelegate().also { gpu = it; options.addDelegate(it) }
            "nnapi" -> options.setUseNNAPI(true)
        }
        val buf = ByteBuffer.allocateDirect(modelBytes.size).order(ByteOrder.nativeOrder())
        buf.put(modelBytes).rewind()
        interpreter = Interpreter(buf, options)
    }

    /** The raw pixels of `bitmap` at the model's input size (bilinear), HWC 0..255. */
    fun rawPixels(bitmap: Bitmap): IntArray {
        val scaled = Bitmap.createScaledBitmap(bitmap, meta.width, meta.height, true)
        val argb = IntArray(meta.width * meta.height)
        scaled.getPixels(argb, 0, meta.width, 0, 0, meta.width, meta.height)
        return Preprocess.rawFromArgb(argb, meta.channels)
    }

    fun inputBuffer(raw: IntArray): ByteBuffer {
        val bytes = Preprocess.inputBytes(raw, meta)
        return ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).put(bytes).also { it.rewind() }
    }

    /** Runs one inference on a prepared input; the output bytes. */
    fun run(input: ByteBuffer): ByteArray {
        val out = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes()).order(ByteOrder.nativeOrder())
        input.rewind()
        interpreter.run(input, out)
        out.rewind()
        return ByteArray(out.remaining()).also { out.get(it) }
    }

    fun classify(bitmap: Bitmap, k: Int = 3): List<Postprocess.Top> =
        Postprocess.topK(Postprocess.dequantize(run(inputBuffer(rawPixels(bitmap))), meta), meta, k)

    override fun close() {
        interpreter.close()
        gpu?.close()
    }
}
