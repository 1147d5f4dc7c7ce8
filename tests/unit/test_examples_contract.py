"""The example apps and the schemas speak the same keys.

The Android (Kotlin), iOS (Swift) and Raspberry Pi (Python) examples cannot all be built here (no Android
SDK, no Xcode), so their sources are read: every model.json key they read exists in model.schema.json and
each reads the keys an app needs; every result.json they write carries the required keys of
benchmark-result.schema.json's device_result / device_window / device_error; the request fields they read
are the ones edgepool's transports send; and the iOS app answers to the bundle id, launch argument and
environment variable edgepool/bench/transports/ios.py uses.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgepool import schemas
from edgepool.bench.transports import ios

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KOTLIN = EXAMPLES / "android/app/src/main/java/dev/edgepool/example"
SWIFT = EXAMPLES / "ios/EdgepoolExample"
PI = EXAMPLES / "raspberry-pi/classify.py"
# what an app needs from model.json to feed a model and name its classes
NEEDED = {"labels", "input", "output", "normalization", "shape", "dtype", "scale", "zero_point", "offset", "format",
          "file", "output_kind"}


def _model_keys() -> set[str]:
    s = schemas.load(schemas.MODEL)
    return set(s["properties"]) | set(s["$defs"]["tensor"]["properties"]) | set(s["$defs"]["normalization"]["properties"])


def _device(defn: str) -> dict:
    return schemas.load(schemas.BENCHMARK)["$defs"][defn]


def kotlin_model_keys() -> set[str]:
    text = (KOTLIN / "ModelMetadata.kt").read_text()
    return set(re.findall(r'\b(?:m|t|norm)\["(\w+)"\]', text)) | set(re.findall(r'obj\(m, "(\w+)"\)', text))


def swift_model_keys() -> set[str]:
    text = (SWIFT / "ModelMetadata.swift").read_text()
    keys: set[str] = set()
    for block in re.findall(r"enum CodingKeys: String, CodingKey \{(.*?)\n    \}", text, re.S):
        for line in re.findall(r"case ([^\n]+)", block):
            m = re.match(r'\w+ = "(\w+)"', line.strip())
            keys |= {m.group(1)} if m else {k.strip() for k in line.split(",")}
    return keys


def python_model_keys() -> set[str]:
    text = PI.read_text()
    chains = re.findall(r'\b(?:side|norm|inp|outp)((?:\["\w+"\])*(?:\.get\("\w+")?)', text)
    return {k for chain in chains for k in re.findall(r'"(\w+)"', chain)}


def test_examples_read_model_json_keys_of_the_schema():
    known = _model_keys()
    for name, keys in (("android", kotlin_model_keys()), ("ios", swift_model_keys()), ("raspberry-pi", python_model_keys())):
        assert keys, name
        assert keys <= known, f"{name} reads keys model.schema.json does not define: {sorted(keys - known)}"
        assert NEEDED <= keys, f"{name} does not read {sorted(NEEDED - keys)}"


def _written(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


def test_apps_write_the_device_result_of_the_schema():
    kotlin = _written((KOTLIN / "Benchmark.kt").read_text(), r'"(\w+)" to\b')
    swift = _written((SWIFT / "BenchmarkRunner.swift").read_text(), r'"(\w+)":')
    result, window, error = _device("device_result"), _device("device_window"), _device("device_error")
    allowed = set(result["properties"]) | set(window["properties"]) | set(error["properties"])
    for name, keys in (("android", kotlin), ("ios", swift)):
        for defn in (result, window, error):
            missing = set(defn["required"]) - keys
            assert not missing, f"{name}'s result.json lacks {sorted(missing)}"
        assert "latencies_ms" in keys and "windows" in keys
        # keys outside the schema may only be nested records (warmup, environment) of the app's own
        extra = keys - allowed - {"runs", "seconds", "request_id", "thermal_state", "device_model", "manufacturer",
                                  "android_version", "sdk", "soc", "machine", "delegate", "transport", "low_power_mode"}
        assert not extra, f"{name} writes result keys the schema does not know: {sorted(extra)}"


def test_apps_read_the_request_the_transports_send():
    from edgepool.bench.protocol import BenchOptions, build_request

    agent_fields = set(build_request(Path("m.tflite"), BenchOptions(), None, [], {}))
    app_fields = {"protocol", "model_path", "result_path", "request_id", "compute_units", "inputs", *ios.REQUEST_FIELDS}
    extras = re.search(r"val EXTRAS = listOf\((.*?)\)", (KOTLIN / "Benchmark.kt").read_text(), re.S).group(1)
    kotlin = set(re.findall(r'"(\w+)"', extras))
    assert kotlin - {"result_path", "delegate", "request_id"} <= agent_fields, sorted(kotlin - agent_fields)
    swift_text = (SWIFT / "BenchmarkRunner.swift").read_text()
    swift = set(re.findall(r'num\(req, "(\w+)"', swift_text)) | set(re.findall(r'req\["(\w+)"\]', swift_text))
    assert swift <= app_fields, sorted(swift - app_fields)
    assert set(ios.REQUEST_FIELDS) - {"threads"} <= swift  # Core ML has no thread count


def test_ios_app_answers_to_the_transport():
    swift = "\n".join(p.read_text() for p in SWIFT.glob("*.swift"))
    assert f'"{ios.REQUEST_ARG}"' in swift and f'"{ios.REQUEST_ENV}"' in swift
    assert f"PRODUCT_BUNDLE_IDENTIFIER: {ios.BUNDLE_ID}" in (EXAMPLES / "ios/project.yml").read_text()
    assert f'applicationId = "{ios.BUNDLE_ID}"' in (EXAMPLES / "android/app/build.gradle.kts").read_text()
    assert "result.json" in swift


def test_example_readmes_say_how_to_build_and_what_was_not_built():
    for name in ("android", "ios", "raspberry-pi"):
        text = (EXAMPLES / name / "README.md").read_text()
        assert "Point it at a new export" in text or "Pointing it at a new export" in text, name
    for name in ("android", "ios"):
        text = (EXAMPLES / name / "README.md").read_text()
        assert "## Build and run" in text and "not reachable" in text, name
