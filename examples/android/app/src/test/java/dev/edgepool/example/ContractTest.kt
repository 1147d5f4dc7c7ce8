package dev.edgepool.example

import org.junit.Assert.assertEquals
import org.junit.Test

/** JVM unit tests of the plain-Kotlin part (`./gradlew test`). edgepool's own suite runs the same code
 *  against real exports with Debian's kotlinc (tests/integration/test_android_kotlin.py). */
class ContractTest {
    private val json = """{"schema_version": 1, "format": "tflite", "file": "model.tflite", "labels": ["a", "b"],
        "input": {"name": "x", "shape": [1, 2, 2, 1], "dtype": "int8", "scale": 0.00392156862745098, "zero_point": -128},
        "output": {"name": "y", "shape": [1, 2], "dtype": "int8", "scale": 0.1, "zero_point": 0},
        "normalization": {"scale": 0.00392156862745098, "offset": 0.0}, "output_kind": "logits"}"""

    @Test fun quantizesLikeEdgepool() {
        val m = ModelMetadata.parse(json)
        assertEquals(listOf(-128, -1, 0, 127), Preprocess.inputBytes(intArrayOf(0, 127, 128, 255), m).map { it.toInt() })
    }

    @Test fun topClassFirst() {
        val m = ModelMetadata.parse(json)
        val top = Postprocess.topK(Postprocess.dequantize(byteArrayOf(3, 20), m), m, 2)
        assertEquals(listOf("b", "a"), top.map { it.label })
    }
}
