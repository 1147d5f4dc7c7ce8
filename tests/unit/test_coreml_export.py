"""Core ML export: every zoo preset and downsampling choice converts, and the NumPy MIL executor
(Core ML itself on macOS) reproduces the Keras model; metadata and labels read back; bad input fails
clearly and leaves nothing behind; a broken model file raises one error from every reader."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("coremltools")

from edgepool.errors import ExistsError, ExportError, ModelError, ProfileError  # noqa: E402
from edgepool.export import coreml  # noqa: E402
from edgepool.export.source import ModelSource  # noqa: E402
from edgepool.inspect.coreml import load_spec, read_coreml, read_metadata  # noqa: E402
from edgepool.recipes import load_recipe, recipes_dir  # noqa: E402
from edgepool.runs import save_export  # noqa: E402
from edgepool.types import Artifact, Compression, DeploymentTarget, Format, RecipeFormat, Status  # noqa: E402
from edgepool.verify.coreml import mil_scores, verify_coreml  # noqa: E402

SCALE = 1.0 / 255.0
T = DeploymentTarget

FP16 = load_recipe("coreml-fp16")
FP32 = load_recipe("coreml-fp32")
INT8 = load_recipe("coreml-int8")
PAL4 = dataclasses.replace(load_recipe("coreml-palettize"), palettize_nbits=4)
META = {"description": "test model", "source_run": "runs/t", "edgepool_version": "0.1.0"}


def device(target: DeploymentTarget | None = None, units: str | None = None):
    """A Core ML profile with this deployment target / compute units; None when neither is given."""
    if target is None and units is None:
        return None
    from edgepool.profiles import resolve

    return dataclasses.replace(resolve("iphone-15-pro"), deployment_target=target, compute_units=units)


def spec_for(h, w, c, scale=SCALE, offset=0.0):
    return {"height": h, "width": w, "channels": c, "scale": scale, "offset": offset}


def zoo_model(preset_name="tiny", pool="max", shape=(16, 16, 1), classes=4):
    from edgepool.models import build_model, preset

    return build_model(preset(preset_name).with_pool(pool), shape, classes, seed=0)


def raw_images(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype(np.uint8)


def keras_logits(model, x_raw, scale=SCALE, offset=0.0):
    return model.predict(x_raw.astype(np.float32) * np.float32(scale) + np.float32(offset), verbose=0)


def make(model, rec, shape, labels=None, *, target=None, units=None, image_input=False, metadata=None,
         input_spec=None) -> Artifact:
    labels = labels or [f"c{i}" for i in range(int(model.outputs[0].shape[-1]))]
    source = ModelSource(model, labels, input_spec or spec_for(*shape), metadata=dict(META if metadata is None else metadata))
    return coreml.export(source, rec, device(target, units), image_input=image_input)


def export(model, rec, out, shape, labels=None, **kw):
    """Export and save into `out` (as the pipeline does); returns the sidecar."""
    art = make(model, rec, shape, labels, **kw)
    try:
        save_export(art, out, labels=list(art.sidecar["labels"]))
    finally:
        coreml.discard(art)  # a no-op once saved
    return art.sidecar


def check_parity(model, package, shape, rec, n=24):
    x = raw_images(n, shape)
    kl = keras_logits(model, x)
    # the "labels" are Keras' own predictions: accuracy must then equal agreement
    return verify_coreml(package, x, kl.argmax(1), kl, rec, executor="numpy-mil")


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The temporary folder exporters build in; `leftovers(scratch)` lists what an export left there."""
    d = tmp_path / "scratch"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def leftovers(scratch: Path) -> list[Path]:
    return sorted(scratch.glob("edgepool-coreml-*"))


# ------------------------------------------------------------------ conversion of the zoo


