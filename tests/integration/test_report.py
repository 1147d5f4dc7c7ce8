"""`edgepool report`: the HTML report of a run, opened in headless Chromium, and its edge cases.

The run is a copy of the session's tiny digits run with one real export (edgetpu-int8 for the coral-usb
profile: the Edge TPU partition is edgepool's prediction, the compiler is not installed here) and one real
local benchmark of it (a few short windows, energy from the host-cpu profile's power model: there is no power
sensor here), made through edgepool's own pipeline. The sweep test runs a one-configuration sweep.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from tests._browser import INSTALL_HINT, find_chromium, open_page

SECTIONS = ["Data and model", "Training", "Accuracy by class", "Exports", "Benchmarks",
            "Per-op cost and Edge TPU partition"]


@pytest.fixture(scope="module")
def reported_run(tiny_run, tmp_path_factory):
    """A private copy of the tiny run + an Edge TPU export + a short local benchmark of it, with energy."""
    from edgepool.bench.protocol import BenchOptions
    from edgepool.pipeline import benchmark, export
    from edgepool.profiles import resolve
    from edgepool.recipes import load_recipe
    from edgepool.runs import load_run

    dst = tmp_path_factory.mktemp("report") / "tiny-digits"
    shutil.copytree(tiny_run.path, dst)
    run = load_run(dst)
    prof = resolve("coral-usb")
    outcome = export(run, load_recipe(prof.recipe), profile=prof)
    assert outcome.passed, outcome.reason
    # host-cpu: this machine; energy without a power sensor here is the profile's model, labelled estimated
    options = BenchOptions(profile="host-cpu", runs=5, windows=3, min_seconds=0.02, warmup_runs=1,
                           warmup_min_seconds=0.01, max_samples=60, energy=True, energy_window_s=0.05, idle_seconds=0.05)
    results, saved = benchmark([outcome.export.path], options)
    assert saved and results[0].complete, results[0].error
    return run


@pytest.fixture(scope="module")
def report_file(reported_run):
    from typer.testing import CliRunner

    from edgepool.cli.main import app

    r = CliRunner().invoke(app, ["report", str(reported_run.path), "--json"])
    assert r.exit_code == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    return reported_run.path / "report.html", info


@pytest.mark.slow
def test_report_opens_in_headless_chromium(report_file, tmp_path):
    """The page loads offline in Chromium at a phone's width: every image decoded, no console error or
    exception, no request but the file and its data: images, no sideways scrolling; the screenshot is a real page."""
    from PIL import Image

    exe = find_chromium()
    if exe is None:  # never a skip: the report's promise is that it opens in a browser
        pytest.fail(f"no headless Chromium to open the report in: {INSTALL_HINT}", pytrace=False)
    path, info = report_file
    page = open_page(path, chromium=exe)
    (tmp_path / "report-phone.png").write_bytes(page.screenshot)  # kept with the test's tmp dir for a look
    assert page.console_errors == [] and page.exceptions == [] and page.failed_requests == []
    assert all(u.startswith(("data:image/png;base64,", page.url)) for u in page.requests), page.requests
    assert page.scripts == 0 and page.external_sheets == 0
    assert page.title == "edgepool report: tiny-digits" and page.sections == SECTIONS
    assert len(page.images) == info["images"] >= 6
    for img in page.images:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["shownWidth"] <= page.inner_width, img
    assert page.scroll_width <= page.inner_width == 390  # nothing wider than a phone: tables scroll in their box
    shot = Image.open(io.BytesIO(page.screenshot))
    assert shot.format == "PNG" and shot.width == 390 and shot.height > 3000
    colours = shot.convert("RGB").resize((97, 400)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page
    text = " ".join(page.text.split())
    for want in ("coral-usb", "edgetpu-int8", "not-compiled", "Edge TPU partition", "edgepool's prediction",
                 "latency histogram", "per class, worst first", "local"):
        assert want in text or want in path.read_text(), want


@pytest.mark.slow
def test_report_content(report_file, reported_run):
    """What the page says comes from the run's files: the export's verify.json, the benchmark's percentiles."""
    from edgepool.report.html import fmt_ms, fmt_pct
    from edgepool.runs import read_json

    path, info = report_file
    html = path.read_text()
    assert info["kind"] == "run" and info["sections"] == SECTIONS and info["notes"] == []
    verify = read_json(reported_run.export_dir("coral-usb") / "verify.json")
    assert fmt_pct(verify["agreement"]) in html and fmt_pct(verify["accuracy"]) in html
    res = read_json(reported_run.benchmarks()[-1])["results"][0]
    for key in ("median", "p90", "p95", "p99"):
        assert f"<td class=\"n\">{fmt_ms(res['latency_ms'][key])}</td>" in html, key
    energy = res["energy"]
    assert energy["kind"] == "estimated" and f"{energy['mj_per_inference']:.3g}" in html
    assert '<span class="b info" title="' in html and ">estimated</span>" in html and "how energy was obtained" in html
    assert 'name="generator" content="edgepool report' in html and "<script" not in html and "http://" not in html


