"""Device profiles: every shipped profile validates; the schema rejects what it must, naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgepool import config, profiles
from edgepool.errors import ProfileError
from edgepool.recipes import QuantRecipe, load_recipe
from edgepool.types import Compression, DeploymentTarget, RecipeFormat, Runtime, Transport

SHIPPED = sorted(p.stem for p in profiles.builtin_dir().glob("*.toml"))
REQUIRED = ["raspberry-pi-4", "raspberry-pi-5", "coral-usb", "coral-dev-board", "iphone-12", "iphone-15-pro", "pixel-8", "host-cpu"]

VALID = """\
schema_version = 1
display_name = "Test board"
description = "A board for tests."
runtime = "tflite"
runtime_package = "tflite-runtime"
runtime_version = "2.14"
recipe = "int8"
threads = 4
delegates = ["xnnpack"]
transport = "ssh"
ram_budget_mb = 256
latency_target_ms = 50
idle_power_w = 2.0
active_power_w = 5.0
peak_gmacs_int8 = 96
peak_gmacs_fp32 = 48

[sources]
ram_budget_mb = "estimate: a budget"
latency_target_ms = "estimate: a target"
idle_power_w = "benchmark: somewhere"
active_power_w = "benchmark: somewhere"
peak_gmacs_int8 = "estimate: 4 x 1.5 x 16"
peak_gmacs_fp32 = "estimate: 4 x 1.5 x 8"
"""


def write(tmp_path: Path, text: str, name: str = "test-board") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def expect_error(path: Path, key: str) -> ProfileError:
    with pytest.raises(ProfileError) as ei:
        profiles.load_profile(path)
    msg = ei.value.message
    assert str(path) in msg and f": {key}:" in msg, msg
    assert ei.value.hint
    return ei.value


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGEPOOL_PROFILE_PATH", raising=False)


def test_required_devices_are_shipped() -> None:
    assert set(REQUIRED) <= set(SHIPPED)
    assert profiles.DEFAULT_PROFILE in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_validates(name: str) -> None:
    path = profiles.builtin_dir() / f"{name}.toml"
    p = profiles.validate_file(path)  # a recipe it names that is missing or unfit fails here, never skips
    assert p.name == name and p.builtin
    for key in profiles.NUMBER_KEYS:
        if getattr(p, key) is not None:
            kind = p.sources[key].split(":", 1)[0]
            assert kind in config.SOURCE_KINDS
            if kind == "estimate":
                assert len(p.sources[key]) > len("estimate: ") + 10  # says how
    assert p.to_dict()["runtime"] == p.runtime.value
    assert isinstance(p.runtime, Runtime) and isinstance(p.transport, Transport)
    assert p.to_dict()["transport"] == p.transport.value and type(p.to_dict()["transport"]) is str
    if p.runtime is Runtime.COREML:
        assert isinstance(p.deployment_target, DeploymentTarget)
        assert p.minimum_deployment_target == p.deployment_target.name == p.to_dict()["minimum_deployment_target"]
        assert load_recipe(p.recipe).coreml_target_problem(p.deployment_target) is None
    else:
        assert p.deployment_target is None and p.minimum_deployment_target is None


def test_shipped_runtimes_and_recipes_match_the_issue() -> None:
    import tomllib

    raw = {n: tomllib.loads((profiles.builtin_dir() / f"{n}.toml").read_text()) for n in REQUIRED}
    assert {n for n, r in raw.items() if r["runtime"] == "edgetpu"} == {"coral-usb", "coral-dev-board"}
    assert {n for n, r in raw.items() if r["runtime"] == "coreml"} == {"iphone-12", "iphone-15-pro"}
    assert raw["iphone-12"]["minimum_deployment_target"] == "iOS16"
    assert raw["iphone-15-pro"]["minimum_deployment_target"] == "iOS17"
    assert raw["coral-usb"]["recipe"] == raw["coral-dev-board"]["recipe"] == "edgetpu-int8"
    assert "battery_wh" in raw["pixel-8"] and "battery_wh" not in raw["raspberry-pi-5"]
    assert raw["pixel-8"]["transport"] == "adb" and raw["host-cpu"]["transport"] == "local"


def test_valid_user_file_loads(tmp_path: Path) -> None:
    p = profiles.load_profile(write(tmp_path, VALID))
    assert p.runtime is Runtime.TFLITE and p.transport is Transport.SSH and p.delegates == ("xnnpack",)
    assert p.ram_budget_mb == 256 and isinstance(p.latency_target_ms, float)
    assert p.battery_wh is None and p.compute_units is None and not p.builtin
    assert isinstance(p.idle_power_w, float) and isinstance(p.peak_gmacs_int8, float)
    assert p.runtime_version_tuple == (2, 14) > (2, 5)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("threads = 4", "threads = 4\ncolour = \"red\"", "colour"),
        ("ram_budget_mb = 256", "ram_budget_gb = 0.25", "ram_budget_gb"),
        ("ram_budget_mb = 256", 'ram_budget_mb = "256 MB"', "ram_budget_mb"),
        ("ram_budget_mb = 256", "ram_budget_mb = 256.5", "ram_budget_mb"),
        ("threads = 4", "threads = true", "threads"),
        ("threads = 4", "threads = 0", "threads"),
        ("schema_version = 1", "schema_version = 2", "schema_version"),
        ('runtime = "tflite"', 'runtime = "onnx"', "runtime"),
        ('runtime_package = "tflite-runtime"', 'runtime_package = "coremltools"', "runtime_package"),
        ('runtime_version = "2.14"', 'runtime_version = "latest"', "runtime_version"),
        ('transport = "ssh"', 'transport = "bluetooth"', "transport"),
        ('transport = "ssh"', 'transport = "ios"', "transport"),
        ('delegates = ["xnnpack"]', 'delegates = ["edgetpu"]', "delegates"),
        ('delegates = ["xnnpack"]', 'delegates = ["xnnpack"]\ncompute_units = "ALL"', "compute_units"),
        ("idle_power_w = 2.0", "idle_power_w = -1", "idle_power_w"),
        ("active_power_w = 5.0", "active_power_w = 1.0", "active_power_w"),
        ("peak_gmacs_fp32 = 48", "peak_gmacs_fp32 = 0", "peak_gmacs_fp32"),
        ('peak_gmacs_fp32 = "estimate: 4 x 1.5 x 8"\n', "", "sources.peak_gmacs_fp32"),
        ('idle_power_w = "benchmark: somewhere"', 'idle_power_w = "somewhere"', "sources.idle_power_w"),
        ('idle_power_w = "benchmark: somewhere"', 'idle_power_w = "estimate:"', "sources.idle_power_w"),
        ('idle_power_w = "benchmark: somewhere"', 'idle_power_w = "benchmark: x"\nbattery_wh = "estimate: x"', "sources.battery_wh"),
        ('idle_power_w = "benchmark: somewhere"', 'idle_power_w = "benchmark: x"\nthreads = "estimate: x"', "sources.threads"),
        ('recipe = "int8"', 'recipe = "no-such-recipe"', "recipe"),
        ('display_name = "Test board"\n', "", "display_name"),
    ],
)
def test_schema_errors_name_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in VALID
    expect_error(write(tmp_path, VALID.replace(old, new, 1)), key)


def test_unknown_key_hint_suggests_the_unit_key(tmp_path: Path) -> None:
    e = expect_error(write(tmp_path, VALID.replace("ram_budget_mb = 256", "ram_budget_gb = 1")), "ram_budget_gb")
    assert "ram_budget_mb" in (e.hint or "")


def test_battery_needs_a_source(tmp_path: Path) -> None:
    expect_error(write(tmp_path, VALID.replace("threads = 4", "threads = 4\nbattery_wh = 10")), "sources.battery_wh")


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "schema_version = = 1")
    with pytest.raises(ProfileError, match="not valid TOML"):
        profiles.load_profile(bad)
    with pytest.raises(ProfileError, match="no such file"):
        profiles.resolve(tmp_path / "nope.toml")


def test_bad_file_name(tmp_path: Path) -> None:
    expect_error(write(tmp_path, VALID, name="My_Board"), "file name")


# ---- recipe / runtime capability


def _recipe(name: str, fmt: RecipeFormat, **kw: object) -> QuantRecipe:
    return QuantRecipe(name=name, description="test", format=fmt, path=Path(f"{name}.toml"), **kw)  # type: ignore[arg-type]


def test_runtime_recipe_capability() -> None:
    i8 = _recipe("int8", RecipeFormat.TFLITE, weights="int8", activations="int8")
    fp = _recipe("float32", RecipeFormat.TFLITE)
    dyn = _recipe("dynamic-int8", RecipeFormat.TFLITE, weights="int8")
    cm = _recipe("coreml-fp16", RecipeFormat.COREML)
    pal = _recipe("coreml-palettize", RecipeFormat.COREML, weight_compression=Compression.PALETTIZE)
    assert profiles.recipe_problem(Runtime.TFLITE, i8) is None
    assert profiles.recipe_problem(Runtime.TFLITE, fp) is None
    assert profiles.recipe_problem(Runtime.EDGETPU, i8) is None
    assert "int8" in profiles.recipe_problem(Runtime.EDGETPU, fp)
    assert "int8" in profiles.recipe_problem(Runtime.EDGETPU, dyn)
    assert profiles.recipe_problem(Runtime.EDGETPU, cm)
    assert profiles.recipe_problem(Runtime.COREML, i8)
    assert profiles.recipe_problem(Runtime.TFLITE, cm)
    assert profiles.recipe_problem(Runtime.COREML, cm, DeploymentTarget.iOS15) is None
    assert "iOS16" in profiles.recipe_problem(Runtime.COREML, pal, DeploymentTarget.iOS15)
    assert profiles.recipe_problem(Runtime.COREML, pal, DeploymentTarget.iOS16) is None
    pal3 = _recipe("pal3", RecipeFormat.COREML, weight_compression=Compression.PALETTIZE, palettize_nbits=3)
    assert "iOS18" in profiles.recipe_problem(Runtime.COREML, pal3, DeploymentTarget.iOS17)


def test_real_recipes_against_runtimes() -> None:
    assert profiles.recipe_problem(Runtime.EDGETPU, load_recipe("float32"))
    assert profiles.recipe_problem(Runtime.EDGETPU, load_recipe("dynamic-int8"))
    assert profiles.recipe_problem(Runtime.EDGETPU, load_recipe("edgetpu-int8")) is None
    assert profiles.recipe_problem(Runtime.COREML, load_recipe("int8"))
    assert profiles.recipe_problem(Runtime.COREML, load_recipe("coreml-int8"), DeploymentTarget.iOS15)


def test_float_recipe_on_edgetpu_profile_is_an_error(tmp_path: Path) -> None:
    text = (VALID.replace('runtime = "tflite"', 'runtime = "edgetpu"')
            .replace('delegates = ["xnnpack"]', 'delegates = ["edgetpu"]')
            .replace('recipe = "int8"', 'recipe = "float32"'))
    e = expect_error(write(tmp_path, text), "recipe")
    assert "Edge TPU" in e.message


def test_coreml_profile_checks(tmp_path: Path) -> None:
    coreml = (VALID.replace('runtime = "tflite"', 'runtime = "coreml"')
              .replace('runtime_package = "tflite-runtime"', 'runtime_package = "ios"')
              .replace('runtime_version = "2.14"', 'runtime_version = "17"')
              .replace('delegates = ["xnnpack"]', 'compute_units = "CPU_AND_NE"\nminimum_deployment_target = "iOS15"')
              .replace('transport = "ssh"', 'transport = "ios"'))
    # CPU_AND_NE needs iOS16: checked against the ordered deployment target
    expect_error(write(tmp_path, coreml), "compute_units")
    e = expect_error(write(tmp_path, coreml.replace('"iOS15"', '"iOS16"')), "recipe")  # int8 is a tflite recipe
    assert "Core ML" in e.message
    expect_error(write(tmp_path, coreml.replace('"iOS15"', '"iOS9"')), "minimum_deployment_target")
    expect_error(write(tmp_path, coreml.replace('"iOS15"', '"iOS18"')), "minimum_deployment_target")
    # compressed Core ML weights need iOS16: the rule lives on the recipe, the profile applies it
    text = coreml.replace('compute_units = "CPU_AND_NE"', 'compute_units = "ALL"').replace('"int8"', '"coreml-int8"')
    e = expect_error(write(tmp_path, text), "recipe")
    assert "iOS16" in e.message
    p = profiles.load_profile(write(tmp_path, text.replace('"iOS15"', '"iOS16"')))
    assert p.deployment_target is DeploymentTarget.iOS16 and p.minimum_deployment_target == "iOS16"
    assert p.compute_units == "ALL" and p.delegates == () and p.transport is Transport.IOS
    expect_error(write(tmp_path, text.replace('minimum_deployment_target = "iOS15"\n', "")), "minimum_deployment_target")
    with_delegates = text.replace('"iOS15"', '"iOS16"').replace('compute_units = "ALL"', 'compute_units = "ALL"\ndelegates = ["xnnpack"]')
    e = expect_error(write(tmp_path, with_delegates), "delegates")
    assert 'does not apply to runtime "coreml"' in e.message


def test_deployment_targets_are_ordered() -> None:
    assert DeploymentTarget.parse("iOS15") < DeploymentTarget.iOS16 < DeploymentTarget.parse("iOS17")
    with pytest.raises(ValueError):
        DeploymentTarget.parse("ios17")
    assert profiles.version_tuple("2.14") > profiles.version_tuple("2.5")


# ---- resolution, user dirs, shadowing


def test_resolve_by_name_and_path() -> None:
    p = profiles.resolve("raspberry-pi-5")
    assert p.builtin and p.shadows is None
    assert profiles.resolve(p.path) == p  # a path into the built-in folder is the built-in profile
    with pytest.raises(ProfileError) as ei:
        profiles.resolve("raspbery-pi-5")
    assert "raspberry-pi-5" in (ei.value.hint or "")


def test_user_profile_shadows_builtin_with_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    write(user, VALID, name="raspberry-pi-5")
    write(user, VALID, name="my-board")
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", f"{tmp_path / 'absent'}:{user}")
    shadows = profiles.shadowed()
    assert [(s.name, s.path) for s in shadows] == [("raspberry-pi-5", user / "raspberry-pi-5.toml")]
    assert shadows[0].builtin_path == profiles.builtin_dir() / "raspberry-pi-5.toml"
    assert "my-board" in profiles.names()
    p = profiles.resolve("raspberry-pi-5")
    assert p.display_name == "Test board" and not p.builtin and p.shadows == shadows[0].builtin_path
    assert profiles.shadow_notice(p) == (
        f"notice: profile raspberry-pi-5 from {user / 'raspberry-pi-5.toml'} shadows the built-in one"
    )
    assert profiles.shadow_notice(profiles.resolve("host-cpu")) is None
    assert profiles.shadow_notice(profiles.resolve("my-board")) is None  # user-only: nothing hidden


def test_env_path_wins_over_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "xdg" / "edgepool" / "device_profiles"
    cfg.mkdir(parents=True)
    env = tmp_path / "env"
    env.mkdir()
    write(cfg, VALID.replace("Test board", "From config"), name="board-x")
    assert profiles.user_dirs()[-1] == cfg
    assert profiles.resolve("board-x").display_name == "From config"
    write(env, VALID.replace("Test board", "From env"), name="board-x")
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(env))
    assert profiles.resolve("board-x").display_name == "From env"
    assert profiles.shadowed() == []  # user-over-user is not a built-in shadowing


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, edgepool.profiles; sys.exit('tensorflow' in sys.modules or 'coremltools' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_broken_user_profile_does_not_hide_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    write(user, VALID, name="good-board")
    bad = write(user, VALID.replace("ram_budget_mb = 256", "ram_budget_gb = 1"), name="bad-board")
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(user))
    broken: list[profiles.BrokenProfile] = []
    listed = [p.name for p in profiles.list_profiles(errors=broken)]
    assert "good-board" in listed and "bad-board" not in listed
    assert set(SHIPPED) <= set(listed)
    assert [(b.name, b.path) for b in broken] == [("bad-board", bad)]
    assert "ram_budget_gb" in broken[0].error.message and str(bad) in broken[0].error.message
    assert [p.name for p in profiles.list_profiles()] == listed  # without a list: the good ones all the same
    with pytest.raises(ProfileError):
        profiles.resolve("bad-board")  # asking for it by name still fails loudly
