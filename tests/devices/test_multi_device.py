"""Several devices in one `edgepool benchmark`: this machine (`local`), the loopback sshd (an ssh device running
the agent with this venv's Python) and the stand-in adb of test_adb_transport.py (benchmark_model on a "phone"),
measured concurrently into one table and one result file; one device named twice refused; registered names (with
their profile) and did-you-mean; Ctrl-C interrupting every device and keeping the finished windows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepool import devices
from edgepool.bench.protocol import BenchOptions
from edgepool.bench.runner import benchmark, cannot_run, plan_devices, save_results
from edgepool.bench.transports.ssh import SSH_CONFIG_ENV
from edgepool.errors import DeviceError, InputError
from edgepool.types import Format, Transport
from tests._bench_models import cached_digits_run
from tests.devices.test_adb_transport import SERIAL, Adb, elf

FAST = dict(warmup_runs=1, warmup_min_seconds=0.05, runs=10, min_seconds=0.05, windows=2)
FAST_FLAGS = ["--runs", "10", "--min-seconds", "0.05", "--windows", "2", "--warmup-seconds", "0.05"]


@pytest.fixture(scope="module")
def digits():
    return cached_digits_run()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def run_copy(digits, tmp_path: Path) -> Path:
    """The digits run (float32 and int8 exports, test samples) without its earlier benchmark files."""
    run = tmp_path / "run"
    shutil.copytree(digits.path, run, ignore=shutil.ignore_patterns("benchmarks"))
    return run


@pytest.fixture
def ssh_device(loopback_sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The loopback sshd as a device URI with its own temp folder, which must be empty afterwards."""
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    d = tmp_path / "device tmp"
    d.mkdir()
    yield loopback_sshd.uri(tmpdir=str(d))
    assert list(d.iterdir()) == [], "the private folder was left on the device"


@pytest.fixture
def app():
    from edgepool.cli import main

    return main.app


def invoke(app, *args):
    return CliRunner().invoke(app, ["benchmark", *map(str, args)])


def _stamps(events):
    """(device, model) -> (first host_t, last host_t) of its events."""
    out: dict[tuple[str, str], list[float]] = {}
    for ev in events:
        d = ev.data
        if "host_t" in d:
            span = out.setdefault((d["device"], d["model"]), [d["host_t"], d["host_t"]])
            span[0], span[1] = min(span[0], d["host_t"]), max(span[1], d["host_t"])
    return out


# ------------------------------------------------------------------------------------------- CLI
def test_local_and_ssh_into_one_table_and_one_result_file(app, run_copy, ssh_device):
    devices.add_device("loop", ssh_device)
    res = invoke(app, run_copy / "exports" / "int8", "--device", "local", "--device", "loop", *FAST_FLAGS)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "benchmark on 2 devices: local, loop" in out
    for col in ("device", "transport", "runtime"):
        assert col in out
    rows = [line for line in out.splitlines() if " int8 " in line]
    assert len(rows) == 2 and any(" local " in r for r in rows) and any(" loop " in r and " ssh " in r for r in rows)
    assert all("ai_edge_litert" in r for r in rows)
    [saved] = list((run_copy / "benchmarks").glob("*.json"))
    doc = json.loads(saved.read_text())
    got = {(r["device"], r["transport"]) for r in doc["results"]}
    assert got == {("local", "local"), ("loop", "ssh")}
    assert all(r["runtime"] == "ai_edge_litert" and len(r["windows"]) == 2 for r in doc["results"])
    assert doc["options"]["devices"] == ["local", "loop"]


def test_the_same_device_twice_is_refused(app, digits):
    res = invoke(app, digits.int8_export, "--device", "local", "--device", "LOCAL")
    assert res.exit_code == 2 and "named twice" in res.output
    with pytest.raises(InputError, match="named twice"):  # the same host and port, whatever the Python
        plan_devices(BenchOptions(devices=["ssh://pi@pi5:22", "ssh://root@PI5?python=/usr/bin/python3"]))
    devices.add_device("pixel", "adb://X")
    with pytest.raises(InputError, match=r"as pixel and adb://X"):
        plan_devices(BenchOptions(devices=["pixel", "adb://X"]))


def test_unknown_device_name_says_did_you_mean(app, digits):
    devices.add_device("pi5", "ssh://pi@pi5.local", "raspberry-pi-5")
    res = invoke(app, digits.int8_export, "--device", "local", "--device", "pi6")
    assert res.exit_code == 2 and "no device named 'pi6'" in res.output and "did you mean 'pi5'" in res.output
    res = invoke(app, digits.int8_export, "--device", "gopher://x")
    assert res.exit_code == 2 and "unknown device scheme" in res.output


def test_bad_device_before_any_work(app, run_copy):
    """A bad second device: nothing measured, nothing saved."""
    res = invoke(app, run_copy, "--device", "local", "--device", "ssh://", *FAST_FLAGS)
    assert res.exit_code == 2 and "has no host" in res.output
    assert not (run_copy / "benchmarks").exists()