def test_missing_pieces_are_notes(tiny_run, cli, tmp_path):
    """A run without exports or benchmarks still gets its report, with a short note for each missing piece."""
    out = tmp_path / "r.html"
    r = cli("report", tiny_run.path, "--out", out, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert any("no exports yet" in n for n in info["notes"]) and any("no benchmark results yet" in n for n in info["notes"])
    assert info["images"] == 3 and out.is_file() and not (tiny_run.path / "report.html").exists()
    html = out.read_text()
    assert "no exports yet" in html and "no benchmark results yet" in html


@pytest.mark.slow
def test_a_broken_benchmark_file_is_a_note(reported_run, cli, tmp_path):
    bad = reported_run.benchmarks_dir() / "zz-broken.json"
    bad.write_text("{not json")
    try:
        r = cli("report", reported_run.path, "--out", tmp_path / "r.html", "--json")
    finally:
        bad.unlink()
    assert r.exit_code == 0, r.stdout + r.stderr
    assert any("zz-broken.json" in n and "not valid JSON" in n for n in json.loads(r.stdout)["notes"])


def test_neither_a_run_nor_a_sweep(cli, tmp_path):
    (tmp_path / "stuff").mkdir()
    for target, says in ((tmp_path / "stuff", "neither an edgepool run nor a sweep directory"),
                         (tmp_path / "nothing", "does not exist")):
        r = cli("report", target)
        assert r.exit_code == 2 and says in r.stderr and "hint:" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert list((tmp_path / "stuff").iterdir()) == []


def test_out_never_replaces_a_file_that_is_not_a_report(tiny_run, cli, tmp_path):
    notes = tmp_path / "notes.html"
    notes.write_text("<p>mine</p>")
    r = cli("report", tiny_run.path, "--out", notes)
    assert r.exit_code == 2 and "not an edgepool report" in r.stderr and "--force" in r.stderr
    assert notes.read_text() == "<p>mine</p>"
    r = cli("report", tiny_run.path, "--out", tmp_path)
    assert r.exit_code == 2 and "is a directory" in r.stderr
    r = cli("report", tiny_run.path, "--out", notes, "--force")
    assert r.exit_code == 0 and "edgepool report" in notes.read_text()
    r = cli("report", tiny_run.path, "--out", notes)  # an edgepool report is regenerated without --force
    assert r.exit_code == 0 and "replaced" in r.stdout


def _check_in_browser(path):
    exe = find_chromium()
    if exe is None:
        pytest.fail(f"no headless Chromium to open the report in: {INSTALL_HINT}", pytrace=False)
    page = open_page(path, chromium=exe)
    assert page.console_errors == [] and page.exceptions == [] and page.failed_requests == []
    assert page.images and all(i["complete"] and i["naturalWidth"] > 0 for i in page.images)
    assert page.scroll_width <= page.inner_width
    return page


@pytest.mark.slow
def test_sweep_report(cli, tmp_path):
    """A real one-configuration sweep (1 epoch, latency estimated for raspberry-pi-5), its report in Chromium; then
    the same sweep.json without its pareto.png and per-group summary: the plot is drawn from sweep.json, notes say
    what is missing."""
    sweep = tmp_path / "sweep"
    r = cli("sweep", "--out", sweep, "--profile", "raspberry-pi-5", "--data", "digits", "--pool", "max", "--model", "tiny",
            "--seeds", "1", "--epochs", "1", "--jobs", "1")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert cli("report", sweep / "runs" / "tiny-max-w2-x1-s0").exit_code == 0  # a configuration's own run report
    r = cli("report", sweep, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert '<a href="runs/tiny-max-w2-x1-s0/report.html">tiny-max-w2-x1-s0</a>' in (sweep / "report.html").read_text()
    assert info["kind"] == "sweep" and info["images"] == 1 and info["notes"] == []
    assert info["sections"] == ["Recommendation per profile", "Accuracy vs latency", "Over seeds (mean ± spread)",
                                "Every configuration", "Settings"]
    page = _check_in_browser(sweep / "report.html")
    assert page.title == "edgepool sweep report: sweep"
    text = " ".join(page.text.split())
    assert "tiny-max-w2-x1-s0" in text and "raspberry-pi-5" in text and "estimated" in text

    doc = json.loads((sweep / "sweep.json").read_text())
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "sweep.json").write_text(json.dumps({k: v for k, v in doc.items() if k not in ("groups", "settings")}))
    r = cli("report", bare, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert info["images"] == 1 and any("no per-group summary" in n for n in info["notes"])
    _check_in_browser(bare / "report.html")
    (bare / "sweep.json").write_text("{}")  # a sweep that has not written anything yet
    r = cli("report", bare, "--json", "--out", tmp_path / "empty.html")
    assert r.exit_code == 0 and json.loads(r.stdout)["images"] == 0