def test_default_export_is_an_fp16_mlprogram_that_matches_keras(tmp_path, scratch):
    shape = (16, 16, 1)
    model = zoo_model("tiny", "max", shape)
    art = make(model, FP16, shape)
    assert art.format is Format.COREML and art.model_file == "model.mlpackage" and art.notes == []
    built = art.files["model.mlpackage"]
    assert isinstance(built, Path) and built.is_dir() and built.parent.parent == scratch
    side = art.sidecar
    assert side["file"] == "model.mlpackage" and side["format"] == "coreml" and side["model_type"] == "mlprogram"
    assert side["deployment_target"] == "iOS15" and side["compute_precision"] == "float16"
    assert side["input"]["shape"] == [1, 16, 16, 1] and side["output"]["shape"] == [1, 4]
    assert side["output_kind"] == "probabilities" and side["recipe"] == "coreml-fp16" and side["profile"] is None
    assert side["source_run"] == "runs/t" and side["normalization"] == {"scale": 1.0, "offset": 0.0}
    saved = save_export(art, tmp_path / "e", labels=side["labels"])
    assert saved.model_file.is_dir() and leftovers(scratch) == []  # moved, temporary folder gone
    v = check_parity(model, saved.model_file, shape, FP16)
    assert v.details["executor"] == "numpy-mil" and v.details["compared"] == "logits"
    assert v.status is Status.PASS, v
    assert v.reason is None and v.to_dict()["status"] == "pass"
    assert v.details["max_abs_diff"] > 0  # FP16 really was emulated: not an exact float32 replay
    assert v.details["agreement"] == 1.0 and v.details["accuracy"] == 1.0


def _presets():
    from edgepool.models import POOLS, PRESETS

    return [(p, pool) for p in PRESETS for pool in POOLS]


@pytest.mark.slow
@pytest.mark.parametrize("preset_name,pool", _presets())
def test_every_preset_and_pooling_choice_converts_and_verifies(tmp_path, preset_name, pool):
    shape = (16, 16, 1)
    model = zoo_model(preset_name, pool, shape, classes=5)
    side = export(model, FP16, tmp_path / "e", shape)
    v = check_parity(model, tmp_path / "e" / side["file"], shape, FP16, n=16)
    assert v.details["agreement"] == 1.0
    if pool == "stochastic" and v.status is Status.FAIL:
        # its inference form is a ratio of two FP16 average pools, avg(a^2) / avg(a): FP16 rounding of both
        # can exceed the FP16 logit bound (measured 3.6x on small-ds) though the classes agree; verify says so
        assert v.reason.startswith("FP16 logits differ") and v.details["fp16_parity"]["worst_ratio"] < 10, v
    else:
        assert v.status is Status.PASS, v


def test_fp32_recipe_matches_keras_tightly(tmp_path):
    shape = (12, 12, 1)
    model = zoo_model("small-ds", "l2", shape)
    side = export(model, FP32, tmp_path / "e", shape, target=T.iOS16)
    assert side["deployment_target"] == "iOS16" and side["compute_precision"] == "float32"
    assert side["profile"] == "iphone-15-pro"
    v = check_parity(model, tmp_path / "e" / side["file"], shape, FP32)
    assert v.status is Status.PASS and v.details["atol"] == 1e-4 and v.details["max_abs_diff"] < 1e-4, v


def test_a_wrong_export_fails_verification(tmp_path):
    """The check can fail: another model's logits do not match this package."""
    shape = (12, 12, 1)
    model = zoo_model("tiny", "avg", shape)
    side = export(model, FP16, tmp_path / "e", shape)
    other = zoo_model("tiny", "max", shape)
    x = raw_images(16, shape)
    kl = keras_logits(other, x)
    v = verify_coreml(tmp_path / "e" / side["file"], x, kl.argmax(1), kl, FP16, executor="numpy-mil")
    assert v.status is Status.FAIL and "coreml-fp32" in v.hint and v.reason


