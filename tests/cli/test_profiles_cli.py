"""`edgepool profiles list | show | validate` through Typer's runner (real profiles, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepool._paths import data_dir
from tests._cli import run

SHIPPED = data_dir("device_profiles")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGEPOOL_PROFILE_PATH", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def test_list_json_has_every_profile() -> None:
    code, out, _ = run("profiles", "list", "--json")
    assert code == 0
    names = [p["name"] for p in json.loads(out)]
    assert names == sorted(p.stem for p in SHIPPED.glob("*.toml"))


def test_list_table() -> None:
    code, out, _ = run("profiles", "list")
    assert code == 0
    assert "raspberry-pi-5" in out and "edgetpu-int8" in out and "built-in" in out
    assert "iOS17" in out and "ssh" in out  # Core ML target and transport shown as their names


def test_show_text_and_json() -> None:
    code, out, _ = run("profiles", "show", "coral-usb")
    assert code == 0
    assert "Coral USB Accelerator" in out and "peak_gmacs_int8" in out and "datasheet:" in out
    code, out, _ = run("profiles", "show", "coral-usb", "--json")
    d = json.loads(out)
    assert code == 0 and d["runtime"] == "edgetpu" and d["delegates"] == ["edgetpu"]
    assert set(d["sources"]) >= {"peak_gmacs_int8", "active_power_w"}


def test_show_unknown_is_exit_2_with_hint() -> None:
    code, _, err = run("profiles", "show", "raspbery-pi-5")
    assert code == 2
    assert "no device profile named 'raspbery-pi-5'" in err and "raspberry-pi-5" in err


def test_show_prints_shadow_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "profiles"
    user.mkdir()
    (user / "raspberry-pi-5.toml").write_text((SHIPPED / "raspberry-pi-5.toml").read_text())
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(user))
    code, _, err = run("profiles", "show", "raspberry-pi-5")
    assert code == 0
    assert f"notice: profile raspberry-pi-5 from {user / 'raspberry-pi-5.toml'} shadows the built-in one" in err.replace("\n", "")


def test_validate_one_line_per_file_and_exit_2(tmp_path: Path) -> None:
    good = SHIPPED / "raspberry-pi-4.toml"
    bad = tmp_path / "bad-board.toml"
    bad.write_text(good.read_text().replace("ram_budget_mb = 256", "ram_budget_gb = 1"))
    code, out, _ = run("profiles", "validate", str(good), str(bad))
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("ok: ") and "raspberry-pi-4" in lines[0]
    assert lines[1].startswith("invalid: ") and "ram_budget_gb" in lines[1] and str(bad) in lines[1]
    code, out, _ = run("profiles", "validate", *map(str, sorted(SHIPPED.glob("*.toml"))))
    assert code == 0 and out.count("ok: ") == len(list(SHIPPED.glob("*.toml")))


def test_list_flags_a_broken_user_profile_and_lists_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "profiles"
    user.mkdir()
    (user / "my-board.toml").write_text((SHIPPED / "raspberry-pi-5.toml").read_text())
    bad = user / "bad-board.toml"
    bad.write_text((SHIPPED / "raspberry-pi-4.toml").read_text().replace("ram_budget_mb = 256", "ram_budget_gb = 1"))
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(user))
    code, out, err = run("profiles", "list")
    assert code == 2
    assert "my-board" in out and "raspberry-pi-5" in out and "bad-board" not in out
    flagged = [line for line in err.splitlines() if line.startswith("invalid: ")]
    assert len(flagged) == 1 and str(bad) in flagged[0] and "ram_budget_gb" in flagged[0]
    code, out, err = run("profiles", "list", "--json")
    assert code == 2
    names = [p["name"] for p in json.loads(out)]
    assert "my-board" in names and "bad-board" not in names and len(names) == len(list(SHIPPED.glob("*.toml"))) + 1
    assert err.count("invalid: ") == 1


def test_list_notices_shadowing_user_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "profiles"
    user.mkdir()
    (user / "host-cpu.toml").write_text((SHIPPED / "host-cpu.toml").read_text())
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(user))
    code, out, err = run("profiles", "list")
    assert code == 0 and "user (shadows built-in)" in out
    assert f"notice: profile host-cpu from {user / 'host-cpu.toml'} shadows the built-in one" in err.replace("\n", "")
