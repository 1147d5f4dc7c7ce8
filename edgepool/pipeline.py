"""The job as library calls: train -> quantize -> export -> verify -> benchmark.

Each function returns typed results and writes through `edgepool.runs`; the CLI commands (and
`edgepool demo`) call these and render what comes back. Long steps report through one progress style,
`ProgressFn` (edgepool.types): a callable taking a `ProgressEvent`.

    run = train_run(preset("small"), load_dataset("digits"), TrainConfig(epochs=5), "runs/digits")
    result = convert(run, [resolve_profile("raspberry-pi-5"), resolve_profile("iphone-15-pro")])
    result.passed            # False when any profile's export failed or could not be made
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import runs
from .errors import EdgepoolError
from .runs import Export, Run
from .types import ProgressEvent, ProgressFn, Status, Verification

if TYPE_CHECKING:
    from .bench.protocol import BenchmarkResult, BenchOptions
    from .datasets import Dataset
    from .export import ModelSource
    from .inspect.support import OpSupport
    from .models import ModelSpec
    from .profiles import DeviceProfile
    from .recipes import QuantRecipe
    from .training import TrainConfig, TrainResult


# ------------------------------------------------------------------------------------------ train


def train_run(spec: ModelSpec, dataset: Dataset, config: TrainConfig, out: str | Path, *, force: bool = False,
              progress: ProgressFn | None = None, resume: Any = None) -> Run:
    """Train `spec` on `dataset` and write the run directory `out` (refused before training if it exists).

    With `force` an existing run is replaced as `runs.plan_replace(out)` says (its benchmarks and
    unknown files are kept); a folder that is not a run is refused either way, before training.
    A KeyboardInterrupt after the first epoch still writes the run, with the best weights so far and
    `manifest["training"]["interrupted"]` set. `resume` (a `training.Resume`, from `training.load_resume`)
    goes on training that interrupted run and replaces it with the result.
    """
    from .training import train

    config.validate()
    spec.validate()
    out = Path(resume.path if resume is not None else out)
    force = force or resume is not None
    runs.plan_replace(out)  # a folder that is not a run: refused now, not after training
    runs.refuse_existing(out, force, "run")
    result = train(spec, dataset, config, progress=progress, resume=resume)
    return save_run(result, out, force=force)


def save_run(result: TrainResult, out: str | Path, *, force: bool = False) -> Run:
    """Write a TrainResult as a complete run directory: model, manifest, history, plots, test and calibration data."""
    from ._tf import quiet_stderr
    from .report.plots import confusion_matrix_png, training_curve_png
    from .training import calibration_indices, run_manifest

    out = Path(out)
    ds, sp = result.dataset, result.split
    calib = calibration_indices(result)
    files = {
        "model": runs.MODEL_FILE, "history": runs.HISTORY, "test_data": runs.TEST_DATA,
        "calibration_data": runs.CALIB_DATA, "training_curve": runs.TRAINING_CURVE, "confusion_matrix": runs.CONFUSION_MATRIX,
    }

    def save_model(path: Path) -> None:
        with quiet_stderr():
            result.model.save(path)

    return runs.write_run(
        out,
        manifest=run_manifest(result, out.name, len(calib), files),
        save_model=save_model,
        arrays={runs.TEST_DATA: {"x": ds.x[sp.test], "y": ds.y[sp.test]}, runs.CALIB_DATA: {"x": ds.x[calib], "y": ds.y[calib]}},
        files={
            runs.TRAINING_CURVE: training_curve_png(result.history, f"{result.spec.name} on {ds.name}"),
            runs.CONFUSION_MATRIX: confusion_matrix_png(result.metrics["test"]["confusion_matrix"], ds.labels),
        },
        records={runs.HISTORY: result.history},
        force=force,
    )


# ------------------------------------------------------------------------------------------ quantize


def quantize(run: Run, recipe: QuantRecipe, *, epochs: int | None = None, force: bool = False,
             progress: ProgressFn | None = None) -> dict[str, Any]:
    """Quantization-aware fine-tune for a QAT recipe, stored in RUN/qat/<recipe>/ (what `export` then converts)."""
    from . import qat
    from .errors import RecipeError

    if not recipe.qat:
        raise RecipeError(f"recipe {recipe.name} is post-training: there is no fine-tune step",
                          "post-training recipes need no fine-tune: export with it directly")
    runs.refuse_existing(run.qat_dir(recipe.name), force, "QAT model")
    qat.check_quantizable(run, recipe)  # a layer TFMOT cannot quantize fails now, not after training
    return qat.train_qat(run, recipe, epochs=epochs, force=force, progress=progress)


# ------------------------------------------------------------------------------------------ export + verify


@dataclass
class ExportOutcome:
    """One export (or the error that stopped it), its verification, and whether the profile's runtime can
    load it (`support`: per op, from `edgepool.inspect`, for TFLite / Edge TPU profiles)."""

    target: str  # recipe or profile name
    export: Export | None = None
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)
    error: EdgepoolError | None = None
    support: list[OpSupport] | None = None  # op-version support on the profile's runtime; None = not checked
    runtime: str | None = None  # the runtime `support` was checked against, "tflite-runtime 2.14"

    @property
    def unsupported_ops(self) -> list[OpSupport]:
        """Ops the profile's runtime cannot load (an op version newer than its release, a custom op)."""
        return [s for s in self.support or [] if s.supported is False]

    @property
    def status(self) -> Status:
        if self.error is not None or self.export is None:
            return Status.ERROR
        if self.unsupported_ops:
            return Status.FAIL
        if self.verification is None:
            return Status.UNVERIFIED
        st = self.verification.status
        tpu = self.export.sidecar.get("edgetpu")
        if st == Status.PASS and tpu is not None and not tpu.get("compiled"):
            return Status.NOT_COMPILED
        return st

    @property
    def passed(self) -> bool:
        return self.status.ok

    @property
    def support_reason(self) -> str | None:
        """Why the profile's runtime cannot load the export, naming each op, its version and the releases."""
        bad = self.unsupported_ops
        if not bad:
            return None
        return f"{self.target} runs {self.runtime}, which cannot load this model: " + "; ".join(
            f"op {s.index} {s.reason}" for s in bad)

    @property
    def support_hint(self) -> str | None:
        bad = self.unsupported_ops
        if not bad:
            return None
        from .inspect.support import parse_version

        needs = [s.min_runtime for s in bad if s.min_runtime]
        newer = f", or a runtime >= {max(needs, key=parse_version)} on the device" if needs else ""
        return f"use a recipe {self.runtime} can load (e.g. int8 or float32){newer}"

    @property
    def reason(self) -> str | None:
        if self.error is not None:
            return self.error.message
        if self.status == Status.NOT_COMPILED:
            return "verified on the CPU; edgetpu_compiler is not installed here"
        if self.verification is not None and self.verification.reason:
            return self.verification.reason  # holds support_reason once `check_runtime` folded it in
        return self.support_reason

    @property
    def hint(self) -> str | None:
        if self.error is not None:
            return self.error.hint
        if self.verification is not None and self.verification.hint:
            return self.verification.hint
        return self.support_hint

    def check_runtime(self, profile: DeviceProfile) -> None:
        """Read the saved .tflite (`edgepool.inspect`) and record which of its ops `profile`'s runtime can
        load: an op version newer than the runtime's release fails the export. Core ML profiles: nothing."""
        from .inspect import read_tflite
        from .inspect.support import TF_NUMBERED_PACKAGES, check_profile_support, parse_version
        from .types import Format, Runtime

        if self.export is None or profile.runtime not in (Runtime.TFLITE, Runtime.EDGETPU):
            return
        if not Format(self.export.format).is_tflite:
            return
        # an Edge TPU export: the CPU model's ops (the compiled file holds them as one custom op)
        self.support = check_profile_support(read_tflite(self.export.verify_file), profile)
        self.runtime = f"{profile.runtime_package} {profile.runtime_version}"
        unknown = [s for s in self.support if s.supported is None]
        if not unknown:
            return
        if profile.runtime_package in TF_NUMBERED_PACKAGES:
            ops = ", ".join(f"{s.op} v{s.version}" for s in unknown)
            self.notes.append(f"whether {self.runtime} loads {ops} is unknown: not in the op-version table")
            return
        from importlib import metadata

        try:  # verification ran the model in this very runtime when it is the host's
            host = metadata.version(profile.runtime_package)
        except metadata.PackageNotFoundError:
            host = None
        if host is None or parse_version(host)[:2] != parse_version(profile.runtime_version)[:2]:
            self.notes.append(f"{self.runtime} numbers its releases apart from TensorFlow: which op versions it "
                              "loads is not known here")

    def fold_support_into_verification(self) -> None:
        """Put the op-version check in the verification record (verify.json says what the table says)."""
        v = self.verification
        if v is None or self.support is None:
            return
        details = {**v.details, "runtime_support": {
            "runtime": self.runtime, "status": Status.FAIL.value if self.unsupported_ops else Status.PASS.value,
            "unsupported": [s.to_dict() for s in self.unsupported_ops],
            "unknown": [s.to_dict() for s in self.support if s.supported is None]}}
        reason = self.support_reason
        if reason is None:
            self.verification = Verification(v.status, v.reason, v.hint, details)
        elif v.status is Status.FAIL:
            self.verification = Verification(Status.FAIL, f"{reason}; {v.reason}", self.support_hint, details)
        else:
            self.verification = Verification(Status.FAIL, reason, self.support_hint, details)