def test_image_input_bakes_scale_and_bias(tmp_path):
    shape = (12, 12, 3)
    from edgepool.models import build_model, preset

    model = build_model(preset("tiny"), shape, 3, seed=1)
    out = tmp_path / "rgb"
    side = export(model, FP16, out, shape, labels=["r", "g", "b"], metadata={},
                  input_spec=spec_for(*shape, scale=2 / 255, offset=-1.0), image_input=True)
    meta = read_metadata(out / side["file"])
    assert meta["input_types"] == ["imageType"] and side["input"]["type"] == "image"
    x = raw_images(16, shape, seed=3)
    kl = keras_logits(model, x, scale=2 / 255, offset=-1.0)
    v = verify_coreml(out / side["file"], x, kl.argmax(1), kl, FP16, executor="numpy-mil")
    assert v.status is Status.PASS, v

    gray = zoo_model("tiny", "max", (12, 12, 1))
    out = tmp_path / "gray"
    side = export(gray, FP16, out, (12, 12, 1), image_input=True)
    assert read_metadata(out / side["file"])["input_types"] == ["imageType"]
    assert check_parity(gray, out / side["file"], (12, 12, 1), FP16).status is Status.PASS


# ------------------------------------------------------------------ compression


@pytest.mark.slow
def test_weight_compression_shrinks_weights_and_still_verifies(tmp_path):
    shape = (16, 16, 1)
    model = zoo_model("small", "max", shape, classes=10)
    sizes = {}
    for rec in (FP32, FP16, INT8, PAL4):
        side = export(model, rec, tmp_path / rec.name, shape)
        sizes[rec.name] = side["weights_bytes"]
        v = check_parity(model, tmp_path / rec.name / side["file"], shape, rec, n=32)
        assert v.status in (Status.PASS, Status.FAIL) and v.details["agreement"] is not None
        if rec.weight_compression is Compression.NONE:
            assert v.status is Status.PASS, v
        assert v.details["agreement"] >= 0.9, (rec.name, v)
    assert side["deployment_target"] == "iOS16"  # compression picks iOS16 by default
    assert side["palettize_nbits"] == 4 and side["weight_compression"] == "palettize"
    assert 0.45 <= sizes["coreml-fp16"] / sizes["coreml-fp32"] <= 0.55
    assert sizes["coreml-int8"] / sizes["coreml-fp32"] <= 0.32
    assert sizes["coreml-palettize"] / sizes["coreml-fp32"] <= 0.2


def test_int8_ios18_package_runs_through_blockwise_dequantization(tmp_path):
    """iOS18 packs int8 weights as constexpr_blockwise_shift_scale; the executor decompresses and runs them."""
    shape = (8, 8, 1)
    model = zoo_model("tiny", "max", shape)
    side = export(model, INT8, tmp_path / "e", shape, target=T.iOS18)
    from edgepool.verify import mil

    package = tmp_path / "e" / side["file"]
    prog = mil.load_program(package)
    assert "constexpr_blockwise_shift_scale" in prog.op_types
    scores, kind = mil_scores(package, raw_images(8, shape))
    assert kind == "logits" and np.isfinite(scores).all()
    kl = keras_logits(model, raw_images(8, shape))
    assert np.abs(scores - kl).max() < 0.2  # 8-bit weights move logits a little, not a lot


# ------------------------------------------------------------------ metadata


def test_metadata_and_labels_read_back(tmp_path):
    shape = (10, 10, 1)
    model = zoo_model("tiny", "avg", shape, classes=3)
    labels = ["cat", "dog", "eel"]
    metadata = {
        "description": "pets",
        "version": "7",
        "source_run": "runs/pets",
        "edgepool_version": "0.1.0",
        "model_spec": {"name": "tiny"},
    }
    out = tmp_path / "e"
    side = export(model, FP16, out, shape, labels, metadata=metadata, target=T.iOS16, units="CPU_AND_NE")
    meta = read_metadata(out / side["file"])
    assert meta["type"] == "mlProgram"
    assert meta["labels"] == labels and side["labels"] == labels
    assert meta["description"] == "pets" and meta["version"] == "7"
    ud = meta["user_defined"]
    assert ud["source_run"] == "runs/pets" and ud["edgepool_version"] == "0.1.0"
    assert ud["recipe"] == "coreml-fp16" and ud["compute_units"] == "CPU_AND_NE"
    assert ud["deployment_target"] == "iOS16" and ud["edgepool.softmax_appended"] == "true"
    assert '"name": "tiny"' in ud["model_spec"]
    assert '"shape": [1, 10, 10, 1]' in ud["input"] and '"kind": "probabilities"' in ud["output"]
    assert meta["predicted_feature"] == "classLabel" and meta["predicted_probabilities"] == "classLabel_probs"
    assert side["compute_units"] == "CPU_AND_NE"
    assert side["size_bytes"] > side["weights_bytes"] > 0
    # the one reader agrees with the executor's view of the same package
    from edgepool.verify.mil import load_program

    assert load_program(out / side["file"]).class_labels == labels


