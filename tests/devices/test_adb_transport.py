"""The adb transport against a stand-in `adb`.

No phone exists on this machine: a small Python script named `adb` is put first on PATH. It records every
argument list it gets (one JSON line each) and replays outputs chosen by rules: `getprop`, `dumpsys battery` /
`dumpsys thermalservice` texts written from AOSP's BatteryService / ThermalManagerService dump format, and a
`benchmark_model` output from tests/fixtures/benchmark_model/ (written from the tool's source, see its README).
The tests check what would be sent to a phone (pushes, the quoted command line, taskset, threads, delegate
flags, the `rm -rf` of the private folder after success and after every kind of failure) and how the
replayed output becomes the agent's result fields.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from edgepool.bench.protocol import BenchmarkResult
from edgepool.bench.transports import adb as adb_mod
from edgepool.bench.transports.adb import AdbTransport
from edgepool.errors import DeviceError, InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"
SERIAL = "37211FDJH005XZ"

GETPROP = """[ro.build.fingerprint]: [google/shiba/shiba:14/AP2A.240805.005/12025142:user/release-keys]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.product.cpu.abilist]: [arm64-v8a]
[ro.product.manufacturer]: [Google]
[ro.product.model]: [Pixel 8]
[ro.serialno]: [37211FDJH005XZ]
[ro.soc.manufacturer]: [Google]
[ro.soc.model]: [Tensor G3]
[ro.board.platform]: [zuma]
"""

# BatteryService.dumpInternal (Android 14: "Dock powered", "Charging state", "Charging policy")
BATTERY_BEFORE = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Dock powered: false
  Max charging current: 500000
  Max charging voltage: 5000000
  Charge counter: 3982000
  status: 2
  health: 2
  present: true
  level: 87
  scale: 100
  voltage: 4312
  temperature: 312
  technology: Li-ion
  Charging state: 1
  Charging policy: 1
"""
BATTERY_AFTER = BATTERY_BEFORE.replace("level: 87", "level: 86").replace("temperature: 312", "temperature: 334")

# ThermalManagerService.dump; Temperature.toString()
THERMAL = """IsStatusOverride: false
ThermalEventListeners:
	callbacks: 1
	killed: false
	broadcasts count: -1
ThermalStatusListeners:
	callbacks: 1
	killed: false
	broadcasts count: -1
Thermal Status: 1
Cached temperatures:
	Temperature{mValue=38.1, mType=3, mName=VIRTUAL-SKIN, mStatus=1}
HAL Ready: true
HAL connection:
	ThermalHAL AIDL 1  connected: yes
Current temperatures from HAL:
	Temperature{mValue=38.4, mType=3, mName=VIRTUAL-SKIN, mStatus=1}
	Temperature{mValue=51.2, mType=0, mName=BIG, mStatus=0}
	Temperature{mValue=31.2, mType=2, mName=battery, mStatus=0}
Current cooling devices from HAL:
	CoolingDevice{mValue=0, mType=2, mName=cpu-cluster0}
Temperature static thresholds from HAL:
	TemperatureThreshold{mType=3, mName=VIRTUAL-SKIN, mHotThrottlingThresholds=[39.0, 43.0, 45.0, 47.0, 53.0, 55.0, 57.0], mColdThrottlingThresholds=[NaN, NaN, NaN, NaN, NaN, NaN, NaN]}
"""

PROBE = """@cores
0-8
@governor
sched_pixel
@df
Filesystem        1K-blocks     Used Available Use% Mounted on
/dev/block/dm-53 114738128 40372064  74235232  36% /data
@current
-312500
@voltage
4312000
"""

