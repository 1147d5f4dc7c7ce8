"""ios transport: measure a model on an iPhone through the edgepool example app, driven by pymobiledevice3.

An iPhone runs no agent and no shell: the benchmark is done by the example iOS app (bundle id
`dev.edgepool.bench`, built from `examples/ios` with Xcode and installed once; the examples issue provides
it). For one model this transport

1. finds the device over usbmux (`ios://UDID`, or the first attached one) and reads its name, iOS version
   and battery (lockdown values; the diagnostics service's IOPMPowerSource entry);
2. checks that the app is installed (installation_proxy) and says how to install it when it is not;
3. copies the model and a request JSON into the app's container (house_arrest / AFC) under
   `Documents/edgepool/<id>/`;
4. launches the app with `--edgepool-request edgepool/<id>/request.json` (a path relative to the app's
   Documents folder; also in the environment as EDGEPOOL_REQUEST) through the developer DVT service
   (iOS 17 and later reach it through `pymobiledevice3 remote tunneld`; the developer disk image must be
   mounted: `pymobiledevice3 mounter auto-mount`);
5. polls for `result.json` beside the request until the timeout, reads it, and removes the folder (in
   `finally`: a failure or a timeout leaves nothing in the container).

The app's contract (what the examples issue implements): read the request (the agent's request fields,
`model_path` and `result_path` relative to Documents, plus `compute_units`), run the benchmark protocol of the
README, then write `result.json` atomically (a temporary name, then rename) holding either the agent's
`result` event fields plus `"windows": [{"index", "runs", "seconds", "partial", "latencies_ms": [...]}]` (or
the agent's base64 window encoding) and `"environment": {"thermal_state": "nominal" | "fair" | "serious" |
"critical", ...}`, or `{"event": "error", "kind": "input" | "device", "message", "hint"}`.

Energy (a request with `energy`): the battery diagnostics (IOPMPowerSource: `InstantAmperage` mA x `Voltage` mV,
`IsCharging`) are read in this thread (the adapter is not thread-safe) through an idle window before the launch,
the app's run (one loaded window: launch to result) and an idle window after; the iPhone refreshes them only every
few seconds (GAUGE_REFRESH_S), which sets the shortest window. Battery soak (`soak`): the app runs one window of
the soak's length at the soak's rate while the readings (capacity %, `AppleRawCurrentCapacity` mAh) are recorded;
an iPhone that is charging or on external power is refused unless allowed.

pymobiledevice3 is an optional extra (`pip install 'edgepool[ios]'`); all of its use is in the small adapter
`Pmd3Device` below, so tests replace it with a thin stand-in. No iPhone exists on the machine that runs
edgepool's tests (`tests/devices/test_ios_transport.py`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import sys
import threading
import time
from array import array
from collections.abc import Callable
from importlib import util
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from ...errors import DeviceError, InputError
from ...types import Transport
from . import AgentRun
from ._gauge import GaugePoller, power_record

BUNDLE_ID = "dev.edgepool.bench"
REQUEST_ARG = "--edgepool-request"
REQUEST_ENV = "EDGEPOOL_REQUEST"
DOCUMENTS = "/Documents"
WORK_DIR = "edgepool"  # under Documents
PROTOCOL_VERSION = 1
NEEDS_PYMOBILEDEVICE3 = "the ios transport needs pymobiledevice3: pip install 'edgepool[ios]'"
APP_MISSING_HINT = ("build examples/ios (the edgepool iOS example app) in Xcode and run it on the iPhone once; "
                    "it is the app that measures models there")
TUNNEL_HINT = "iOS 17 and later launch apps through a tunnel: run `sudo pymobiledevice3 remote tunneld` and keep it running"
DDI_HINT = "mount the developer disk image: pymobiledevice3 mounter auto-mount (Developer Mode must be on)"
REQUEST_FIELDS = ("threads", "warmup_runs", "warmup_min_seconds", "runs", "min_seconds", "windows", "max_seconds",
                  "run_delay_s")


class IosDevice(Protocol):
    """What the transport needs from a device (Pmd3Device; a stand-in in tests)."""

    def info(self) -> dict[str, Any]: ...
    def battery(self) -> dict[str, Any] | None: ...
    def app_installed(self, bundle_id: str) -> bool: ...
    def put(self, bundle_id: str, files: list[tuple[str, Path | bytes]]) -> None: ...
    def read(self, bundle_id: str, remote: str) -> bytes | None: ...
    def remove(self, bundle_id: str, remote: str) -> None: ...
    def launch(self, bundle_id: str, arguments: list[str], environment: dict[str, str]) -> int: ...
    def kill(self, pid: int) -> None: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------- the pymobiledevice3 adapter


def pymobiledevice3() -> SimpleNamespace:
    """The pieces of pymobiledevice3 (9 or later) the adapter uses; DeviceError when it is missing or too old."""
    if util.find_spec("pymobiledevice3") is None:
        raise DeviceError(NEEDS_PYMOBILEDEVICE3, "it is an optional extra; nothing else of edgepool needs it")
    try:
        from pymobiledevice3 import exceptions
        from pymobiledevice3.lockdown import create_using_usbmux
        from pymobiledevice3.services.diagnostics import DiagnosticsService
        from pymobiledevice3.services.dvt.instruments.dvt_provider import DvtProvider
        from pymobiledevice3.services.dvt.instruments.process_control import ProcessControl
        from pymobiledevice3.services.house_arrest import HouseArrestService
        from pymobiledevice3.services.installation_proxy import InstallationProxyService
        from pymobiledevice3.tunneld.api import get_tunneld_device_by_udid
    except ImportError as e:
        raise DeviceError(f"{NEEDS_PYMOBILEDEVICE3} (the installed one does not load: {e})",
                          "upgrade it: pip install -U 'edgepool[ios]' (pymobiledevice3 9 or later)") from None
    return SimpleNamespace(
        exceptions=exceptions, create_using_usbmux=create_using_usbmux, DiagnosticsService=DiagnosticsService,
        DvtProvider=DvtProvider, ProcessControl=ProcessControl, HouseArrestService=HouseArrestService,
        InstallationProxyService=InstallationProxyService, get_tunneld_device_by_udid=get_tunneld_device_by_udid,
    )


class Pmd3Device:
    """One attached iPhone through pymobiledevice3's asyncio API, run on a private event loop."""

    def __init__(self, pmd: SimpleNamespace, udid: str | None, label: str) -> None:
        self.pmd = pmd
        self.label = label
        self._loop = asyncio.new_event_loop()
        try:
            self.lockdown = self._call(pmd.create_using_usbmux(serial=udid))
        except BaseException:
            self._loop.close()
            raise
        self.udid = getattr(self.lockdown, "udid", None) or udid

    # errors pymobiledevice3 raises -> one line each
    def _error(self, e: BaseException) -> BaseException:
        ex = self.pmd.exceptions
        name = type(e).__name__

        def isa(*names: str) -> bool:
            return any(isinstance(e, getattr(ex, n)) for n in names if isinstance(getattr(ex, n, None), type))

        if isa("NoDeviceConnectedError"):
            return DeviceError("no iPhone is attached", "connect it with USB, unlock it and tap Trust")
        if isa("DeviceNotFoundError"):
            return DeviceError(f"{self.label}: iPhone not attached", "`pymobiledevice3 usbmux list` shows attached devices")
        if isa("PasswordRequiredError", "PairingError", "NotPairedError"):
            return DeviceError(f"{self.label}: this computer is not trusted by the iPhone", "unlock it and tap Trust")
        if isa("AppNotInstalledError"):
            return DeviceError(f"{self.label}: the edgepool benchmark app ({BUNDLE_ID}) is not installed", APP_MISSING_HINT)
        if isa("TunneldConnectionError"):
            return DeviceError(f"{self.label}: no pymobiledevice3 tunnel is running", TUNNEL_HINT)
        if isa("DeveloperModeIsNotEnabledError"):
            return DeviceError(f"{self.label}: Developer Mode is off",
                               "turn it on in Settings > Privacy & Security > Developer Mode, then restart the iPhone")
        if isa("InvalidServiceError", "DeveloperDiskImageNotFoundError"):
            return DeviceError(f"{self.label}: the developer services are not available", DDI_HINT)
        if isa("PyMobileDevice3Exception") or isinstance(e, OSError | ConnectionError | asyncio.TimeoutError):
            return DeviceError(f"{self.label}: {name}: {str(e) or 'the device did not answer'}",
                               "unlock the iPhone, reconnect the cable, and try again")
        return e

    def _call(self, awaitable: Any) -> Any:
        try:
            return self._loop.run_until_complete(awaitable) if asyncio.iscoroutine(awaitable) or hasattr(
                awaitable, "__await__") else awaitable
        except (DeviceError, InputError, KeyboardInterrupt):
            raise
        except Exception as e:
            mapped = self._error(e)
            if mapped is e:
                raise
            raise mapped from None

    def info(self) -> dict[str, Any]:
        values = getattr(self.lockdown, "all_values", None) or {}
        return {"name": values.get("DeviceName"), "ios_version": getattr(self.lockdown, "product_version", None)
                or values.get("ProductVersion"), "product_type": values.get("ProductType"),
                "build": values.get("BuildVersion"), "udid": self.udid}

    def battery(self) -> dict[str, Any] | None:
        try:
            return self._call(self.pmd.DiagnosticsService(lockdown=self.lockdown).get_battery())
        except DeviceError:
            return None

    def developer_mode(self) -> bool | None:
        try:
            return bool(self._call(self.lockdown.get_value(domain="com.apple.security.mac.amfi", key="DeveloperModeStatus")))
        except (DeviceError, AttributeError):
            return None

    def app_installed(self, bundle_id: str) -> bool:
        apps = self._call(self.pmd.InstallationProxyService(lockdown=self.lockdown).get_apps(bundle_identifiers=[bundle_id]))
        return bundle_id in (apps or {})

    def _container(self, bundle_id: str) -> Any:
        return self.pmd.HouseArrestService.create(self.lockdown, bundle_id)

    def put(self, bundle_id: str, files: list[tuple[str, Path | bytes]]) -> None:
        async def go() -> None:
            async with await self._container(bundle_id) as afc:
                for remote, content in files:
                    await afc.makedirs(remote.rsplit("/", 1)[0])
                    if isinstance(content, bytes):
                        await afc.set_file_contents(remote, content)
                        continue
                    try:  # a file lands in the folder under its name; a .mlpackage folder likewise
                        await afc.push(str(content), remote.rsplit("/", 1)[0], progress_bar=False)
                    except TypeError:  # a release without the progress_bar argument
                        await afc.push(str(content), remote.rsplit("/", 1)[0])
        self._call(go())

    def read(self, bundle_id: str, remote: str) -> bytes | None:
        async def go() -> bytes | None:
            async with await self._container(bundle_id) as afc:
                if not await afc.exists(remote):
                    return None
                return await afc.get_file_contents(remote)
        return self._call(go())

    def remove(self, bundle_id: str, remote: str) -> None:
        async def go() -> None:
            async with await self._container(bundle_id) as afc:
                if await afc.exists(remote):
                    await afc.rm(remote, force=True)
        self._call(go())

    def _dvt_target(self) -> Any:
        major = int(str(self.info().get("ios_version") or "0").split(".")[0] or 0)
        if major < 17:
            return self.lockdown
        rsd = self._call(self.pmd.get_tunneld_device_by_udid(self.udid))
        if rsd is None:
            raise DeviceError(f"{self.label}: no pymobiledevice3 tunnel to this iPhone", TUNNEL_HINT)
        return rsd

    def launch(self, bundle_id: str, arguments: list[str], environment: dict[str, str]) -> int:
        target = self._dvt_target()

        async def go() -> int:
            async with self.pmd.DvtProvider(target) as dvt, self.pmd.ProcessControl(dvt) as pc:
                return int(await pc.launch(bundle_id, arguments=arguments, environment=environment, kill_existing=True))
        return self._call(go())

    def kill(self, pid: int) -> None:
        target = self._dvt_target()

        async def go() -> None:
            async with self.pmd.DvtProvider(target) as dvt, self.pmd.ProcessControl(dvt) as pc:
                await pc.kill(pid)
        self._call(go())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            closing = getattr(self.lockdown, "close", None)
            if closing is not None:
                self._call(closing())
        self._loop.close()