# ------------------------------------------------------------------------------------ profiles
def test_registered_device_profile_is_used(digits, ssh_device):
    devices.add_device("pi", ssh_device, "raspberry-pi-5")
    [r] = benchmark([digits.int8_export], BenchOptions(**FAST, devices=["pi"]))
    assert (r.device, r.transport, r.profile, r.threads, r.delegates) == ("pi", "ssh", "raspberry-pi-5", 4, ["xnnpack"])
    assert r.complete and r.runtime == "ai_edge_litert"
    # --profile wins over the registered one; a profile for another kind of device is bad input
    [plan] = plan_devices(BenchOptions(devices=["pi"], profile="raspberry-pi-4"))
    assert plan.profile.name == "raspberry-pi-4"
    with pytest.raises(InputError, match="reached over adb"):
        plan_devices(BenchOptions(devices=["pi"], profile="pixel-8"))


def test_profiles_fit_devices_of_their_transport(tmp_path):
    [ssh] = plan_devices(BenchOptions(devices=["ssh://pi@pi5.local"], profile="raspberry-pi-5"))
    assert ssh.kind is Transport.SSH and ssh.threads == 4
    [ios] = plan_devices(BenchOptions(devices=["ios://"], profile="iphone-15-pro"))
    assert ios.transport.compute_units == "ALL"
    [phone] = plan_devices(BenchOptions(devices=["adb://X"], profile="pixel-8", benchmark_binary=str(elf(tmp_path / "bm"))))
    assert phone.transport.runtime_version == "2.14" and phone.delegates == ["xnnpack"]
    with pytest.raises(DeviceError) as e:  # no device named: say which kind of address is needed
        plan_devices(BenchOptions(profile="pixel-8"))
    assert "adb transport" in e.value.message and "adb://[serial]" in e.value.message and "--" not in str(e.value)
    with pytest.raises(InputError, match="delegate 'edgetpu' cannot be applied"):
        plan_devices(BenchOptions(devices=["adb://X"], delegates=["edgetpu"]))


def test_what_each_transport_cannot_run():
    assert cannot_run(Format.COREML, Transport.IOS) is None
    assert "Core ML" in cannot_run(Format.COREML, Transport.SSH)
    assert "Core ML" in cannot_run(Format.COREML, Transport.ADB)
    for kind in (Transport.LOCAL, Transport.SSH, Transport.ADB):
        assert cannot_run(Format.TFLITE, kind) is None
    assert cannot_run(Format.EDGETPU_TFLITE, Transport.LOCAL) is None
    assert cannot_run(Format.EDGETPU_TFLITE, Transport.SSH) is None
    assert "edgetpu delegate" in cannot_run(Format.EDGETPU_TFLITE, Transport.ADB)


# ----------------------------------------------------------------------------------------- adb
def test_adb_rows_merge_into_the_same_table_and_file(digits, tmp_path, monkeypatch, capsys):
    adb = Adb(tmp_path, monkeypatch)
    binary = elf(tmp_path / "android_aarch64_benchmark_model")
    events = []
    results = benchmark([digits.int8_export], BenchOptions(**FAST, devices=["local", f"adb://{SERIAL}"],
                                                           benchmark_binary=str(binary)), events.append)
    by = {r.device: r for r in results}
    assert set(by) == {"local", f"adb://{SERIAL}"}
    phone = by[f"adb://{SERIAL}"]
    assert phone.transport == "adb" and phone.runtime == "benchmark_model" and phone.input_mode == "random"
    assert phone.latency_ms["median"] == pytest.approx(0.284) and phone.fps_median == pytest.approx(1000 / 0.284)
    assert phone.runs == 17226 and phone.windows == [] and phone.complete
    assert phone.delegate_coverage is not None and phone.accuracy is None
    assert by["local"].transport == "local" and by["local"].accuracy is not None
    assert any(c[:2] == ["-s", SERIAL] for c in adb.calls())
    assert {e.data["device"] for e in events} == {"local", f"adb://{SERIAL}"}

    from edgepool.cli._bench_view import benchmark_table

    benchmark_table(results)
    out = capsys.readouterr().out
    assert "benchmark_model" in out and f"adb://{SERIAL}" in out and " adb " in out and " local " in out
    [saved] = save_results(results, BenchOptions(devices=["local", f"adb://{SERIAL}"]), tmp_path / "out.json")
    doc = json.loads(saved.read_text())
    assert {r["transport"] for r in doc["results"]} == {"local", "adb"}