# ------------------------------------------------------------------ legacy target, unverified paths


def test_old_target_writes_a_neuralnetwork_mlmodel_reported_unverified_on_linux(tmp_path):
    shape = (8, 8, 1)
    model = zoo_model("tiny", "max", shape)
    out = tmp_path / "e"
    side = export(model, FP16, out, shape, target=T.iOS14)
    assert side["file"] == "model.mlmodel" and side["model_type"] == "neuralnetwork"
    assert read_metadata(out / "model.mlmodel")["labels"] == ["c0", "c1", "c2", "c3"]
    if sys.platform != "darwin":
        x = raw_images(4, shape)
        kl = keras_logits(model, x)
        v = verify_coreml(out / "model.mlmodel", x, kl.argmax(1), kl, FP16)
        assert v.status is Status.UNVERIFIED and v.reason.startswith("op ") and v.get("accuracy") is None
        assert v.hint and v.to_dict()["status"] == "unverified"


def test_an_op_the_executor_lacks_is_unverified_never_a_pass(tmp_path):
    from edgepool._tf import keras, tf

    K, Tf = keras(), tf()
    inp = K.Input((8, 8, 1))
    x = K.layers.Conv2D(4, 3, padding="same")(inp)
    x = K.layers.Flatten()(x)
    x = K.layers.Lambda(lambda t: Tf.math.cumsum(t, axis=-1), name="running_sum")(x)
    x = K.layers.Dense(3)(x)
    model = K.Model(inp, x)
    side = export(model, FP16, tmp_path / "e", (8, 8, 1))
    xr = raw_images(4, (8, 8, 1))
    kl = keras_logits(model, xr)
    v = verify_coreml(tmp_path / "e" / side["file"], xr, kl.argmax(1), kl, FP16, executor="numpy-mil")
    assert v.status is Status.UNVERIFIED and v.reason == "op cumsum"  # the reason is data, not in the status
    assert v.status.ok and v.hint
    assert v.get("accuracy") is None and v.get("agreement") is None


# ------------------------------------------------------------------ one reader, one error


def _broken_files(tmp_path: Path) -> list[Path]:
    garbage = tmp_path / "garbage.mlmodel"
    garbage.write_bytes(b"not a Core ML model at all")
    package = tmp_path / "broken.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{")
    empty = tmp_path / "empty.mlpackage"
    empty.mkdir()
    return [garbage, package, empty]


def test_a_broken_model_file_raises_the_same_error_from_every_reader(tmp_path):
    from edgepool.verify.mil import load_program

    readers = [load_spec, read_coreml, read_metadata, load_program]
    for path in _broken_files(tmp_path):
        for read in readers:
            with pytest.raises(ModelError) as e:
                read(path)
            assert type(e.value) is ModelError, (read.__name__, path)
            assert e.value.message.startswith(f"{path} is not a readable Core ML model ("), (read.__name__, e.value)
            assert e.value.hint == "export it again"
        # verification reads through the same reader
        with pytest.raises(ModelError, match="is not a readable Core ML model"):
            verify_coreml(path, raw_images(2, (8, 8, 1)), np.zeros(2), np.zeros((2, 3)), FP16, executor="numpy-mil")
    for read in readers:
        with pytest.raises(ModelError, match="does not exist"):
            read(tmp_path / "missing.mlpackage")


# ------------------------------------------------------------------ bad input


def _fractional_pool_model():
    from edgepool._tf import keras, tf

    K, Tf = keras(), tf()

    class FractionalPool(K.layers.Layer):
        def call(self, x):
            return Tf.nn.fractional_max_pool(x, [1.0, 1.5, 1.5, 1.0], pseudo_random=True, seed=1)[0]

    inp = K.Input((12, 12, 1))
    x = K.layers.Conv2D(4, 3, name="b0_conv0")(inp)
    x = FractionalPool(name="b0_fracpool")(x)
    x = K.layers.Flatten()(x)
    return K.Model(inp, K.layers.Dense(3)(x))


