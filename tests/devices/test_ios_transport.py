"""The ios transport against a stand-in for pymobiledevice3's pieces.

No iPhone exists on this machine, and pymobiledevice3 is an optional extra that is not installed here. The
transport's adapter (`Pmd3Device`) takes the pieces it uses from `ios.pymobiledevice3()`; these tests replace
that function with a namespace of thin asyncio stand-ins shaped like pymobiledevice3 9+ (create_using_usbmux,
DiagnosticsService, InstallationProxyService, HouseArrestService as an AFC context manager, DvtProvider +
ProcessControl, get_tunneld_device_by_udid, the exception classes). The stand-in "app" answers a launch by
reading request.json from the container and writing result.json, as the example iOS app is specified to.
The tests check the flow (push, launch, poll, fetch, clean up) and every error message.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from edgepool.bench.protocol import BenchmarkResult, decode_latencies_ms
from edgepool.bench.transports import ios
from edgepool.bench.transports.ios import IosTransport
from edgepool.errors import DeviceError

UDID = "00008130-001A2C3E0E38802E"


class Phone:
    """The state of the pretend iPhone: its container files, what was launched, how the app behaves."""

    def __init__(self, ios_version: str = "17.5.1", installed: bool = True, app: str = "ok") -> None:
        self.ios_version = ios_version
        self.installed = installed
        self.app = app  # "ok" | "silent" | "error" | "garbage"
        self.files: dict[str, bytes] = {}
        self.launched: list[dict[str, Any]] = []
        self.killed: list[int] = []
        self.dvt_targets: list[Any] = []
        self.tunnel = True
        self.attached = True
        self.closed = False


def standin(phone: Phone) -> types.SimpleNamespace:
    class PyMobileDevice3Exception(Exception):
        pass

    class AppNotInstalledError(PyMobileDevice3Exception):
        pass

    class NoDeviceConnectedError(PyMobileDevice3Exception):
        pass

    class TunneldConnectionError(PyMobileDevice3Exception):
        pass

    exceptions = types.SimpleNamespace(PyMobileDevice3Exception=PyMobileDevice3Exception,
                                       AppNotInstalledError=AppNotInstalledError,
                                       NoDeviceConnectedError=NoDeviceConnectedError,
                                       TunneldConnectionError=TunneldConnectionError)

    class Lockdown:
        udid = UDID
        product_version = phone.ios_version
        all_values = {"DeviceName": "Ada's iPhone", "ProductVersion": phone.ios_version, "ProductType": "iPhone16,1",
                      "BuildVersion": "21F90"}

        async def get_value(self, domain: str | None = None, key: str | None = None) -> Any:
            return True if key == "DeveloperModeStatus" else None

        async def close(self) -> None:
            phone.closed = True

    async def create_using_usbmux(serial: str | None = None, **kw: Any) -> Lockdown:
        if not phone.attached:
            raise NoDeviceConnectedError()
        return Lockdown()

    class DiagnosticsService:
        def __init__(self, lockdown: Any) -> None:
            pass

        async def get_battery(self) -> dict[str, Any]:
            return {"CurrentCapacity": 81, "MaxCapacity": 100, "IsCharging": False, "ExternalConnected": True,
                    "Temperature": 3050, "Voltage": 4012, "InstantAmperage": -312}

    class InstallationProxyService:
        def __init__(self, lockdown: Any) -> None:
            pass

        async def get_apps(self, bundle_identifiers: list[str] | None = None, **kw: Any) -> dict[str, Any]:
            return {b: {"CFBundleIdentifier": b} for b in bundle_identifiers or [] if phone.installed}

    class Afc:
        async def __aenter__(self) -> Afc:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            pass

        async def makedirs(self, path: str) -> None:
            pass

        async def set_file_contents(self, path: str, data: bytes) -> None:
            phone.files[path] = data

        async def push(self, local: str, remote_dir: str, progress_bar: bool = True) -> None:
            src = Path(local)
            for f in [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()):
                rel = src.name if f == src else f"{src.name}/{f.relative_to(src)}"
                phone.files[f"{remote_dir}/{rel}"] = f.read_bytes()

        async def exists(self, path: str) -> bool:
            return path in phone.files or any(k.startswith(path + "/") for k in phone.files)

        async def get_file_contents(self, path: str) -> bytes:
            return phone.files[path]

        async def rm(self, path: str, force: bool = False) -> list[str]:
            gone = [k for k in phone.files if k == path or k.startswith(path + "/")]
            for k in gone:
                del phone.files[k]
            return gone

    class HouseArrestService:
        @classmethod
        async def create(cls, lockdown: Any, bundle_id: str, documents_only: bool = False) -> Afc:
            if not phone.installed:
                raise AppNotInstalledError(f"No app with bundle id {bundle_id} found")
            return Afc()

    class DvtProvider:
        def __init__(self, target: Any) -> None:
            phone.dvt_targets.append(target)

        async def __aenter__(self) -> DvtProvider:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            pass

    class ProcessControl:
        def __init__(self, dvt: Any) -> None:
            pass

        async def __aenter__(self) -> ProcessControl:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            pass

        async def launch(self, bundle_id: str, arguments: list[str] | None = None, kill_existing: bool = True,
                         environment: dict[str, Any] | None = None, **kw: Any) -> int:
            phone.launched.append({"bundle_id": bundle_id, "arguments": arguments, "environment": environment})
            the_app(phone, arguments or [])
            return 4242

        async def kill(self, pid: int) -> None:
            phone.killed.append(pid)

    async def get_tunneld_device_by_udid(udid: str) -> Any:
        return f"rsd:{udid}" if phone.tunnel else None

    return types.SimpleNamespace(
        exceptions=exceptions, create_using_usbmux=create_using_usbmux, DiagnosticsService=DiagnosticsService,
        DvtProvider=DvtProvider, ProcessControl=ProcessControl, HouseArrestService=HouseArrestService,
        InstallationProxyService=InstallationProxyService, get_tunneld_device_by_udid=get_tunneld_device_by_udid,
    )


def the_app(phone: Phone, arguments: list[str]) -> None:
    """What the example app does with `--edgepool-request PATH` (PATH relative to Documents)."""
    assert arguments[0] == ios.REQUEST_ARG
    req = json.loads(phone.files[f"{ios.DOCUMENTS}/{arguments[1]}"])
    assert f"{ios.DOCUMENTS}/{req['model_path']}" in phone.files or any(
        k.startswith(f"{ios.DOCUMENTS}/{req['model_path']}/") for k in phone.files)
    out = f"{ios.DOCUMENTS}/{req['result_path']}"
    if phone.app == "silent":
        return
    if phone.app == "garbage":
        phone.files[out] = b"{not json"
        return
    if phone.app == "error":
        phone.files[out] = json.dumps({"event": "error", "kind": "input", "message": "Core ML cannot compile model.mlpackage",
                                       "hint": "re-export with a lower deployment target"}).encode()
        return
    windows = [{"index": i, "runs": 3, "seconds": 1.02, "partial": False, "latencies_ms": [1.25, 1.5, 1.75]}
               for i in range(req["windows"])]
    phone.files[out] = json.dumps({
        "event": "result", "protocol": 1, "runtime": "coreml", "runtime_version": "iOS 17.5.1",
        "model_size_bytes": 1234, "threads": None, "delegates": [], "input_mode": "random", "init_ms": 41.5,
        "first_inference_ms": 3.2, "warmup": {"runs": 10, "seconds": 0.5}, "windows_requested": req["windows"],
        "windows_finished": req["windows"], "stopped": None, "accuracy": None, "nonfinite_outputs": 0,
        "memory": {"peak_rss_bytes": 52_000_000}, "windows": windows,
        "environment": {"thermal_state": "nominal", "compute_units": req["compute_units"], "low_power_mode": False},
    }).encode()


@pytest.fixture
def phone(monkeypatch: pytest.MonkeyPatch) -> Phone:
    p = Phone()
    monkeypatch.setattr(ios, "pymobiledevice3", lambda: standin(p))
    return p


@pytest.fixture
def mlpackage(tmp_path: Path) -> Path:
    pkg = tmp_path / "export" / "model.mlpackage"
    (pkg / "Data" / "com.apple.CoreML").mkdir(parents=True)
    (pkg / "Manifest.json").write_text("{}")
    (pkg / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"\x08\x07")
    return pkg


def request(model: Path, **kw: Any) -> dict[str, Any]:
    return {"protocol": 1, "model_path": str(model), "threads": 1, "warmup_runs": 1, "warmup_min_seconds": 0.5,
            "runs": 3, "min_seconds": 1.0, "windows": 2, "max_seconds": 150.0, "run_delay_s": 0.0,
            "inputs": {"mode": "samples", "seed": 7}, **kw}


def test_run_pushes_launches_fetches_and_cleans_up(phone: Phone, mlpackage: Path) -> None:
    events: list[dict] = []
    run = IosTransport(UDID, compute_units="ALL", poll_interval_s=0.01).run(request(mlpackage), events.append)
    assert run.error is None and not run.interrupted
    launch = phone.launched[0]
    assert launch["bundle_id"] == "dev.edgepool.bench"
    rel = launch["arguments"][1]
    assert launch["arguments"][0] == "--edgepool-request" and rel.startswith("edgepool/") and rel.endswith("/request.json")
    assert launch["environment"] == {"EDGEPOOL_REQUEST": rel}
    assert phone.dvt_targets == [f"rsd:{UDID}"]  # iOS 17: through the tunnel
    assert phone.files == {}  # the folder is gone from the container
    assert phone.killed == []  # the app finished: nothing to kill
    assert phone.closed

    assert len(run.windows) == 2 and decode_latencies_ms(run.windows[0]).tolist() == [1.25, 1.5, 1.75]
    res = run.result
    assert res["runtime"] == "coreml" and res["transport"] == "ios" and res["init_ms"] == 41.5
    env = res["environment"]
    assert (env["device_name"], env["ios_version"], env["product_type"]) == ("Ada's iPhone", "17.5.1", "iPhone16,1")
    assert env["thermal_state"] == "nominal" and env["compute_units"] == "ALL"
    assert env["battery_before"]["level_pct"] == 81 and env["battery_before"]["temperature_c"] == pytest.approx(30.5)
    assert [e["event"] for e in events] == ["progress", "progress", "hello", "window", "window", "result"]

    br = BenchmarkResult(name="m", model_path=str(mlpackage), format="coreml", recipe="coreml-fp16", device="ios://",
                         profile="iphone-15-pro", model_size_bytes=0, threads=None, delegates=[], input_mode="random")
    for w in run.windows:
        br.add_window(w)
    br.apply_result(res)
    assert br.complete and br.runs == 6 and br.median_ms == pytest.approx(1.5) and br.peak_rss_bytes == 52_000_000


def test_request_the_app_gets(phone: Phone, mlpackage: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = ios.IosTransport._wait

    def spy(self: IosTransport, dev: Any, remote: str, timeout: float) -> dict[str, Any]:
        folder = remote.rsplit("/", 1)[0]
        seen["files"] = sorted(k[len(folder) + 1:] for k in phone.files if k.startswith(folder + "/"))
        seen["request"] = json.loads(phone.files[f"{folder}/request.json"])
        return real(self, dev, remote, timeout)

    monkeypatch.setattr(ios.IosTransport, "_wait", spy)
    IosTransport(compute_units="CPU_AND_NE", poll_interval_s=0.01).run(request(mlpackage))
    assert seen["files"] == ["model.mlpackage/Data/com.apple.CoreML/model.mlmodel", "model.mlpackage/Manifest.json",
                             "request.json", "result.json"]
    req = seen["request"]
    assert req["model_path"].endswith("/model.mlpackage") and req["result_path"].endswith("/result.json")
    assert req["compute_units"] == "CPU_AND_NE" and req["runs"] == 3 and req["windows"] == 2
    assert req["inputs"] == {"mode": "random", "seed": 7}  # the app feeds random inputs


def test_ios_16_launches_over_lockdown(phone: Phone, mlpackage: Path) -> None:
    phone.ios_version = "16.7.2"
    phone.tunnel = False
    IosTransport(poll_interval_s=0.01).run(request(mlpackage))
    assert len(phone.dvt_targets) == 1 and not isinstance(phone.dvt_targets[0], str)


def test_without_pymobiledevice3(monkeypatch: pytest.MonkeyPatch, mlpackage: Path) -> None:
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)  # not importable, whatever this machine has
    with pytest.raises(DeviceError) as e:
        IosTransport(UDID).run(request(mlpackage))
    assert e.value.message == "the ios transport needs pymobiledevice3: pip install 'edgepool[ios]'"
    assert e.value.exit_code == 3
    with pytest.raises(DeviceError, match="pip install 'edgepool\\[ios\\]'"):
        IosTransport(UDID).probe()


def test_app_not_installed(phone: Phone, mlpackage: Path) -> None:
    phone.installed = False
    with pytest.raises(DeviceError) as e:
        IosTransport(UDID).run(request(mlpackage))
    assert "the edgepool benchmark app (dev.edgepool.bench) is not installed on Ada's iPhone" in e.value.message
    assert "examples/ios" in e.value.hint and "Xcode" in e.value.hint
    assert phone.launched == [] and phone.files == {}


def test_app_that_never_answers_times_out_and_leaves_nothing(phone: Phone, mlpackage: Path) -> None:
    phone.app = "silent"
    with pytest.raises(DeviceError) as e:
        IosTransport(UDID, timeout_s=0.2, poll_interval_s=0.02).run(request(mlpackage))
    assert e.value.message == f"ios://{UDID}: the edgepool app wrote no result within 0.2 s"
    assert "unlocked" in e.value.hint
    assert phone.files == {} and phone.killed == [4242]


def test_app_writing_garbage(phone: Phone, mlpackage: Path) -> None:
    phone.app = "garbage"
    with pytest.raises(DeviceError, match="result.json is not valid JSON"):
        IosTransport(UDID, timeout_s=0.1, poll_interval_s=0.02).run(request(mlpackage))
    assert phone.files == {}


def test_app_error_is_the_runs_error(phone: Phone, mlpackage: Path) -> None:
    phone.app = "error"
    run = IosTransport(UDID, poll_interval_s=0.01).run(request(mlpackage))
    assert run.result is None
    assert run.error == {"event": "error", "kind": "input", "message": f"ios://{UDID}: Core ML cannot compile model.mlpackage",
                         "hint": "re-export with a lower deployment target"}
    assert phone.files == {}


def test_ios_17_without_a_tunnel(phone: Phone, mlpackage: Path) -> None:
    phone.tunnel = False
    with pytest.raises(DeviceError) as e:
        IosTransport(UDID).run(request(mlpackage))
    assert "no pymobiledevice3 tunnel" in e.value.message and "remote tunneld" in e.value.hint
    assert phone.files == {}


def test_no_iphone_attached(phone: Phone, mlpackage: Path) -> None:
    phone.attached = False
    with pytest.raises(DeviceError) as e:
        IosTransport().run(request(mlpackage))
    assert e.value.message == "no iPhone is attached" and "Trust" in e.value.hint


def test_missing_model(phone: Phone, tmp_path: Path) -> None:
    from edgepool.errors import InputError

    with pytest.raises(InputError, match="does not exist"):
        IosTransport().run(request(tmp_path / "nope.mlpackage"))


def test_probe(phone: Phone) -> None:
    facts = IosTransport(UDID).probe()
    assert facts["transport"] == "ios" and facts["ios_version"] == "17.5.1" and facts["ios_app"] is True
    assert facts["device_name"] == "Ada's iPhone" and facts["developer_mode"] is True
    assert facts["battery"]["level_pct"] == 81 and facts["battery"]["external_power"] is True
    assert facts["power_sensors"][0]["name"] == "IOPMPowerSource"
    phone.installed = False
    assert IosTransport(UDID).probe()["ios_app"] is False


def test_window_event_encoding() -> None:
    ev = ios.window_event({"index": 3, "seconds": 1.0, "latencies_ms": [0.5, 2.0]})
    assert ev["runs"] == 2 and ev["index"] == 3 and decode_latencies_ms(ev).tolist() == [0.5, 2.0]
    passthrough = {"index": 0, "runs": 2, "seconds": 1.0, "partial": False, "latencies": ev["latencies"]}
    assert ios.window_event(passthrough)["event"] == "window"


def test_interrupt_from_another_thread(phone: Phone, mlpackage: Path) -> None:
    """The multi-device runner's Ctrl-C: interrupt() from the main thread while the worker polls for the result."""
    import threading

    phone.app = "silent"
    t = IosTransport(UDID, timeout_s=30, poll_interval_s=0.05)
    threading.Timer(0.3, t.interrupt).start()
    run = t.run(request(mlpackage))
    assert run.interrupted and run.result is None
    assert phone.killed == [4242] and phone.files == {}