def test_adb_row_without_a_median_uses_the_mean(capsys):
    from edgepool.bench.protocol import BenchmarkResult
    from edgepool.cli._bench_view import benchmark_table

    r = BenchmarkResult(name="m", model_path="m.tflite", format="tflite", recipe=None, device="adb://X", profile=None,
                        model_size_bytes=10, threads=4, delegates=[], input_mode="random")
    r.apply_result({"runtime": "benchmark_model", "transport": "adb", "latency_ms": {"mean": 2.0, "std": 0.1,
                    "median": None}, "runs": 100, "windows_requested": 0, "stopped": None, "input_mode": "random"})
    assert r.fps_mean == pytest.approx(500) and r.fps_median is None and r.headline_ms == 2.0 and r.complete
    benchmark_table([r])
    out = capsys.readouterr().out
    assert "2.000 ms (mean)" in out and "500 (mean)" in out


def test_an_edge_tpu_export_is_skipped_on_adb(digits, tmp_path, monkeypatch):
    Adb(tmp_path, monkeypatch)
    run = tmp_path / "run"
    shutil.copytree(digits.path, run, ignore=shutil.ignore_patterns("benchmarks"))
    side = json.loads((run / "exports" / "int8" / "model.json").read_text())
    side["format"] = "edgetpu-tflite"
    (run / "exports" / "int8" / "model.json").write_text(json.dumps(side))
    results = benchmark([run], BenchOptions(**FAST, devices=["adb://X"],
                                            benchmark_binary=str(elf(tmp_path / "bm"))), keep_going=True)
    by = {r.name: r for r in results}
    assert "edgetpu delegate" in by["int8"].skipped and by["float32"].skipped is None


# ---------------------------------------------------------------------------------- concurrency
def test_devices_run_concurrently_and_each_device_one_model_at_a_time(run_copy, ssh_device):
    events = []
    results = benchmark([run_copy], BenchOptions(**{**FAST, "min_seconds": 0.15}, devices=["local", ssh_device]),
                        events.append)
    assert len(results) == 4 and all(r.complete for r in results)
    spans = _stamps(events)
    label = devices.parse_device(ssh_device).label  # rows name a device by its canonical URI
    for device in ("local", label):
        mine = sorted(v for (d, _), v in spans.items() if d == device)
        assert len(mine) == 2
        assert mine[0][1] <= mine[1][0], f"{device} ran two models at once: {mine}"
    local = [v for (d, _), v in spans.items() if d == "local"]
    remote = [v for (d, _), v in spans.items() if d == label]
    overlap = max(min(a[1], b[1]) - max(a[0], b[0]) for a in local for b in remote)
    assert overlap > 0, f"the devices did not run at the same time: {spans}"


def test_ctrl_c_interrupts_every_device_and_keeps_finished_windows(run_copy, ssh_device):
    windows: dict[str, int] = {}

    def progress(ev):
        if ev.data.get("event") == "window":
            windows[ev.data["device"]] = windows.get(ev.data["device"], 0) + 1
            if len(windows) == 2:  # both devices are measuring: Ctrl-C
                raise KeyboardInterrupt

    results = benchmark([run_copy], BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1},
                                                 devices=["local", ssh_device]), progress, keep_going=True)
    by = {r.device: r for r in results}
    assert len(results) == 2 and set(by) == {"local", devices.parse_device(ssh_device).label}  # the second model of each never started
    for r in results:
        assert r.interrupted and not r.complete and 1 <= len(r.windows) < 50, (r.device, r.stopped, len(r.windows))
        assert r.environment is not None  # the agent still sent its result


def test_a_phone_without_benchmark_model_fails_before_any_work(digits, tmp_path, monkeypatch):
    adb = Adb(tmp_path, monkeypatch)
    with pytest.raises(DeviceError, match="benchmark_model for Android"):
        benchmark([digits.int8_export], BenchOptions(**FAST, devices=["local", "adb://X"]))
    assert adb.calls() == []


def test_a_failing_device_stops_the_others(digits, tmp_path, monkeypatch):
    """Without keep_going, one device's failure interrupts the other and is raised; nothing is left on the phone."""
    adb = Adb(tmp_path, monkeypatch)
    adb.rules({"cmd": "push", "rc": 1, "stderr": "adb: error: failed to copy: No space left on device\n"},
              benchmark_output="")
    binary = str(elf(tmp_path / "bm"))
    with pytest.raises(DeviceError, match="no space left on the phone"):
        benchmark([digits.int8_export], BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1},
                                                     devices=["local", "adb://X"], benchmark_binary=binary))
    assert adb.shell_commands()[-1].startswith("rm -rf /data/local/tmp/edgepool-")


def test_an_unavailable_device_is_tried_once_and_said_once(app, run_copy, tmp_path, monkeypatch):
    adb = Adb(tmp_path, monkeypatch)
    adb.rules({"cmd": "get-state", "rc": 1, "stderr": "error: device 'X' not found\n"})
    res = invoke(app, run_copy, "--device", "adb://X", "--benchmark-binary", elf(tmp_path / "bm"), *FAST_FLAGS)
    assert res.exit_code == 3 and res.output.count("Android device X is not attached") == 1, res.output
    assert sum(c[-1] == "get-state" for c in adb.calls()) == 1