def test_unconvertible_layer_is_named_with_the_pooling_to_use(tmp_path, scratch):
    with pytest.raises(ExportError) as e:
        export(_fractional_pool_model(), FP16, tmp_path / "e", (12, 12, 1))
    msg = str(e.value)
    assert "b0_fracpool" in msg and "FractionalMaxPool" in msg
    assert "max" in e.value.hint and "l2" in e.value.hint and "strided" in e.value.hint
    assert not (tmp_path / "e").exists() and leftovers(scratch) == []


@pytest.mark.parametrize(
    "rec,target,needle",
    [
        (INT8, T.iOS15, "iOS16"),
        (PAL4, T.iOS14, "iOS16"),
        (dataclasses.replace(PAL4, name="p3", palettize_nbits=3), T.iOS17, "iOS18"),
        (load_recipe("int8"), None, "tflite"),
        (dataclasses.replace(FP16, name="bad", compute_precision="bfloat16"), None, "compute_precision"),
        (dataclasses.replace(FP16, name="bad", weight_compression="zip"), None, "weight_compression"),
        (dataclasses.replace(PAL4, name="bad", palettize_nbits=5), None, "palettize_nbits"),
    ],
)
def test_recipe_and_target_errors_are_clear_and_leave_nothing(tmp_path, scratch, rec, target, needle):
    model = zoo_model("tiny", "max", (8, 8, 1))
    with pytest.raises(ExportError) as e:
        export(model, rec, tmp_path / "e", (8, 8, 1), target=target)
    assert needle in str(e.value)
    assert e.value.hint
    assert not (tmp_path / "e").exists() and leftovers(scratch) == []


def test_three_bit_palettes_default_to_ios18():
    p3 = dataclasses.replace(PAL4, name="p3", palettize_nbits=3)
    assert coreml._settings(p3, None).target is T.iOS18
    assert coreml._settings(INT8, None).target is T.iOS16 and coreml._settings(FP16, None).target is T.iOS15


def test_an_unknown_deployment_target_is_refused_by_the_profile(tmp_path):
    """Targets are a DeploymentTarget from the profile; a name Core ML does not know never gets that far."""
    from edgepool.profiles import resolve

    src = resolve("iphone-15-pro").path.read_text()
    bad = tmp_path / "phone.toml"
    bad.write_text(src.replace('minimum_deployment_target = "iOS17"', 'minimum_deployment_target = "iOS99"'))
    with pytest.raises(ProfileError) as e:
        resolve(bad)
    assert "iOS99" in str(e.value) and e.value.hint
    with pytest.raises(ValueError):
        DeploymentTarget.parse("iOS99")


def test_other_bad_arguments(tmp_path, scratch):
    model = zoo_model("tiny", "max", (8, 8, 1))
    out = tmp_path / "e"
    with pytest.raises(ExportError, match="compute units"):
        export(model, FP16, out, (8, 8, 1), units="GPU_ONLY_PLEASE")
    with pytest.raises(ExportError, match="CPU_AND_NE needs? iOS16"):
        export(model, FP16, out, (8, 8, 1), target=T.iOS15, units="CPU_AND_NE")
    with pytest.raises(ExportError, match="labels"):
        export(model, FP16, out, (8, 8, 1), labels=["a"])
    with pytest.raises(ExportError, match="does not match the input spec"):
        export(model, FP16, out, (9, 8, 1))
    with pytest.raises(ExportError, match="1- or 3-channel"):
        m2 = zoo_model("tiny", "max", (8, 8, 2))
        export(m2, FP16, out, (8, 8, 2), image_input=True)
    assert not out.exists() and leftovers(scratch) == []
    export(model, FP16, out, (8, 8, 1))
    with pytest.raises(ExistsError, match="already exists"):  # the saver never overwrites an export
        export(model, FP16, out, (8, 8, 1))
    assert leftovers(scratch) == []


