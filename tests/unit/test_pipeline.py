"""pipeline.py: typed outcomes that know whether they passed, and exports that find their run from anywhere."""

from __future__ import annotations

import json
import shutil

import pytest

from edgepool.errors import ExistsError, ModelError
from edgepool.pipeline import ConvertResult, ExportOutcome, convert, export, verify
from edgepool.profiles import resolve
from edgepool.recipes import load_recipe
from edgepool.runs import load_run
from edgepool.types import Status, Verification


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    dst = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run.path, dst)
    return load_run(dst)


def test_outcome_status_is_data():
    ok = ExportOutcome("x", export=object(), verification=Verification(Status.PASS))  # type: ignore[arg-type]
    ok.export = type("E", (), {"sidecar": {}})()
    assert ok.status == Status.PASS and ok.passed and ok.reason is None
    coral = ExportOutcome("coral", verification=Verification(Status.PASS))
    coral.export = type("E", (), {"sidecar": {"edgetpu": {"compiled": False}}})()
    assert coral.status == Status.NOT_COMPILED and coral.passed and "edgetpu_compiler" in coral.reason
    bad = ExportOutcome("y", verification=Verification(Status.FAIL, "agreement 0.9 < 0.98", "use int8-qat"))
    bad.export = ok.export
    assert bad.status == Status.FAIL and not bad.passed and bad.hint == "use int8-qat"
    err = ExportOutcome("z", error=ExistsError("export z already exists", "pass --force"))
    assert err.status == Status.ERROR and not err.passed and err.hint == "pass --force"
    assert not ConvertResult(None, [ok, err]).passed and ConvertResult(None, [ok, coral]).passed  # type: ignore[arg-type]


def test_convert_reports_an_existing_export_as_a_failure(run_copy):
    first = convert(run_copy, [resolve("host-cpu")])
    assert first.passed and first.outcomes[0].status == Status.PASS
    again = convert(run_copy, [resolve("host-cpu")])
    assert not again.passed and again.outcomes[0].status == Status.ERROR
    assert "already exists" in again.outcomes[0].reason and "force" in again.outcomes[0].hint
    from edgepool.cli._render import export_row

    assert "--force" in export_row(again.outcomes[0])["hint"]  # the CLI names the flag


def test_verify_finds_the_run_from_any_working_directory(run_copy, tmp_path, monkeypatch):
    out = export(run_copy, load_recipe("int8"))
    side = json.loads((out.export.path / "model.json").read_text())
    assert side["source_run"] == "../.."  # stored relative to the export folder
    other = tmp_path / "elsewhere"
    (other / "runs").mkdir(parents=True)
    monkeypatch.chdir(other)
    _, v = verify(out.export.path)
    assert v.status == Status.PASS and v.get("agreement") == out.verification.get("agreement")


def test_verify_refuses_a_run_whose_model_changed(run_copy, tiny_run):
    out = export(run_copy, load_recipe("int8"))
    # another run's model in its place: comparing would report a fake failure
    other = run_copy.path.parent / "other"
    shutil.copytree(tiny_run.path, other)
    (run_copy.path / "model.keras").write_bytes((other / "model.keras").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="different model.keras"):
        verify(out.export.path)
