package dev.edgepool.example

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Pixels -> the model's input bytes, as edgepool's image-folder preprocessing does (edgepool/datasets.py):
 * alpha composited on white, grayscale by Pillow's ITU-R 601-2 luma, then the model.json normalization and,
 * for integer inputs, quantization (round half to even, as NumPy). Resizing is the caller's (on Android
 * `Bitmap.createScaledBitmap(..., true)`, bilinear); feed images of the input size for bit-exact parity.
 */
object Preprocess {
    /** ARGB pixels (Bitmap.getPixels order: rows, then columns) -> raw 0..255 values in HWC order. */
    fun rawFromArgb(argb: IntArray, channels: Int): IntArray {
        val out = IntArray(argb.size * channels)
        for (i in argb.indices) {
            val p = argb[i]
            val a = (p ushr 24) and 0xff
            var r = (p shr 16) and 0xff
            var g = (p shr 8) and 0xff
            var b = p and 0xff
            if (a != 255) { // composite on white (edgepool composites RGBA images on white)
                r = (r * a + 255 * (255 - a) + 127) / 255
                g = (g * a + 255 * (255 - a) + 127) / 255
                b = (b * a + 255 * (255 - a) + 127) / 255
            }
            if (channels == 1) {
                out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) ushr 16 // Pillow convert("L")
            } else {
                out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b
            }
        }
        return out
    }

    /** x = raw * scale + offset, in float32 like the exporter and verify. */
    fun normalize(raw: IntArray, meta: ModelMetadata): FloatArray {
        val s = meta.normScale.toFloat()
        val o = meta.normOffset.toFloat()
        return FloatArray(raw.size) { raw[it].toFloat() * s + o }
    }

    /** The bytes of the input tensor (native order) for raw HWC pixels. */
    fun inputBytes(raw: IntArray, meta: ModelMetadata): ByteArray {
        val x = normalize(raw, meta)
        val inp = meta.input
        if (!inp.quantized) {
            val buf = ByteBuffer.allocate(4 * x.size).order(ByteOrder.nativeOrder())
            for (v in x) buf.putFloat(v)
            return buf.array()
        }
        val scale = (inp.scale ?: throw IllegalArgumentException("input ${inp.dtype} has no scale")).toFloat()
        val zp = (inp.zeroPoint ?: 0).toFloat()
        val lo = if (inp.dtype == "int8") -128f else 0f
        val hi = if (inp.dtype == "int8") 127f else 255f
        return ByteArray(x.size) {
            val q = Math.rint((x[it] / scale + zp).toDouble()).toFloat().coerceIn(lo, hi)
            q.toInt().toByte()
        }
    }
}

/** Output bytes -> scores, probabilities and the top classes. */
object Postprocess {
    fun dequantize(out: ByteArray, meta: ModelMetadata): FloatArray {
        val o = meta.output
        if (!o.quantized) {
            val buf = ByteBuffer.wrap(out).order(ByteOrder.nativeOrder())
            return FloatArray(out.size / 4) { buf.getFloat(4 * it) }
        }
        val scale = (o.scale ?: 1.0).toFloat()
        val zp = o.zeroPoint ?: 0
        return FloatArray(out.size) {
            val q = if (o.dtype == "int8") out[it].toInt() else out[it].toInt() and 0xff
            (q - zp).toFloat() * scale
        }
    }

    fun probabilities(y: FloatArray, meta: ModelMetadata): DoubleArray {
        if (meta.outputKind != "logits") return DoubleArray(y.size) { y[it].toDouble() }
        var max = Float.NEGATIVE_INFINITY
        for (v in y) if (v > max) max = v
        val e = DoubleArray(y.size) { Math.exp((y[it] - max).toDouble()) }
        val sum = e.sum()
        return DoubleArray(y.size) { e[it] / sum }
    }

    data class Top(val label: String, val index: Int, val score: Double)

    /** The k best classes, best first; ties keep the lower index first (as argmax). */
    fun topK(y: FloatArray, meta: ModelMetadata, k: Int): List<Top> {
        val p = probabilities(y, meta)
        return y.indices.sortedWith(compareBy<Int>({ -y[it] }, { it })).take(k).map {
            Top(if (it < meta.labels.size) meta.labels[it] else it.toString(), it, p[it])
        }
    }
}