def test_a_failed_save_leaves_no_half_written_package(tmp_path, scratch, monkeypatch):
    import coremltools as ct

    def broken_save(self, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "Manifest.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(ct.models.MLModel, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export(zoo_model("tiny", "max", (8, 8, 1)), FP16, tmp_path / "e", (8, 8, 1))
    assert not (tmp_path / "e").exists() and leftovers(scratch) == []


# ------------------------------------------------------------------ recipes


@pytest.mark.parametrize("name", ["coreml-fp16", "coreml-fp32", "coreml-int8", "coreml-palettize"])
def test_shipped_coreml_recipes(name):
    data = tomllib.loads((recipes_dir() / f"{name}.toml").read_text())
    assert data["schema_version"] == 1 and data["format"] == "coreml" and data["description"]
    assert data["compute_precision"] in ("float16", "float32")
    assert data["weight_compression"] in ("none", "linear-int8", "palettize")
    r = load_recipe(name)
    assert (r.format, r.compute_precision, r.weight_compression) == (
        RecipeFormat.COREML,
        data["compute_precision"],
        Compression(data["weight_compression"]),
    )
    assert set(data) <= {
        "schema_version",
        "description",
        "format",
        "compute_precision",
        "weight_compression",
        "palettize_nbits",
        "min_agreement",
        "max_accuracy_drop_pp",
    }
    if data["weight_compression"] == "palettize":
        assert data["palettize_nbits"] in (1, 2, 4, 6, 8)


# ------------------------------------------------------------------ macOS: the executor against Core ML


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction exists only on macOS")
@pytest.mark.parametrize("rec", [FP16, FP32, INT8, PAL4], ids=lambda r: r.name)
def test_numpy_executor_agrees_with_real_core_ml(tmp_path, rec):
    from edgepool.verify.coreml import coreml_probabilities
    from edgepool.verify.mil import load_program, run

    shape = (16, 16, 1)
    model = zoo_model("small", "l2", shape, classes=5)
    side = export(model, rec, tmp_path / "e", shape)
    package = tmp_path / "e" / side["file"]
    x = raw_images(16, shape)
    labels = [f"c{i}" for i in range(5)]
    core = coreml_probabilities(package, x, labels)
    prog = load_program(package)
    ours = run(prog, {"input": x.astype(np.float32)})["classLabel_probs"]
    np.testing.assert_allclose(ours, core, atol=1e-2 if rec.compute_precision == "float16" else 1e-4)
    kl = keras_logits(model, x)
    v = verify_coreml(package, x, kl.argmax(1), kl, rec, executor="coreml")
    assert v.details["executor"] == "coreml" and v.status in (Status.PASS, Status.FAIL)


# ------------------------------------------------------------------ the tolerance itself


def test_fp16_tolerance_scales_with_each_samples_logit_range():
    from edgepool.verify.coreml import compare_scores, criteria_for

    crit = criteria_for(FP16)
    ref = np.array([[20.0, -3.0, 1.0], [1.0, 0.5, -0.2]])
    # 0.025 off on a sample whose logits reach 20: within 1e-2 + 1e-3 * 20
    ok, max_abs, max_rel = compare_scores(
        ref + [[0.0, 0.025, 0.0], [0, 0, 0]], ref, crit["atol"], crit["rtol"]
    )
    assert ok and max_abs == pytest.approx(0.025) and max_rel == pytest.approx(0.025 / 20)
    # the same error on a sample whose logits stay near 1 is too much
    ok, _, _ = compare_scores(ref + [[0, 0, 0], [0.0, 0.025, 0.0]], ref, crit["atol"], crit["rtol"])
    assert not ok
    fp32 = criteria_for(FP32)
    assert not compare_scores(ref + 2e-4, ref, fp32["atol"], fp32["rtol"])[0]
    assert compare_scores(ref + 5e-5, ref, fp32["atol"], fp32["rtol"])[0]
    assert criteria_for(INT8)["atol"] is None and criteria_for(INT8)["min_agreement"] == 0.99
    pal = criteria_for(load_recipe("coreml-palettize"))
    assert pal["min_agreement"] == 0.97 and pal["max_accuracy_drop"] == pytest.approx(0.02)
