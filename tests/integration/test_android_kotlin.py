"""The Android example's plain-Kotlin code (model.json / embedded metadata, preprocessing, postprocessing,
the benchmark protocol and its result.json), compiled with Debian's `kotlinc` (package `kotlin`, 1.3) and run
on this JVM against a real int8 export. The Android-only files (Activities, the LiteRT Interpreter) need the
Android SDK, which is not reachable here: they are not compiled (examples/android/README.md).

Checked: the metadata read from model.json equals the copy read from the .tflite flatbuffer; the input bytes
equal the int8 values edgepool's LiteRT child feeds (verify/_tflite_child.py) for every test image; the top
classes from the interpreter's raw outputs equal `edgepool predict`'s; the result.json validates against
benchmark-result.schema.json ($defs/device_result) and is accepted by the ios transport's reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgepool import schemas
from tests._example_exports import image_folder, tiny_export
from tests.conftest import REPO

SOURCES = [REPO / "examples/android/app/src/main/java/dev/edgepool/example" / f"{n}.kt"
           for n in ("MiniJson", "ModelMetadata", "Preprocess", "Benchmark")]
DRIVER = REPO / "tests/kotlin/ContractCheck.kt"


def compiled(kotlinc: str) -> Path:
    """The sources compiled into one jar with the Kotlin runtime. kotlinc 1.3 takes ~20-60 s, so the jar is kept
    in a cache outside the clone keyed by the sources' and compiler's bytes (any change compiles again)."""
    h = hashlib.sha256()
    for f in [*SOURCES, DRIVER, Path(os.path.realpath(kotlinc))]:
        h.update(f.read_bytes())
    for lib in sorted((Path(os.path.realpath(kotlinc)).parents[1] / "lib").glob("kotlin-*.jar")):  # the compiler's release
        h.update(f"{lib.name}:{lib.stat().st_size}:{lib.stat().st_mtime_ns}".encode())
    cache = Path(os.environ.get("EDGEPOOL_KOTLIN_CACHE", "/var/cache/edgepool-kotlin"))
    jar = cache / f"contract-{h.hexdigest()[:16]}.jar"
    if jar.is_file():
        return jar
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{jar.name}.{os.getpid()}.jar"
    p = subprocess.run([kotlinc, *map(str, SOURCES), str(DRIVER), "-include-runtime", "-d", str(tmp)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and tmp.is_file(), p.stderr[-3000:]
    os.replace(tmp, jar)
    return jar


@pytest.mark.slow
def test_android_plain_kotlin_matches_edgepool(tiny_run, tmp_path):
    kotlinc = shutil.which("kotlinc")
    if kotlinc is None:
        pytest.fail("kotlinc is needed to compile the Android example's plain Kotlin: apt-get install kotlin "
                    "(make test installs it)", pytrace=False)
    from ai_edge_litert.interpreter import Interpreter

    from edgepool.predict import predict

    export = tiny_export(tiny_run, "int8", tmp_path / "exports")
    root, x, _ = image_folder(tiny_run, tmp_path / "images")
    side = export.sidecar
    # what edgepool's child feeds the interpreter, and the interpreter's raw int8 outputs
    it = Interpreter(model_content=export.model_file.read_bytes())
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    xf = tiny_run.normalize(x)
    scale, zp = i["quantization"]
    q = np.clip(np.round(xf / scale + zp), -128, 127).astype(np.int8)
    outs = []
    for s in q:
        it.set_tensor(i["index"], s[None])
        it.invoke()
        outs.append(it.get_tensor(o["index"])[0].copy())
    (tmp_path / "pixels.bin").write_bytes(np.ascontiguousarray(x, np.uint8).tobytes())
    (tmp_path / "outputs.bin").write_bytes(np.stack(outs).astype(np.int8).tobytes())

    jar = compiled(kotlinc)
    out = tmp_path / "out.json"
    p = subprocess.run(["java", "-cp", str(jar), "ContractCheckKt", str(export.path / "model.json"), str(export.model_file),
                        str(tmp_path / "pixels.bin"), str(tmp_path / "outputs.bin"), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.read_text())

    assert doc["embedded_equal"] is True
    assert (doc["height"], doc["width"], doc["channels"]) == (8, 8, 1) and doc["labels"] == side["labels"]
    assert doc["input"] == ["int8", side["input"]["scale"], side["input"]["zero_point"]]
    assert np.array_equal(np.array(doc["inputs"], np.int8), q.reshape(len(q), -1))
    host = predict(export.path, [root])
    assert [t[0]["index"] for t in doc["tops"]] == host.indices.tolist()
    for mine, theirs in zip(doc["tops"], host.predictions, strict=True):
        assert [t["index"] for t in mine] == [t["index"] for t in theirs.top]
        np.testing.assert_allclose([t["score"] for t in mine], [t["score"] for t in theirs.top], rtol=1e-5)

    bench = doc["bench"]
    assert schemas.problems(bench, schemas.BENCHMARK, "device_result") == []
    assert schemas.problems(doc["error"], schemas.BENCHMARK, "device_error") == []
    assert [w["latencies_ms"] for w in bench["windows"]] == [[2.0] * 4] * 2 and bench["init_ms"] == 5.0
    assert bench["threads"] == 2 and bench["delegates"] == ["gpu"] and bench["windows_finished"] == 2

    # the ios transport's reader takes the same result.json: windows become agent window events
    from edgepool.bench.protocol import BenchmarkResult
    from edgepool.bench.transports import AgentRun
    from edgepool.bench.transports.ios import IosTransport

    run = AgentRun()
    IosTransport()._collect(bench, {"transport": "ios"}, run, lambda ev: None)
    r = BenchmarkResult("m", "m.tflite", "tflite", "int8", "phone", None, 1, 2, [], "random")
    for w in run.windows:
        r.add_window(w)
    r.apply_result(run.result)
    assert r.runs == 8 and r.median_ms == pytest.approx(2.0) and r.complete
