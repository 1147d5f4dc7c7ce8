package dev.edgepool.example

/**
 * A small JSON reader and writer (RFC 8259), so the metadata and result code is plain Kotlin with no
 * Android or library dependency: it compiles and is unit-tested on a JVM (see the README).
 * Objects become Map<String, Any?> (insertion order kept), arrays List<Any?>, numbers Double or Long.
 */
object MiniJson {
    fun parse(text: String): Any? {
        val p = Parser(text)
        p.ws()
        val v = p.value()
        p.ws()
        if (p.i != text.length) throw IllegalArgumentException("trailing characters at ${p.i}")
        return v
    }

    private class Parser(val s: String) {
        var i = 0

        fun ws() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(): Any? {
            if (i >= s.length) throw IllegalArgumentException("unexpected end of JSON")
            return when (s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> word("true", true)
                'f' -> word("false", false)
                'n' -> word("null", null)
                else -> num()
            }
        }

        fun word(w: String, v: Any?): Any? {
            if (!s.startsWith(w, i)) throw IllegalArgumentException("bad token at $i")
            i += w.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>()
            i++
            ws()
            if (s[i] == '}') { i++; return m }
            while (true) {
                ws()
                val k = str()
                ws()
                if (s[i] != ':') throw IllegalArgumentException("expected ':' at $i")
                i++
                ws()
                m[k] = value()
                ws()
                if (s[i] == ',') { i++; continue }
                if (s[i] == '}') { i++; return m }
                throw IllegalArgumentException("expected ',' or '}' at $i")
            }
        }

        fun arr(): List<Any?> {
            val a = ArrayList<Any?>()
            i++
            ws()
            if (s[i] == ']') { i++; return a }
            while (true) {
                ws()
                a.add(value())
                ws()
                if (s[i] == ',') { i++; continue }
                if (s[i] == ']') { i++; return a }
                throw IllegalArgumentException("expected ',' or ']' at $i")
            }
        }

        fun str(): String {
            if (s[i] != '"') throw IllegalArgumentException("expected a string at $i")
            i++
            val b = StringBuilder()
            while (s[i] != '"') {
                val c = s[i++]
                if (c != '\\') { b.append(c); continue }
                when (val e = s[i++]) {
                    '"', '\\', '/' -> b.append(e)
                    'b' -> b.append('\b')
                    'f' -> b.append('\u000C')
                    'n' -> b.append('\n')
                    'r' -> b.append('\r')
                    't' -> b.append('\t')
                    'u' -> { b.append(s.substring(i, i + 4).toInt(16).toChar()); i += 4 }
                    else -> throw IllegalArgumentException("bad escape at $i")
                }
            }
            i++
            return b.toString()
        }

        fun num(): Any {
            val start = i
            while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
            val t = s.substring(start, i)
            if (t.length == 0) throw IllegalArgumentException("unexpected character at $start")
            return if (t.any { it in ".eE" }) t.toDouble() else t.toLong()
        }
    }

    fun write(v: Any?): String = StringBuilder().also { write(v, it) }.toString()

    private fun write(v: Any?, b: StringBuilder) {
        when (v) {
            null -> b.append("null")
            is String -> quote(v, b)
            is Boolean -> b.append(v.toString())
            is Double -> if (v.isNaN() || v.isInfinite()) b.append("null") else b.append(v.toString())
            is Float -> write(v.toDouble(), b)
            is Number -> b.append(v.toString())
            is Map<*, *> -> {
                b.append('{')
                var first = true
                for ((k, x) in v) {
                    if (!first) b.append(',')
                    first = false
                    quote(k.toString(), b)
                    b.append(':')
                    write(x, b)
                }
                b.append('}')
            }
            is Iterable<*> -> {
                b.append('[')
                var first = true
                for (x in v) {
                    if (!first) b.append(',')
                    first = false
                    write(x, b)
                }
                b.append(']')
            }
            is DoubleArray -> write(v.toList(), b)
            else -> quote(v.toString(), b)
        }
    }

    private fun quote(s: String, b: StringBuilder) {
        b.append('"')
        for (c in s) {
            when {
                c == '"' -> b.append("\\\"")
                c == '\\' -> b.append("\\\\")
                c == '\n' -> b.append("\\n")
                c == '\r' -> b.append("\\r")
                c == '\t' -> b.append("\\t")
                c < ' ' -> b.append(String.format("\\u%04x", c.toInt()))
                else -> b.append(c)
            }
        }
        b.append('"')
    }
}
