package dev.edgepool.example

import android.view.View
import android.widget.AdapterView

/** A spinner listener that passes the selected item's text. */
class SimpleSelection(private val onSelected: (String) -> Unit) : AdapterView.OnItemSelectedListener {
    override fun onItemSelected(parent: AdapterView<*>, view: View?, position: Int, id: Long) =
        onSelected(parent.getItemAtPosition(position).toString())

    override fun onNothingSelected(parent: AdapterView<*>) {}
}