def model_source(run: Run, recipe: QuantRecipe, progress: ProgressFn | None = None) -> ModelSource:
    """The run's model as an exporter wants it: the QAT copy for QAT recipes, calibration data, sidecar facts."""
    from .export import ModelSource
    from .models import load_run_model

    facts: dict[str, Any] = {}
    if recipe.qat:
        from . import qat

        model, facts["qat"] = qat.load_or_train_qat(run, recipe, progress=progress)
    else:
        model = load_run_model(run)
    calib = run.normalize(run.calib_data()[0]) if recipe.full_integer else None
    meta = {
        "source_run": str(run.path.absolute()),  # stored relative to the export folder by runs.save_export
        "source_model_sha256": run.model_sha256(),
        "source_data_fingerprint": run.data_fingerprint,
        "model_spec": run.manifest["model"]["spec"],
        "keras_test_accuracy": run.manifest["metrics"]["test_accuracy"],
    }
    imported = run.manifest.get("source")
    if isinstance(imported, dict) and imported.get("kind"):  # a run made by `edgepool import` (edgepool.importers)
        meta["source_model"] = {k: imported.get(k) for k in ("kind", "name", "sha256", "layout", "reference", "converted_with")}
        facts["output_kind"] = imported.get("output_kind", "logits")
    return ModelSource(model, run.labels, run.input_spec, calib, meta, facts)


