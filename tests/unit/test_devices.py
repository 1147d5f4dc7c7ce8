"""edgepool.devices: device URIs, the registry of named devices (strict TOML), and what a device lacks per profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgepool import devices
from edgepool.errors import ExistsError, InputError, ProfileError
from edgepool.profiles import resolve
from edgepool.types import Transport


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGEPOOL_PROFILE_PATH", raising=False)


# ---------------------------------------------------------------- URIs


@pytest.mark.parametrize(("text", "uri", "fields"), [
    ("local", "local", {}),
    ("LOCAL", "local", {}),
    ("ssh://pi5", "ssh://pi5", {"host": "pi5", "user": None, "port": None, "python": None}),
    ("ssh://pi@raspberrypi.local", "ssh://pi@raspberrypi.local", {"user": "pi", "host": "raspberrypi.local"}),
    ("SSH://pi@Board-1:2222", "ssh://pi@Board-1:2222", {"host": "Board-1", "port": 2222}),  # host case kept (ssh_config)
    ("ssh://mendel@[fe80::1%eth0]:22?python=/opt/venv/bin/python3",
     "ssh://mendel@[fe80::1%eth0]:22?python=/opt/venv/bin/python3",
     {"host": "fe80::1%eth0", "port": 22, "python": "/opt/venv/bin/python3"}),
    ("ssh://pi@10.0.0.7/?python=/home/pi/my%20venv/bin/python", "ssh://pi@10.0.0.7?python=/home/pi/my%20venv/bin/python",
     {"python": "/home/pi/my venv/bin/python"}),
    ("ssh://pi@pi5?tmpdir=/var/tmp&python=/usr/bin/python3", "ssh://pi@pi5?python=/usr/bin/python3&tmpdir=/var/tmp",
     {"python": "/usr/bin/python3", "tmpdir": "/var/tmp"}),
    ("adb://", "adb://", {"serial": None}),
    ("adb://37211FDJH005XZ", "adb://37211FDJH005XZ", {"serial": "37211FDJH005XZ"}),
    ("adb://192.168.1.5:5555", "adb://192.168.1.5:5555", {"serial": "192.168.1.5:5555"}),
    ("ios://", "ios://", {"udid": None}),
    ("ios://00008130-001A2C3E0E38802E", "ios://00008130-001A2C3E0E38802E", {"udid": "00008130-001A2C3E0E38802E"}),
])
def test_uris_parse_to_one_record(text: str, uri: str, fields: dict) -> None:
    ref = devices.parse_device(text)
    assert ref.uri == uri
    for k, v in fields.items():
        assert getattr(ref, k) == v, k
    assert devices.parse_uri(ref.uri) == ref  # the canonical form parses to the same record


def test_ssh_destination_is_what_ssh_takes() -> None:
    assert devices.parse_ssh_uri("ssh://pi@pi5:2200").ssh_destination == "pi@pi5"
    assert devices.parse_ssh_uri("ssh://[::1]").ssh_destination == "::1"
    assert devices.parse_ssh_uri("ssh://[::1]").uri == "ssh://[::1]"


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("ssh://", "has no host", "ssh://[user@]host"),
    ("ssh://pi:secret@host", "holds a password", "ssh key"),
    ("ssh://-oProxyCommand=touch%20x", "is not a host name", "not starting with '-'"),
    ("ssh://-l@host", "is not a user name", "not starting with '-'"),
    ("ssh://host:99999", "is not a port number", "1 to 65535"),
    ("ssh://host:ssh", "is not a port number", "1 to 65535"),
    ("ssh://host/home/pi", "has a path", "?python="),
    ("ssh://host?pyton=/usr/bin/python3", "unknown option 'pyton'", "did you mean python?"),
    ("ssh://host?python=", "python is empty", "?python="),
    ("ssh://host?python=/a&python=/b", "python is given twice", "once"),
    ("ssh://fe80::1", "IPv6 host must be in brackets", "[fe80::1]"),
    ("ssh://host#x", "has a fragment", "#"),
    ("ssh://my host", "contains whitespace", "without spaces"),
    ("adb://bad serial!", "contains whitespace", ""),
    ("adb://-s", "is not a device serial", "adb devices -l"),
    ("adb://ABC/extra", "has more than a serial", "adb://SERIAL"),
    ("ios://not_a_udid", "is not a device UDID", "hex digits"),
    ("sh://host", "unknown device scheme 'sh://'", "did you mean ssh://?"),
    ("gopher://host", "unknown device scheme 'gopher://'", "local, ssh://"),
    ("", "no device given", "registered name"),
    ("pi@host", "neither a URI nor a device name", "ssh://pi@host"),
])
def test_bad_uris_are_one_clear_input_error(text: str, message: str, hint: str) -> None:
    with pytest.raises(InputError) as e:
        devices.parse_device(text)
    assert message in e.value.message
    assert hint in (e.value.hint or "")
    assert e.value.exit_code == 2
    assert "secret" not in e.value.message  # a password is never echoed


def test_unknown_name_says_did_you_mean() -> None:
    devices.add_device("pixel", "adb://37211FDJH005XZ")
    with pytest.raises(InputError) as e:
        devices.parse_device("pixle")
    assert e.value.message == "no device named 'pixle'"
    assert e.value.hint == "did you mean 'pixel'?"
    with pytest.raises(InputError) as e:
        devices.parse_device("zzz")
    assert "registered devices: pixel" in e.value.hint
    with pytest.raises(InputError) as e:
        devices.parse_device("adb")
    assert "adb://" in e.value.hint


def test_unknown_name_with_an_empty_registry() -> None:
    with pytest.raises(InputError) as e:
        devices.parse_device("pi5")
    assert "no devices are registered" in e.value.hint


# ---------------------------------------------------------------- registry


def test_add_list_remove_round_trip(tmp_path: Path) -> None:
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF")
    pi = devices.add_device("pi5", "ssh://pi@pi5.local?python=/home/pi/venv/bin/python", "raspberry-pi-5")
    phone = devices.add_device("pixel", "adb://37211FDJH005XZ", "pixel-8", benchmark_binary=binary)
    assert pi.name == "pi5" and pi.kind is Transport.SSH and pi.profile == "raspberry-pi-5"
    assert phone.benchmark_binary == str(binary.resolve())
    path = devices.registry_path()
    assert path == tmp_path / "xdg" / "edgepool" / "devices.toml"
    text = path.read_text()
    assert "schema_version = 1" in text and "[devices.pi5]" in text and 'profile = "pixel-8"' in text
    assert [d.name for d in devices.list_devices()] == ["pi5", "pixel"]
    assert devices.parse_device("pi5") == pi  # a registered name resolves to the same record
    assert devices.parse_device("pixel").serial == "37211FDJH005XZ"
    assert devices.parse_device("pixel").label == "pixel"
    removed = devices.remove_device("pi5")
    assert removed.uri == pi.uri
    assert [d.name for d in devices.list_devices()] == ["pixel"]


def test_add_refuses_to_overwrite_without_force() -> None:
    devices.add_device("pi5", "ssh://pi@pi5")
    with pytest.raises(ExistsError) as e:
        devices.add_device("pi5", "ssh://pi@other")
    assert "already registered (ssh://pi@pi5)" in e.value.message
    assert devices.add_device("pi5", "ssh://pi@other", force=True).uri == "ssh://pi@other"
    assert devices.get_device("pi5").uri == "ssh://pi@other"


@pytest.mark.parametrize(("name", "uri", "profile", "error", "text"), [
    ("local", "ssh://h", None, InputError, "not a valid device name"),
    ("ssh", "ssh://h", None, InputError, "not a valid device name"),
    ("a/b", "ssh://h", None, InputError, "not a valid device name"),
    ("pi", "local", None, InputError, "local is always there"),
    ("pi", "ssh://h", "pixel-8", InputError, "profile pixel-8 is reached over adb, but ssh://h is an ssh device"),
    ("pi", "ssh://h", "raspbery-pi-5", ProfileError, "no device profile named 'raspbery-pi-5'"),
    ("pi", "ftp://h", None, InputError, "unknown device scheme"),
])
def test_add_checks_name_uri_and_profile(name: str, uri: str, profile: str | None, error: type, text: str) -> None:
    with pytest.raises(error) as e:
        devices.add_device(name, uri, profile)
    assert text in e.value.message
    assert not devices.registry_path().exists()  # nothing written


def test_add_checks_the_benchmark_binary(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        devices.add_device("phone", "adb://", benchmark_binary=tmp_path / "missing")
    (tmp_path / "bm").write_bytes(b"x")
    with pytest.raises(InputError, match="adb and ssh devices only"):
        devices.add_device("iphone", "ios://", benchmark_binary=tmp_path / "bm")


def test_remove_unknown_name_says_did_you_mean() -> None:
    devices.add_device("pi5", "ssh://pi5")
    with pytest.raises(InputError) as e:
        devices.remove_device("pi4")
    assert e.value.hint == "did you mean 'pi5'?"


def _registry(text: str) -> Path:
    path = devices.registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message", "hint"), [
    ('[devices.pi]\nuri = "ssh://pi"\n', "schema_version: missing", "add schema_version = 1"),
    ('schema_version = 2\n', "version 2 is not supported", "schema_version = 1"),
    ('schema_version = 1\ndevice = 3\n', "device: unknown key", "did you mean devices?"),
    ('schema_version = 1\n[devices.pi]\nuri = "ssh://pi"\nprofil = "raspberry-pi-5"\n',
     "device 'pi' in device registry", "did you mean profile"),
    ('schema_version = 1\n[devices.pi]\nprofile = "raspberry-pi-5"\n', "uri: missing", 'add uri = "ssh://'),
    ('schema_version = 1\n[devices.pi]\nuri = 5\n', "uri: expected a string, got 5", ""),
    ('schema_version = 1\n[devices.pi]\nuri = "ssh://pi:pw@h"\n', "uri: ssh URI 'ssh://pi:***@h' holds a password", ""),
    ('schema_version = 1\n[devices.pi]\nuri = "local"\n', "local is not registered", ""),
    ('schema_version = 1\n[devices]\npi = "ssh://pi"\n', "devices.pi: expected a table", "[devices.pi]"),
    ('schema_version = 1\n[devices.pi\n', "not valid TOML", "fix the TOML syntax"),
])
def test_registry_is_read_strictly(text: str, message: str, hint: str) -> None:
    path = _registry(text)
    with pytest.raises(InputError) as e:
        devices.list_devices()
    assert message in e.value.message
    assert str(path) in e.value.message  # the file is named
    assert hint in (e.value.hint or "")


def test_registry_write_is_atomic_and_leaves_no_temp_files() -> None:
    devices.add_device("a", "adb://A")
    devices.add_device("b", "ios://")
    folder = devices.registry_path().parent
    assert sorted(p.name for p in folder.iterdir()) == ["devices.toml"]


# ---------------------------------------------------------------- profiles against facts

PI_FACTS_OK = {"transport": "ssh", "python": "3.11.2", "numpy": "1.26.4",
               "runtimes": {"tflite_runtime": "2.14.0", "ai_edge_litert": None, "tensorflow": None}}


def test_raspberry_pi_profile_lists_the_runtime_install_line() -> None:
    pi5 = resolve("raspberry-pi-5")
    assert devices.profile_gaps(PI_FACTS_OK, pi5) == []
    facts = {**PI_FACTS_OK, "runtimes": {"ai_edge_litert": "2.3.0"}}
    gaps = devices.profile_gaps(facts, pi5)
    assert [(g.what, g.fix) for g in gaps] == [
        ("tflite-runtime 2.14 (not installed)", "pip install tflite-runtime==2.14.0 'numpy<2'")]
    facts = {**PI_FACTS_OK, "numpy": "2.1.3"}
    assert [g.fix for g in devices.profile_gaps(facts, pi5)] == ["pip install 'numpy<2'"]
    facts = {**PI_FACTS_OK, "runtimes": {"tflite_runtime": "2.13.0"}}
    assert "found 2.13.0" in devices.profile_gaps(facts, pi5)[0].what


def test_board_without_python_is_told_about_benchmark_model() -> None:
    gaps = devices.profile_gaps({"transport": "ssh", "python": None}, resolve("raspberry-pi-5"))
    assert len(gaps) == 1 and "python3" in gaps[0].fix and "benchmark_model" in gaps[0].fix
    assert devices.profile_gaps({"transport": "ssh", "python": None, "benchmark_binary": "/opt/bm"},
                                resolve("raspberry-pi-5")) == []


def test_edge_tpu_profile_needs_the_delegate() -> None:
    coral = resolve("coral-dev-board")
    facts = {"transport": "ssh", "python": "3.9.2", "numpy": "1.19.5", "runtimes": {"tflite_runtime": "2.5.0.post1"}}
    gaps = devices.profile_gaps(facts, coral)
    assert [g.what for g in gaps] == ["the Edge TPU runtime (libedgetpu.so.1)"]
    assert devices.profile_gaps({**facts, "edgetpu_delegate": "/usr/lib/aarch64-linux-gnu/libedgetpu.so.1"}, coral) == []


def test_phone_and_iphone_profiles() -> None:
    gaps = devices.profile_gaps({"transport": "adb"}, resolve("pixel-8"))
    assert gaps[0].what == devices.BENCHMARK_BINARY_NEED
    assert devices.profile_gaps({"transport": "adb", "benchmark_binary": "/x"}, resolve("pixel-8")) == []
    iphone = resolve("iphone-15-pro")
    gaps = devices.profile_gaps({"transport": "ios", "ios_app": False, "ios_version": "16.7"}, iphone)
    assert [g.what.split(" (")[0] for g in gaps] == ["the edgepool benchmark app", "iOS 17 or later"]
    assert devices.profile_gaps({"transport": "ios", "ios_app": True, "ios_version": "17.5.1"}, iphone) == []


def test_check_profiles_takes_the_profiles_of_the_transport() -> None:
    checks = devices.check_profiles({"transport": "adb"}, Transport.ADB)
    assert [c.profile for c in checks] == ["pixel-8"]
    assert checks[0].to_dict()["ok"] is False
    names = {c.profile for c in devices.check_profiles(PI_FACTS_OK, Transport.SSH)}
    assert {"raspberry-pi-5", "raspberry-pi-4", "coral-dev-board"} <= names


def test_the_agents_probe_shape_is_understood() -> None:
    """`agent.py --probe` (what the ssh transport's probe returns) nests runtimes, the Edge TPU and the disk."""
    raw = {"transport": "ssh", "python": "3.11.2", "numpy": "2.0.2",
           "runtimes": {"ai_edge_litert": None, "tensorflow": None,
                        "tflite_runtime": {"version": "2.14.0", "importable": False,
                                           "error": "ImportError: numpy.core.multiarray failed to import"}},
           "edgetpu": {"library": "/usr/lib/aarch64-linux-gnu/libedgetpu.so.1", "pcie": False, "usb": True},
           "disk": {"path": "/tmp", "free_bytes": 123, "total_bytes": 456}}
    facts = devices.normalize_facts(raw)
    assert facts["runtimes"]["tflite_runtime"] == "2.14.0" and facts["free_disk_bytes"] == 123
    assert facts["edgetpu_delegate"].endswith("libedgetpu.so.1")
    gaps = devices.profile_gaps(raw, resolve("raspberry-pi-5"))
    assert [(g.what.split(" (")[0], g.fix) for g in gaps] == [
        ("tflite-runtime 2.14.0 is installed but does not load", "pip install 'numpy<2'")]
    assert "numpy.core.multiarray" in gaps[0].what


@pytest.mark.parametrize(("installed", "wanted", "ok"), [
    ("2.14.0", "2.14", True), ("2.5.0.post1", "2.5", True), ("2.15.0", "2.14", False), (None, "2.14", False),
    ("2.14", "2.14", True), ("2.1", "2.14", False),
])
def test_version_matches(installed: str | None, wanted: str, ok: bool) -> None:
    assert devices.version_matches(installed, wanted) is ok


# ---------------------------------------------------------------- this machine


def test_local_facts_have_the_documented_keys_and_load_no_tensorflow() -> None:
    code = ("import sys, edgepool.devices as d; f = d.local_facts(); missing = set(d.FACT_KEYS) - set(f) - "
            "{'ios_app', 'ios_version', 'power_sensors'}; assert not missing, missing; assert 'tensorflow' not in sys.modules; "
            "print(f['python'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("3.")


def test_thermal_zones_from_a_fake_tree(tmp_path: Path) -> None:
    z = tmp_path / "sys/class/thermal/thermal_zone0"
    z.mkdir(parents=True)
    (z / "temp").write_text("48312\n")
    (z / "type").write_text("cpu-thermal\n")
    assert devices.thermal_zones(tmp_path) == {"cpu-thermal": 48.312}


def test_host_tools_say_what_is_missing_and_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text("#!/bin/sh\necho 'Android Debug Bridge version 1.0.41'\n")
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)  # not installed, whatever this machine has
    tools = {t.name: t for t in devices.host_tools()}
    assert list(tools) == ["ssh", "adb", "pymobiledevice3", "edgetpu_compiler", "chromium"]
    assert tools["adb"].present and "Android Debug Bridge version 1.0.41" in tools["adb"].detail
    assert not tools["ssh"].present and tools["ssh"].install == "apt-get install openssh-client"
    assert "ssh:// devices" in tools["ssh"].disables
    assert not tools["pymobiledevice3"].present and tools["pymobiledevice3"].install == "pip install 'edgepool[ios]'"
    assert "not-compiled" in tools["edgetpu_compiler"].disables
    assert tools["chromium"].install == "apt-get install chromium"