STANDIN = r'''#!{python}
"""Stand-in adb (edgepool tests): no phone exists here. Records argv, replays outputs by rule."""
import json, os, sys, time
argv = sys.argv[1:]
with open(os.environ["ADB_STANDIN_LOG"], "a") as f:
    f.write(json.dumps(argv) + "\n")
args = argv[2:] if argv[:1] == ["-s"] else argv
joined = " ".join(args)
state_path = os.environ["ADB_STANDIN_LOG"] + ".count"
counts = json.load(open(state_path)) if os.path.exists(state_path) else {{}}
for i, rule in enumerate(json.load(open(os.environ["ADB_STANDIN_RULES"]))):
    if args[:1] != [rule["cmd"]] or rule.get("match", "") not in joined:
        continue
    n = counts.get(str(i), 0)
    counts[str(i)] = n + 1
    json.dump(counts, open(state_path, "w"))
    outs = rule.get("stdout_seq")
    sys.stdout.write(outs[min(n, len(outs) - 1)] if outs else rule.get("stdout", ""))
    sys.stderr.write(rule.get("stderr", ""))
    sys.stdout.flush()
    time.sleep(rule.get("sleep", 0))
    sys.exit(rule.get("rc", 0))
sys.exit(0)
'''


class Adb:
    """The stand-in: `rules` choose outputs; `calls()` is every argument list adb got."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        exe = self.bin / "adb"
        exe.write_text(STANDIN.format(python=sys.executable))
        exe.chmod(0o755)
        self.log = tmp / "adb.log"
        self.rules_path = tmp / "rules.json"
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("ADB_STANDIN_LOG", str(self.log))
        monkeypatch.setenv("ADB_STANDIN_RULES", str(self.rules_path))
        self.rules(benchmark_output=(FIXTURES / "litert_android_gpu_percentiles.txt").read_text())

    def rules(self, *first: dict[str, Any], benchmark_output: str | None = None, benchmark: dict | None = None) -> None:
        bench = benchmark or {"cmd": "shell", "match": "--graph=", "stdout": benchmark_output or ""}
        rules = [*first, bench,
                 {"cmd": "get-state", "stdout": "device\n"},
                 {"cmd": "shell", "match": "getprop", "stdout": GETPROP},
                 {"cmd": "shell", "match": "dumpsys battery", "stdout_seq": [BATTERY_BEFORE, BATTERY_AFTER]},
                 {"cmd": "shell", "match": "dumpsys thermalservice", "stdout": THERMAL},
                 {"cmd": "shell", "match": "@cores", "stdout": PROBE},
                 {"cmd": "push", "stdout": "1 file pushed, 0 skipped.\n"}]
        self.rules_path.write_text(json.dumps(rules))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def shell_commands(self) -> list[str]:
        args = [c[2:] if c[:1] == ["-s"] else c for c in self.calls()]
        return [a[1] for a in args if a[:1] == ["shell"]]


@pytest.fixture
def adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Adb:
    return Adb(tmp_path, monkeypatch)


def elf(path: Path, machine: int = 183) -> Path:
    """A file with an ELF header for `machine` (183 aarch64, 62 x86-64): what the transport checks, nothing more."""
    head = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")
    path.write_bytes(head + b"\0" * 64)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "export dir"
    d.mkdir()
    p = d / "my model $(touch PWNED).tflite"
    p.write_bytes(b"TFL3" + b"\0" * 100)
    return p


def request(model: Path, **kw: Any) -> dict[str, Any]:
    r = {"protocol": 1, "model_path": str(model), "runtime": "auto", "threads": 4, "affinity": [4, 5, 6, 7],
         "delegates": [], "warmup_runs": 1, "warmup_min_seconds": 0.5, "runs": 50, "min_seconds": 1.0, "windows": 5,
         "max_seconds": 150.0, "run_delay_s": 0.0, "inputs": {"mode": "random", "seed": 0}}
    r.update(kw)
    return r


def transport(tmp_path: Path, **kw: Any) -> AdbTransport:
    kw.setdefault("benchmark_binary", elf(tmp_path / "android_aarch64_benchmark_model"))
    kw.setdefault("delegates", ["gpu"])
    return AdbTransport(SERIAL, **kw)


def test_run_pushes_runs_quoted_and_cleans_up(adb: Adb, model: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    run = transport(tmp_path).run(request(model), events.append)
    calls = adb.calls()
    assert all(c[:2] == ["-s", SERIAL] for c in calls)
    pushes = [c[2:] for c in calls if c[2] == "push"]
    mkdir = next(c for c in adb.shell_commands() if c.startswith("mkdir"))
    remote = shlex.split(mkdir)[-1]
    assert remote.startswith("/data/local/tmp/edgepool-")
    assert pushes == [["push", str(model), remote + "/"],  # argv, no local shell: the path goes as it is
                      ["push", str(tmp_path / "android_aarch64_benchmark_model"), remote + "/benchmark_model"]]
    bench = next(c for c in adb.shell_commands() if "--graph=" in c)
    assert shlex.split(bench) == [
        "taskset", "f0", f"{remote}/benchmark_model", f"--graph={remote}/my model $(touch PWNED).tflite",
        "--num_threads=4", "--warmup_runs=1", "--warmup_min_secs=0.5", "--num_runs=250", "--min_secs=5",
        "--max_secs=150", "--use_gpu=true"]
    assert f"'--graph={remote}/my model $(touch PWNED).tflite'" in bench  # single-quoted for the phone's shell
    assert not list(tmp_path.rglob("PWNED"))
    assert adb.shell_commands()[-1] == f"rm -rf {remote}"  # always last
    assert not any(c.startswith("pkill") for c in adb.shell_commands())  # it finished: nothing to kill

    res = run.result
    assert run.error is None and run.windows == [] and not run.interrupted
    assert res["runtime"] == "benchmark_model" and res["transport"] == "adb" and res["input_mode"] == "random"
    assert res["latency_ms"]["median"] == pytest.approx(0.284) and res["runs"] == 17226
    assert res["stopped"] is None  # 17226 runs >= the 250 asked for
    assert res["delegates"] == ["gpu"] and res["delegate_coverage"] == {"TfLiteGpuDelegateV2": 1.0}
    assert res["model_size_bytes"] == model.stat().st_size
    env = res["environment"]
    assert (env["device_model"], env["android_version"], env["sdk"], env["soc"]) == ("Pixel 8", "14", 34, "Tensor G3")
    assert env["affinity"] == [4, 5, 6, 7] and env["os"] == "Android 14 (SDK 34)"
    assert env["battery_before"]["level_pct"] == 87 and env["battery_after"]["level_pct"] == 86
    assert env["battery_before"]["temperature_c"] == pytest.approx(31.2) and env["battery_before"]["charging"] is True
    assert env["battery_before"]["plugged"] == ["USB"]
    assert env["thermal_after"]["status"] == "light" and env["thermal_after"]["hottest_c"] == pytest.approx(51.2)
    assert [e["event"] for e in events][-2:] == ["hello", "result"]

    br = BenchmarkResult(name="m", model_path=str(model), format="tflite", recipe=None, device="adb://" + SERIAL,
                         profile="pixel-8", model_size_bytes=0, threads=4, delegates=["gpu"], input_mode="random")
    br.apply_result(res)
    assert br.runtime == "benchmark_model" and br.complete and br.peak_rss_bytes == res["memory"]["peak_rss_bytes"]
    assert br.environment["device_model"] == "Pixel 8"


def test_no_serial_no_affinity_request_delegate_names(adb: Adb, model: Path, tmp_path: Path) -> None:
    t = AdbTransport(None, benchmark_binary=elf(tmp_path / "bm"))
    run = t.run(request(model, affinity=None, threads=1, delegate_names=["xnnpack"], windows=1, runs=10))
    assert run.result is not None
    assert all(c[0] != "-s" for c in adb.calls())
    bench = shlex.split(next(c for c in adb.shell_commands() if "--graph=" in c))
    assert bench[0].endswith("/benchmark_model") and "--use_xnnpack=true" in bench and "--num_runs=10" in bench


def test_benchmark_failure_is_the_runs_error_and_still_cleans_up(adb: Adb, model: Path, tmp_path: Path) -> None:
    adb.rules(benchmark={"cmd": "shell", "match": "--graph=", "rc": 1,
                         "stderr": (FIXTURES / "failed_op_version.txt").read_text()})
    run = transport(tmp_path).run(request(model))
    assert run.result is None and run.returncode == 1
    assert run.error["kind"] == "device"
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" in run.error["message"]
    assert "older than the model's ops" in run.error["hint"]
    assert adb.shell_commands()[-1].startswith("rm -rf /data/local/tmp/edgepool-")


def test_push_failure_raises_one_device_error_and_cleans_up(adb: Adb, model: Path, tmp_path: Path) -> None:
    adb.rules({"cmd": "push", "rc": 1, "stderr": "adb: error: failed to copy 'x' to 'y': remote No space left on device\n"},
              benchmark_output="")
    with pytest.raises(DeviceError) as e:
        transport(tmp_path).run(request(model))
    assert "no space left on the phone" in e.value.message and e.value.exit_code == 3
    assert adb.shell_commands()[-1].startswith("rm -rf /data/local/tmp/edgepool-")
    assert not any("--graph=" in c for c in adb.shell_commands())


def test_timeout_kills_the_binary_and_cleans_up(adb: Adb, model: Path, tmp_path: Path) -> None:
    adb.rules(benchmark={"cmd": "shell", "match": "--graph=", "sleep": 5, "stdout": "INFO: STARTING!\n"})
    with pytest.raises(DeviceError) as e:
        transport(tmp_path, timeout_s=0.5).run(request(model))
    assert "benchmark_model timed out after 0.5 s" in e.value.message
    cmds = adb.shell_commands()
    remote = shlex.split(next(c for c in cmds if c.startswith("mkdir")))[-1]
    assert cmds[-2:] == [f"pkill -f {remote}/benchmark_model", f"rm -rf {remote}"]


def test_missing_binary_says_what_to_get(adb: Adb, model: Path) -> None:
    with pytest.raises(DeviceError) as e:
        AdbTransport(SERIAL).run(request(model))
    assert e.value.message == "adb://37211FDJH005XZ: LiteRT's benchmark_model for Android (arm64) is needed"
    assert "android_aarch64_benchmark_model" in e.value.hint and "machine with internet" in e.value.hint
    assert adb.calls() == []  # nothing sent to the phone


def test_binary_checks(adb: Adb, model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        AdbTransport(SERIAL, benchmark_binary=tmp_path / "nope").run(request(model))
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(InputError, match="no ELF header"):
        AdbTransport(SERIAL, benchmark_binary=script).run(request(model))
    with pytest.raises(DeviceError) as e:
        AdbTransport(SERIAL, benchmark_binary=elf(tmp_path / "linux_x86-64_benchmark_model", 62)).run(request(model))
    assert "built for x86-64, but adb://37211FDJH005XZ runs arm64-v8a" in e.value.message
    assert not any(c[2] == "push" for c in adb.calls())


def test_edge_tpu_delegate_is_refused(adb: Adb, model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        transport(tmp_path, delegates=["edgetpu"]).run(request(model))
    assert "delegate 'edgetpu' cannot be applied" in e.value.message


@pytest.mark.parametrize(("stderr", "message"), [
    ("error: no devices/emulators found\n", "no Android device is attached"),
    ("error: device '37211FDJH005XZ' not found\n", "Android device 37211FDJH005XZ is not attached"),
    ("error: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n", "has not authorized this computer"),
    ("error: more than one device/emulator\n", "several Android devices are attached"),
    ("error: device offline\n", "the phone is offline"),
])
def test_adb_errors_are_one_line(adb: Adb, model: Path, tmp_path: Path, stderr: str, message: str) -> None:
    adb.rules({"cmd": "get-state", "rc": 1, "stderr": stderr})
    with pytest.raises(DeviceError) as e:
        transport(tmp_path).run(request(model))
    assert message in e.value.message and e.value.exit_code == 3
    assert "\n" not in e.value.message


def test_adb_not_installed(tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError) as e:
        transport(tmp_path).run(request(model))
    assert "adb is not installed" in e.value.message and e.value.hint.startswith("apt-get install adb")


def test_probe_facts(adb: Adb, tmp_path: Path) -> None:
    facts = AdbTransport(SERIAL, benchmark_binary=elf(tmp_path / "bm")).probe()
    assert facts["transport"] == "adb" and facts["cpu_count"] == 9 and facts["governor"] == "sched_pixel"
    assert facts["free_disk_bytes"] == 74235232 * 1024
    assert facts["android"]["device_model"] == "Pixel 8" and facts["machine"] == "arm64-v8a"
    assert facts["battery"]["level_pct"] == 87 and facts["thermal"]["status"] == "light"
    assert facts["temperatures_c"]["BIG"] == pytest.approx(51.2)
    assert facts["power_sensors"][0]["quantity"] == "current+voltage"
    assert facts["benchmark_binary"] == str(tmp_path / "bm") and facts["python"] is None
    probe = next(c for c in adb.shell_commands() if "@cores" in c)
    assert shlex.split(probe)[:2] == ["sh", "-c"]


def test_dumpsys_parsers() -> None:
    b = adb_mod.parse_dumpsys_battery(BATTERY_BEFORE)
    assert b == {"level_pct": 87.0, "temperature_c": 31.2, "voltage_mv": 4312, "status": "charging", "charging": True,
                 "plugged": ["USB"], "health": "good", "charge_counter_uah": 3982000, "updates_stopped": False}
    stopped = adb_mod.parse_dumpsys_battery("Current Battery Service state:\n  (UPDATES STOPPED -- use 'reset' to restart)\n"
                                            "  status: 3\n  level: 40\n  scale: 50\n")
    assert stopped["updates_stopped"] and stopped["level_pct"] == 80.0 and stopped["charging"] is False
    t = adb_mod.parse_dumpsys_thermalservice(THERMAL)
    assert t["status"] == "light" and t["status_code"] == 1 and t["status_overridden"] is False
    assert [(x["name"], x["type"]) for x in t["temperatures"]] == [("VIRTUAL-SKIN", "skin"), ("BIG", "cpu"),
                                                                   ("battery", "battery")]
    assert adb_mod.parse_dumpsys_thermalservice("Thermal Status: 3\n")["status"] == "severe"


def test_helpers() -> None:
    assert adb_mod.affinity_mask([0]) == "1" and adb_mod.affinity_mask([4, 5, 6, 7]) == "f0"
    assert adb_mod.shell_join(["rm", "-rf", "/data/local/tmp/a b"]) == "rm -rf '/data/local/tmp/a b'"
    assert adb_mod._cpu_count("0-3,4-7") == 8 and adb_mod._cpu_count("0") == 1 and adb_mod._cpu_count("x") is None
    assert adb_mod.parse_getprop(GETPROP)["ro.product.model"] == "Pixel 8"


def test_interrupt_from_another_thread_kills_and_cleans_up(adb: Adb, model: Path, tmp_path: Path) -> None:
    """The multi-device runner's Ctrl-C: the main thread calls interrupt() while a worker waits on the phone."""
    import threading
    import time

    adb.rules(benchmark={"cmd": "shell", "match": "--graph=", "sleep": 3, "stdout": "INFO: STARTING!\n"})
    t = transport(tmp_path)
    timer = threading.Thread(target=lambda: (time.sleep(1.0), t.interrupt()))
    timer.start()
    run = t.run(request(model))
    timer.join()
    assert run.interrupted and run.result is None and run.error is None
    cmds = adb.shell_commands()
    remote = shlex.split(next(c for c in cmds if c.startswith("mkdir")))[-1]
    assert f"pkill -f {remote}/benchmark_model" in cmds and cmds[-1] == f"rm -rf {remote}"