def export(run: Run, recipe: QuantRecipe, *, profile: DeviceProfile | None = None, out: Path | None = None,
           force: bool = False, verify: bool = True, image_input: bool = False,
           progress: ProgressFn | None = None) -> ExportOutcome:
    """Export `run`'s model with `recipe` (for `profile`) into RUN/exports/<profile or recipe> (or `out`),
    then verify it on the test split. An existing export is refused before any work unless `force`.

    With a TFLite / Edge TPU `profile`, the saved model's op versions are checked against the profile's
    runtime release (`ExportOutcome.check_runtime`): an op the runtime cannot load fails the export,
    verified or not. Verification also runs the export in that runtime where one is named
    (`edgepool.verify`, `EDGEPOOL_TFLITE_RUNTIMES`)."""
    from .export import export_model
    from .verify import verify as verify_export

    target = Path(out) if out else run.export_dir(profile.name if profile is not None else recipe.name)
    runs.refuse_existing(target, force, "export")
    steps = 3 if verify else 2
    if progress:
        progress(ProgressEvent("export", 0, steps, "loading the model"))
    source = model_source(run, recipe, progress)
    if progress:
        progress(ProgressEvent("export", 1, steps, f"converting with {recipe.name}"))
    artifact = export_model(source, recipe, profile, image_input=image_input)
    saved = runs.save_export(artifact, target, labels=run.labels, force=force)
    outcome = ExportOutcome(profile.name if profile is not None else recipe.name, saved, notes=list(artifact.notes))
    if profile is not None:
        outcome.check_runtime(profile)  # an op newer than the profile's runtime fails the export, verified or not
    if verify:
        if progress:
            progress(ProgressEvent("export", 2, steps, "verifying on the test split"))
        outcome.verification = verify_export(saved, run, recipe, profile)
        outcome.fold_support_into_verification()
        runs.save_verification(saved, outcome.verification.to_dict())
    if progress:
        progress(ProgressEvent("export", steps, steps, "done"))
    return outcome


@dataclass
class ConvertResult:
    """The exports `convert` made for each profile."""

    run: Run
    outcomes: list[ExportOutcome]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> list[ExportOutcome]:
        return [o for o in self.outcomes if not o.passed]