def open_device(udid: str | None, label: str) -> IosDevice:
    return Pmd3Device(pymobiledevice3(), udid, label)


# ---------------------------------------------------------------- what the device says


def battery_facts(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """IOPMPowerSource (diagnostics) -> level_pct, charging, temperature_c (its Temperature is in 1/100 C), voltage_mv."""
    if not raw:
        return None
    cur, cap = raw.get("CurrentCapacity"), raw.get("MaxCapacity")
    level = None
    if isinstance(cur, int | float):
        level = round(cur * 100.0 / cap, 1) if isinstance(cap, int | float) and cap > 0 and cap != 100 else float(cur)
    temp = raw.get("Temperature")
    return {"level_pct": level, "charging": raw.get("IsCharging"), "external_power": raw.get("ExternalConnected"),
            "temperature_c": temp / 100.0 if isinstance(temp, int | float) else None, "voltage_mv": raw.get("Voltage"),
            "current_ma": raw.get("InstantAmperage")}


GAUGE_REFRESH_S = 5.0  # how often an iPhone refreshes its battery diagnostics: sets the shortest window


def battery_watts(raw: dict[str, Any] | None) -> float | None:
    """IOPMPowerSource -> discharge watts: InstantAmperage (mA; negative while discharging; some iOS versions send it
    as an unsigned 64-bit number) x Voltage (mV); negative while charging (IsCharging)."""
    if not raw:
        return None
    amps, volts = raw.get("InstantAmperage"), raw.get("Voltage")
    if not isinstance(amps, int | float) or not isinstance(volts, int | float):
        return None
    if amps >= 2**63:
        amps -= 2**64
    watts = abs(amps) * volts / 1e6
    return -watts if raw.get("IsCharging") else watts


def soak_reading(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """IOPMPowerSource -> a soak reading: capacity % (CurrentCapacity over MaxCapacity when that is not 100),
    the raw charge in uAh (AppleRawCurrentCapacity, mAh) when present, voltage, temperature, charging."""
    facts = battery_facts(raw)
    if not facts or not raw:
        return None
    mah = raw.get("AppleRawCurrentCapacity")
    return {"capacity_pct": facts["level_pct"], "charge_uah": mah * 1000 if isinstance(mah, int | float) else None,
            "voltage_uv": raw["Voltage"] * 1000 if isinstance(raw.get("Voltage"), int | float) else None,
            "temp_c": facts["temperature_c"], "status": "charging" if raw.get("IsCharging") else "discharging",
            "power_w": battery_watts(raw)}


class _Sampler:
    """Battery diagnostics read in the thread that drives the device (its adapter is not thread-safe): `poll()` is
    called from the idle waits and the result-polling loop and reads when a reading is due."""

    def __init__(self, dev: Any, interval_s: float) -> None:
        self.dev = dev
        self.poller = GaugePoller(lambda: battery_watts(dev.battery()), interval_s)
        self.poller.started = self.poller.clock()
        self.next = 0.0

    def poll(self) -> None:
        now = self.poller.clock()
        if now >= self.next:
            self.next = now + self.poller.interval_s
            try:
                w = self.poller.read()
            except Exception:
                w = None
            if w is None:
                self.poller.errors += 1
            else:
                self.poller.samples.append((self.poller.clock(), w))

    def wait(self, seconds: float, stop: threading.Event) -> list[float]:
        t0 = self.poller.clock()
        while self.poller.clock() - t0 < seconds:
            if stop.is_set():
                raise KeyboardInterrupt
            self.poll()
            stop.wait(min(0.05, self.poller.interval_s))
        return [t0, self.poller.clock()]


def window_event(w: dict[str, Any]) -> dict[str, Any]:
    """A window from the app's result.json -> the agent's `window` event (base64 of int64 ns, little-endian)."""
    if "latencies" in w:
        return {"event": "window", **w}
    lat = array("q", (int(round(float(x) * 1e6)) for x in w.get("latencies_ms") or []))
    if sys.byteorder == "big":  # pragma: no cover - the encoding is little-endian
        lat.byteswap()
    return {"event": "window", "index": int(w.get("index", 0)), "runs": len(lat), "seconds": float(w.get("seconds") or 0.0),
            "partial": bool(w.get("partial")), "byteorder": "little", "encoding": "base64-int64-ns",
            "latencies": base64.b64encode(lat.tobytes()).decode("ascii")}


# ---------------------------------------------------------------- the transport


class IosTransport:
    """Runs one model on the iPhone `udid` (None: the first attached) through the edgepool app; see the module doc.

    `timeout_s`: how long to wait for the app's result (default 2 x max_seconds + 180 s). `compute_units`: the
    Core ML compute units to ask the app for (the profile's). `device_factory(udid, label)`: what opens the
    device (tests pass a stand-in).
    """

    name = "ios"
    kind = Transport.IOS
    runs_agent = False

    def __init__(self, udid: str | None = None, timeout_s: float | None = None, *, bundle_id: str = BUNDLE_ID,
                 compute_units: str | None = None, poll_interval_s: float = 1.0, label: str | None = None,
                 device_factory: Callable[[str | None, str], IosDevice] | None = None) -> None:
        self.udid = udid
        self.timeout_s = timeout_s
        self.bundle_id = bundle_id
        self.compute_units = compute_units
        self.poll_interval_s = poll_interval_s
        self.label = label or ("ios://" + (udid or ""))
        self._open = device_factory or open_device
        self._stop = threading.Event()
        self._sampler: _Sampler | None = None

    def interrupt(self) -> None:
        """Stop waiting for the app, from any thread (the multi-device runner's Ctrl-C): `run` notices within one
        poll, kills the app, removes its folder and returns an AgentRun with `interrupted` set."""
        self._stop.set()

    def probe(self) -> dict[str, Any]:
        """devices.FACT_KEYS for the iPhone: name, iOS version, battery, whether the app is installed."""
        dev = self._open(self.udid, self.label)
        try:
            info = dev.info()
            raw = dev.battery()
            facts: dict[str, Any] = {
                "device": self.label, "transport": self.name,
                "os": f"iOS {info.get('ios_version')}" if info.get("ios_version") else None,
                "machine": info.get("product_type"), "cpu_model": info.get("product_type"), "cpu_count": None,
                "governor": None, "temperatures_c": None, "free_disk_bytes": None,
                "python": None, "numpy": None, "runtimes": {}, "edgetpu_delegate": None, "benchmark_binary": None,
                "power_sensors": ([{"name": "IOPMPowerSource", "source": "diagnostics: InstantAmperage x Voltage",
                                    "quantity": "current+voltage"}] if raw and "InstantAmperage" in raw else []),
                "ios_version": info.get("ios_version"), "ios_app": dev.app_installed(self.bundle_id),
                "device_name": info.get("name"), "udid": info.get("udid"), "battery": battery_facts(raw),
            }
            developer = getattr(dev, "developer_mode", None)
            facts["developer_mode"] = developer() if callable(developer) else None
            return facts
        finally:
            dev.close()

    def _timeout(self, request: dict[str, Any]) -> float:
        return float(self.timeout_s) if self.timeout_s else 2.0 * float(request.get("max_seconds") or 150.0) + 180.0

    def run(self, request: dict[str, Any], on_event: Callable[[dict[str, Any]], None] | None = None) -> AgentRun:
        """Measure `request["model_path"]` (a .mlpackage folder, .mlmodel or .tflite) in the app on the iPhone."""
        emit = on_event or (lambda ev: None)
        model = Path(request["model_path"])
        if not model.exists():
            raise InputError(f"{model} does not exist", "benchmark an export folder's model file")
        token = secrets.token_hex(4)
        rel = f"{WORK_DIR}/{token}"  # relative to Documents: what the app is told
        folder = f"{DOCUMENTS}/{rel}"  # the same folder, as AFC sees the container
        out = AgentRun()
        self._stop.clear()
        dev = self._open(self.udid, self.label)
        pid = None
        try:
            info = dev.info()
            env: dict[str, Any] = {"transport": self.name, "device": self.label, "device_name": info.get("name"),
                                   "ios_version": info.get("ios_version"), "product_type": info.get("product_type"),
                                   "udid": info.get("udid"), "os": f"iOS {info.get('ios_version')}",
                                   "machine": info.get("product_type"), "battery_before": battery_facts(dev.battery())}
            if not dev.app_installed(self.bundle_id):
                raise DeviceError(f"{self.label}: the edgepool benchmark app ({self.bundle_id}) is not installed on "
                                  f"{info.get('name') or 'the iPhone'}", APP_MISSING_HINT)
            app_request = {"protocol": PROTOCOL_VERSION, "model_path": f"{rel}/{model.name}",
                           "result_path": f"{rel}/result.json", "request_id": token,
                           "compute_units": self.compute_units,
                           "inputs": {"mode": "random", "seed": int((request.get("inputs") or {}).get("seed") or 0)},
                           **{k: request.get(k) for k in REQUEST_FIELDS if k in request}}
            energy, soak = request.get("energy"), request.get("soak")
            sampler = idle = None
            if energy:
                sampler, idle = self._idle_before(dev, energy, app_request, emit)
            soaker = self._soak_start(dev, soak, app_request) if soak else None
            emit({"event": "progress", "phase": "push", "done": 0, "total": 1})
            dev.put(self.bundle_id, [(f"{folder}/{model.name}", model),
                                     (f"{folder}/request.json", json.dumps(app_request, indent=1).encode())])
            emit({"event": "progress", "phase": "push", "done": 1, "total": 1})
            loaded_start = time.monotonic()
            pid = dev.launch(self.bundle_id, [REQUEST_ARG, f"{rel}/request.json"], {REQUEST_ENV: f"{rel}/request.json"})
            emit({"event": "hello", "runtime": "coreml", "transport": self.name, "device": self.label, "pid": pid,
                  "protocol": PROTOCOL_VERSION})
            self._sampler = sampler or soaker
            try:
                doc = self._wait(dev, f"{folder}/result.json", self._timeout(request))
            finally:
                self._sampler = None
            loaded_end = time.monotonic()
            if sampler is not None and idle is not None and energy:
                emit({"event": "progress", "phase": "idle after", "done": 0, "total": 1})
                sampler.wait(float(energy.get("settle_seconds") or 1.0), self._stop)
                idle["after"] = sampler.wait(self._idle_s(energy), self._stop)
                sampler.poller.stopped = sampler.poller.clock()
            env["battery_after"] = battery_facts(dev.battery())
            self._collect(doc, env, out, emit)
            if soaker is not None and out.result is not None:
                out.result["soak"] = self._soak_record(soaker, soak, doc, loaded_end - loaded_start)
            if sampler is not None and idle is not None and out.result is not None:
                w = doc.get("windows") or []
                runs = sum(int(x.get("runs") or len(x.get("latencies_ms") or [])) for x in w)
                runs += int((doc.get("warmup") or {}).get("runs") or 0)
                notes = [f"the iPhone refreshes its battery readings about every {GAUGE_REFRESH_S:g} s: windows are "
                         f"at least {3 * GAUGE_REFRESH_S:g} s",
                         "one loaded window: the app's launch to its result (its warmup and timed runs, and its start)"]
                out.result["power"] = power_record(sampler.poller, "ios:diagnostics",
                                                   "whole iPhone, from its battery gauge (IOPMPowerSource)", idle,
                                                   (loaded_start, loaded_end), runs, notes, 3 * GAUGE_REFRESH_S)
        except KeyboardInterrupt:
            out.interrupted = True
        finally:
            with contextlib.suppress(Exception):
                dev.remove(self.bundle_id, folder)
            if pid is not None and (out.interrupted or out.result is None):
                with contextlib.suppress(Exception):
                    dev.kill(pid)
            with contextlib.suppress(Exception):
                dev.close()
        return out

    def _soak_start(self, dev: IosDevice, soak: dict[str, Any], app_request: dict[str, Any]) -> _Sampler:
        """Battery soak: the app runs one window of the soak's length at the soak's rate (run_delay_s = 1/fps, a
        floor: the invoke's own time adds to it) while the battery diagnostics are read every refresh."""
        raw = dev.battery() or {}
        if (raw.get("IsCharging") or raw.get("ExternalConnected")) and not soak.get("allow_charging"):
            raise InputError(f"{self.label}: the iPhone is charging or on external power: a battery soak measures "
                             "the battery draining", "unplug it (keep it paired over Wi-Fi), or allow charging")
        seconds, fps = float(soak["seconds"]), float(soak["fps"])
        app_request.update(windows=1, min_seconds=seconds, max_seconds=seconds, runs=max(1, int(seconds * fps)),
                           run_delay_s=1.0 / fps)
        sampler = _Sampler(dev, GAUGE_REFRESH_S)
        sampler.poller.read = lambda: soak_reading(dev.battery())
        return sampler

    def _soak_record(self, soaker: _Sampler, soak: dict[str, Any], doc: dict[str, Any], elapsed: float) -> dict[str, Any]:
        p = soaker.poller
        runs = sum(int(w.get("runs") or len(w.get("latencies_ms") or [])) for w in doc.get("windows") or [])
        return {"seconds_requested": float(soak["seconds"]), "seconds": elapsed, "fps_requested": float(soak["fps"]),
                "inferences": runs, "fps": runs / elapsed if elapsed > 0 else None,
                "gauge": {"source": "ios:diagnostics (IOPMPowerSource)",
                          "notes": [f"readings refresh about every {GAUGE_REFRESH_S:g} s"]},
                "readings": [dict(r, t=t - p.started) for t, r in p.samples], "thermal": [],
                "allow_charging": bool(soak.get("allow_charging"))}

    def _idle_s(self, energy: dict[str, Any]) -> float:
        return max(float(energy.get("idle_seconds") or 5.0), 2 * GAUGE_REFRESH_S)

    def _idle_before(self, dev: IosDevice, energy: dict[str, Any], app_request: dict[str, Any],
                     emit: Callable[[dict[str, Any]], None]) -> tuple[_Sampler, dict[str, list[float]]]:
        """Energy: windows long enough for the gauge's refresh, then the idle window before the app starts."""
        windows = max(1, int(app_request.get("windows") or 1))
        need = max(float(energy.get("window_seconds") or 10.0), 3 * GAUGE_REFRESH_S) / windows
        app_request["min_seconds"] = max(float(app_request.get("min_seconds") or 0.0), need)
        sampler = _Sampler(dev, max(GAUGE_REFRESH_S / 4, 0.05))
        emit({"event": "progress", "phase": "idle before", "done": 0, "total": 1})
        sampler.wait(float(energy.get("settle_seconds") or 1.0), self._stop)
        return sampler, {"before": sampler.wait(self._idle_s(energy), self._stop)}

    def _wait(self, dev: IosDevice, remote: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        bad = None
        while True:
            if self._sampler is not None:
                self._sampler.poll()
            if self._stop.is_set():
                raise KeyboardInterrupt
            data = dev.read(self.bundle_id, remote)
            if data is not None:
                try:
                    doc = json.loads(data)
                except ValueError as e:  # still being written (the app should rename into place): try again
                    bad = str(e)
                else:
                    if isinstance(doc, dict):
                        return doc
                    bad = "not a JSON object"
            if time.monotonic() >= deadline:
                if bad:
                    raise DeviceError(f"{self.label}: the app's result.json is not valid JSON ({bad})",
                                      "update the edgepool iOS app: it writes result.json atomically")
                raise DeviceError(f"{self.label}: the edgepool app wrote no result within {timeout:g} s",
                                  "keep the iPhone unlocked with the app in front, and raise the timeout for slow models")
            self._stop.wait(self.poll_interval_s)

    def _collect(self, doc: dict[str, Any], env: dict[str, Any], out: AgentRun, emit: Callable[[dict[str, Any]], None]) -> None:
        if doc.get("event") == "error" or ("error" in doc and "latency_ms" not in doc and "windows" not in doc):
            err = doc.get("error") if isinstance(doc.get("error"), dict) else doc
            out.error = {"event": "error", "kind": err.get("kind") if err.get("kind") in ("input", "device") else "device",
                         "message": f"{self.label}: {err.get('message') or 'the app failed'}", "hint": err.get("hint") or ""}
            out.events.append(out.error)
            emit(out.error)
            return
        for w in doc.get("windows") or []:
            ev = window_event(w)
            out.windows.append(ev)
            emit(ev)
        result = {k: v for k, v in doc.items() if k != "windows"}
        result["event"] = "result"
        result.setdefault("protocol", PROTOCOL_VERSION)
        result.setdefault("runtime", "coreml")
        result.setdefault("windows_requested", len(out.windows))
        result.setdefault("windows_finished", sum(1 for w in out.windows if not w.get("partial")))
        result.setdefault("stopped", None)
        result["transport"] = self.name
        result["environment"] = {**env, **(doc.get("environment") or {})}
        out.result = result
        out.events.append(result)
        emit(result)
