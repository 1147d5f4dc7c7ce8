package dev.edgepool.example

import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import java.io.File

/**
 * Classifies a gallery image or a camera frame with the export in the app's files folder
 * (`files/model/model.tflite` + `model.json`, pushed with adb, or the one bundled in assets/model/).
 */
class MainActivity : AppCompatActivity() {
    private var classifier: Classifier? = null

    private val pick = registerForActivityResult(ActivityResultContracts.GetContent()) { uri ->
        if (uri != null) show(ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { d, _, _ ->
            d.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
        })
    }
    private val snap = registerForActivityResult(ActivityResultContracts.TakePicturePreview()) { bmp -> if (bmp != null) show(bmp) }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        findViewById<Button>(R.id.pick).setOnClickListener { pick.launch("image/*") }
        findViewById<Button>(R.id.camera).setOnClickListener { snap.launch(null) }
        load("cpu")
        findViewById<Spinner>(R.id.delegate).onItemSelectedListener = SimpleSelection { load(it) }
    }

    private fun load(delegate: String) {
        classifier?.close()
        val model = modelFile()
        classifier = Classifier(model, delegate)
        val m = classifier!!.meta
        findViewById<TextView>(R.id.info).text =
            "${model.name}: ${m.format} ${m.recipe ?: ""}, ${m.width}x${m.height}x${m.channels} ${m.input.dtype}, $delegate"
    }

    private fun modelFile(): File {
        val dir = File(filesDir, "model")
        if (!File(dir, "model.tflite").isFile) { // first start: copy the bundled export
            dir.mkdirs()
            for (name in assets.list("model") ?: emptyArray()) {
                assets.open("model/$name").use { src -> File(dir, name).outputStream().use { src.copyTo(it) } }
            }
        }
        return File(dir, "model.tflite")
    }

    private fun show(bitmap: Bitmap) {
        findViewById<ImageView>(R.id.image).setImageBitmap(bitmap)
        val top = classifier!!.classify(bitmap.copy(Bitmap.Config.ARGB_8888, false))
        findViewById<TextView>(R.id.result).text =
            top.joinToString("\n") { "${it.label}  ${"%.1f".format(100 * it.score)}%" }
    }

    override fun onDestroy() {
        classifier?.close()
        super.onDestroy()
    }
}