def convert(run: Run, profiles: list[DeviceProfile], *, force: bool = False, image_input: bool = False,
            progress: ProgressFn | None = None) -> ConvertResult:
    """Export + verify for each profile with the profile's recipe; one profile's failure does not stop the others."""
    from .recipes import load_recipe

    outcomes = []
    for i, p in enumerate(profiles):
        if progress:
            progress(ProgressEvent("convert", i, len(profiles), f"{p.name}: {p.runtime} with recipe {p.recipe}"))
        try:
            outcomes.append(export(run, load_recipe(p.recipe), profile=p, force=force, image_input=image_input))
        except EdgepoolError as e:
            outcomes.append(ExportOutcome(p.name, error=e))
    if progress:
        progress(ProgressEvent("convert", len(profiles), len(profiles), "done"))
    return ConvertResult(run, outcomes)


def _open_verified_export(path: Path, progress: ProgressFn | None) -> tuple[Callable[[int, str], None], Export, Run, Any]:
    """The first step of re-verifying: (a "verify" progress step reporter, the export, its run — checked to hold
    the same model and data — and the export's recipe)."""
    from .recipes import load_recipe
    from .verify import source_of

    def step(done: int, message: str) -> None:
        if progress:
            progress(ProgressEvent("verify", done, 3, message))

    step(0, "reading the export and checking its run")
    export = runs.load_export(path)
    run = source_of(export)
    return step, export, run, load_recipe(export.sidecar["recipe"])


def verify(path: Path, *, progress: ProgressFn | None = None) -> tuple[Export, Verification]:
    """Re-verify an export folder against the run it came from (checked to be the same model and data).

    Reports stage "verify": reading the export and its run, the Keras reference outputs (loading the
    model), running the export on the test split.
    """
    from .verify import keras_logits
    from .verify import verify as verify_export

    step, export, run, recipe = _open_verified_export(path, progress)
    step(1, "loading the Keras model for reference outputs")
    x_raw, _ = run.test_data()
    keras_logits(run, run.normalize(x_raw))  # kept by verify, which reuses it below
    step(2, f"running the export on the test split ({len(x_raw)} samples)")
    v = verify_export(export, run, recipe)
    step(3, "done")
    return export, v


def per_layer(path: Path, *, samples: int | None = None, progress: ProgressFn | None = None) -> Any:
    """Where a full-integer TFLite export loses accuracy: TensorFlow's QuantizationDebugger over the run's
    test split (`verify.per_layer.PerLayerReport`, worst layer first, with the layers to keep in float)."""
    from .errors import InputError
    from .export.tflite import converter, float_layer_names, layer_nodes
    from .models import load_run_model
    from .verify.per_layer import layer_errors

    step, export, run, recipe = _open_verified_export(path, progress)
    if not recipe.full_integer:
        raise InputError(f"export {export.path} (recipe {recipe.name}) is not a full-integer TFLite model: "
                         "per-layer quantization errors need int8 activations",
                         "export the run with a full-integer recipe (int8, int8-qat, int8-float-pool) and look at that")
    step(1, "building the quantized model with TensorFlow's QuantizationDebugger")
    model = runs_model = load_run_model(run)
    if recipe.qat:
        from . import qat

        model = qat.load_or_train_qat(run, recipe)[0]
    x_raw, _ = run.test_data()
    x = run.normalize(x_raw if samples is None else x_raw[:samples])
    conv = converter(model, recipe, run.normalize(run.calib_data()[0]))
    layers = float_layer_names(runs_model, recipe.float_layers) if recipe.selective else []
    nodes = None
    if layers:
        from ._tf import quiet_stderr, tf

        with quiet_stderr():
            nodes = layer_nodes(bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert()), model.name, layers)
    step(2, f"running the float and quantized models on the test split ({len(x)} samples)")
    report = layer_errors(conv, model, x, denylisted_nodes=nodes, denylisted_ops=list(recipe.float_ops) or None)
    report.export, report.recipe = str(export.path), recipe.name
    if recipe.qat:
        report.notes.append("QAT export: the float reference is the QAT model run in float (its learned ranges, "
                            "no rounding)")
    step(3, "done")
    return report


# ------------------------------------------------------------------------------------------ benchmark


def benchmark(paths: list[Path], options: BenchOptions, *, save: bool = True, out: Path | None = None,
              keep_going: bool = False, progress: ProgressFn | None = None) -> tuple[list[BenchmarkResult], list[Path]]:
    """Benchmark exports / runs / model files; save the results (RUN/benchmarks/<stamp>.json, or `out`)."""
    from .bench.runner import benchmark as run_benchmark
    from .bench.runner import save_results

    results = run_benchmark(list(paths), options, progress=progress, keep_going=keep_going)
    saved = save_results(results, options, out) if (save or out) else []
    return results, saved
