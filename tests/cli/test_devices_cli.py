"""`edgepool devices add | list | remove | check` through Typer's runner, with the registry in a temporary
XDG_CONFIG_HOME. No phone, iPhone or board exists here: `check adb://` uses the stand-in adb of
tests/devices/test_adb_transport.py, `check ssh://` a stand-in ssh transport module."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tests._cli import run


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGEPOOL_PROFILE_PATH", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def test_add_list_remove(tmp_path: Path) -> None:
    code, out, _ = run("devices", "list")
    assert code == 0 and "no devices registered" in out
    code, out, err = run("devices", "add", "pi5", "ssh://pi@pi5.local?python=/home/pi/venv/bin/python",
                         "--profile", "raspberry-pi-5")
    assert code == 0, err
    assert "added pi5: ssh://pi@pi5.local?python=/home/pi/venv/bin/python, profile raspberry-pi-5" in out
    assert (tmp_path / "xdg" / "edgepool" / "devices.toml").is_file()
    assert run("devices", "add", "phone", "adb://37211FDJH005XZ")[0] == 0
    code, out, _ = run("devices", "list")
    assert code == 0 and "pi5" in out and "raspberry-pi-5" in out and "adb://37211FDJH005XZ" in out
    code, out, _ = run("devices", "list", "--json")
    rows = json.loads(out)
    assert [(r["name"], r["transport"], r["host"], r["python"]) for r in rows] == [
        ("phone", "adb", None, None), ("pi5", "ssh", "pi5.local", "/home/pi/venv/bin/python")]
    code, out, _ = run("devices", "remove", "pi5")
    assert code == 0 and "removed pi5" in out
    assert [r["name"] for r in json.loads(run("devices", "list", "--json")[1])] == ["phone"]


@pytest.mark.parametrize(("args", "code", "text"), [
    (("devices", "add", "pi", "ssh://pi:pw@host"), 2, "holds a password"),
    (("devices", "add", "pi", "sssh://host"), 2, "did you mean ssh://?"),
    (("devices", "add", "pi", "ssh://host", "--profile", "pixel-8"), 2, "profile pixel-8 is reached over adb"),
    (("devices", "add", "pi", "ssh://host", "--profile", "raspbery-pi-5"), 2, "did you mean 'raspberry-pi-5'?"),
    (("devices", "remove", "nothing"), 2, "no device named 'nothing'"),
    (("devices", "check", "nothing"), 2, "no device named 'nothing'"),
    (("devices", "check", "ftp://x"), 2, "unknown device scheme 'ftp://'"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], code: int, text: str) -> None:
    got, out, err = run(*args)
    assert got == code
    assert text in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_add_twice_needs_force() -> None:
    assert run("devices", "add", "pi", "ssh://a")[0] == 0
    code, _, err = run("devices", "add", "pi", "ssh://b")
    assert code == 2 and "already registered" in err and "--force" in err
    assert run("devices", "add", "pi", "ssh://b", "--force")[0] == 0


def test_check_local_is_the_host_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh, adb, edgetpu_compiler, chromium
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)
    code, out, err = run("devices", "check", "local", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["device"]["transport"] == "local"
    assert doc["facts"]["python"].startswith("3.") and "runtimes" in doc["facts"]
    tools = {t["name"]: t for t in doc["host_tools"]}
    assert list(tools) == ["ssh", "adb", "pymobiledevice3", "edgetpu_compiler", "chromium"]
    assert not tools["adb"]["present"] and tools["adb"]["install"] == "apt-get install adb"
    checks = {p["profile"]: p for p in doc["profiles"]}
    assert {"host-cpu", "coral-usb"} <= set(checks)  # the profiles reached over local
    if not doc["facts"]["edgetpu_delegate"]:
        assert checks["coral-usb"]["missing"][-1]["what"] == "the Edge TPU runtime (libedgetpu.so.1)"
    code, out, _ = run("devices", "check", "local")
    assert code == 0
    assert "Host tools" in out and "missing adb" in out and "install: apt-get install adb" in out
    assert "disables adb:// devices (Android phones)" in out
    assert "pip install 'edgepool[ios]'" in out
    assert "Profiles reached over local" in out and "host-cpu" in out


def test_check_a_phone_through_the_standin_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.devices.test_adb_transport import Adb

    Adb(tmp_path, monkeypatch)
    assert run("devices", "add", "pixel", "adb://37211FDJH005XZ", "--profile", "pixel-8")[0] == 0
    code, out, err = run("devices", "check", "pixel")
    assert code == 0, err
    assert "Google Pixel 8" in out and "Tensor G3" in out and "87%" in out and "light" in out
    assert "missing pixel-8 (registered)" in out and "LiteRT's benchmark_model for Android (arm64)" in out
    code, out, _ = run("devices", "check", "adb://37211FDJH005XZ", "--json")
    doc = json.loads(out)
    assert doc["facts"]["android"]["android_version"] == "14" and doc["profiles"][0]["ok"] is False


def test_check_a_phone_without_adb_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run("devices", "check", "adb://")
    assert code == 3 and "adb is not installed" in err and len(err.strip().splitlines()) == 1


def test_check_an_iphone_without_pymobiledevice3_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)
    code, _, err = run("devices", "check", "ios://")
    assert code == 3 and "pip install 'edgepool[ios]'" in err


def test_check_a_board_uses_the_ssh_transports_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def probe(ref):  # a stand-in for edgepool.bench.transports.ssh: no board exists here
        seen.append(ref)
        return {"device": ref.label, "transport": "ssh", "os": "Linux-6.6.31+rpt-rpi-2712-aarch64", "machine": "aarch64",
                "cpu_model": "Raspberry Pi 5 Model B Rev 1.0", "cpu_count": 4, "governor": "ondemand",
                "temperatures_c": {"cpu-thermal": 51.3}, "free_disk_bytes": 20 * 2**30, "python": "3.11.2",
                "numpy": "2.1.3", "runtimes": {"tflite_runtime": "2.14.0"}, "edgetpu_delegate": None, "power_sensors": []}

    monkeypatch.setitem(sys.modules, "edgepool.bench.transports.ssh", types.SimpleNamespace(probe=probe))
    code, out, err = run("devices", "check", "ssh://pi@pi5.local:2222")
    assert code == 0, err
    assert seen[0].host == "pi5.local" and seen[0].port == 2222
    assert "Raspberry Pi 5 Model B" in out and "4 cores" in out and "cpu-thermal 51.3 C" in out
    assert "missing raspberry-pi-5" in out and "numpy < 2 for tflite-runtime 2.14" in out
    assert "pip install 'numpy<2'" in out
    assert "none found" in out  # power sensors


def test_check_a_board_with_an_ssh_transport_class(monkeypatch: pytest.MonkeyPatch) -> None:
    made = {}

    class SshTransport:
        def __init__(self, host, user=None, port=None, python=None, timeout_s=None):
            made.update(host=host, user=user, port=port, python=python)

        def probe(self):
            return {"transport": "ssh", "python": None}

    monkeypatch.setitem(sys.modules, "edgepool.bench.transports.ssh", types.SimpleNamespace(SshTransport=SshTransport))
    code, out, _ = run("devices", "check", "ssh://pi@pi5?python=/usr/bin/python3", "--json")
    assert code == 0
    assert made == {"host": "pi5", "user": "pi", "port": None, "python": "/usr/bin/python3"}
    pi5 = next(p for p in json.loads(out)["profiles"] if p["profile"] == "raspberry-pi-5")
    assert "benchmark_model" in pi5["missing"][0]["fix"]


def test_check_a_board_with_the_real_ssh_transport_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ssh transport of this build is constructed from the URI; its probe (which would ssh) is replaced."""
    ssh = pytest.importorskip("edgepool.bench.transports.ssh")
    if not hasattr(getattr(ssh, "SshTransport", None), "probe"):
        pytest.skip("this build's ssh transport has no probe")
    targets = []

    def probe(self):
        targets.append(self)
        return {"python": "3.11.2", "numpy": "1.26.4", "runtimes": {"tflite_runtime": {"version": "2.14.0",
                "importable": True, "error": None}}, "edgetpu": {"library": None}, "disk": {"free_bytes": 2**30}}

    monkeypatch.setattr(ssh.SshTransport, "probe", probe)
    code, out, err = run("devices", "check", "ssh://pi@pi5:2222?python=/opt/tflite/bin/python", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(targets) == 1 and doc["facts"]["transport"] == "ssh" and doc["facts"]["free_disk_bytes"] == 2**30
    pi5 = next(p for p in doc["profiles"] if p["profile"] == "raspberry-pi-5")
    assert pi5["ok"], pi5
