"""The protocol's window logic with a fake clock (no runtime), options and the agent request."""

from __future__ import annotations

import pytest

from edgepool.bench import agent
from edgepool.bench.protocol import BenchmarkResult, BenchOptions, build_request, delegate_library
from edgepool.errors import InputError

MS = 1_000_000  # ns


class FakeDevice:
    """A clock in ns that only moves when the fake model runs (cost_ns per invoke) or sleeps."""

    def __init__(self, cost_ns: int, interrupt_at: int | None = None) -> None:
        self.now = 0
        self.cost = cost_ns
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.inputs: list[int] = []

    def clock(self) -> int:
        return self.now

    def invoke(self) -> None:
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        self.now += self.cost

    def sleep(self, s: float) -> None:
        self.now += int(s * 1e9)

    def set_input(self, i: int) -> None:
        self.inputs.append(i)


def test_phase_needs_both_min_runs_and_min_time():
    fast = FakeDevice(1 * MS)  # 1 ms: time is the binding limit -> 1000 runs for 1 s
    lat, n, elapsed, finished = agent.run_phase(fast.invoke, fast.clock, 50, 1000 * MS)
    assert (n, len(lat), finished) == (1000, 1000, True)
    assert elapsed == 1000 * MS and set(lat) == {1 * MS}
    slow = FakeDevice(100 * MS)  # 100 ms: the run count is the binding limit -> 50 runs (5 s)
    lat, n, elapsed, finished = agent.run_phase(slow.invoke, slow.clock, 50, 1000 * MS)
    assert (n, elapsed, finished) == (50, 5000 * MS, True)


def test_warmup_phase_keeps_only_the_first_latency():
    d = FakeDevice(2 * MS)
    lat, n, _, _ = agent.run_phase(d.invoke, d.clock, 1, 500 * MS, store=False)
    assert n == 250 and list(lat) == [2 * MS]


def test_delay_between_runs_is_not_timed():
    d = FakeDevice(1 * MS)
    lat, n, elapsed, _ = agent.run_phase(d.invoke, d.clock, 10, 0, delay_s=0.004, sleep=d.sleep)
    assert n == 10 and set(lat) == {1 * MS}
    assert elapsed == 10 * MS + 9 * 4 * MS  # no sleep after the last run


def test_windows_all_finish_and_inputs_cycle_across_windows():
    d = FakeDevice(10 * MS)
    seen = []
    wins, stopped = agent.run_windows(d.invoke, d.clock, 3, 20, 0.1, None, d.set_input, sleep=d.sleep,
                                      on_window=lambda w: seen.append((w["index"], len(w["latencies_ns"]))))
    assert stopped is None
    assert [w["runs"] for w in wins] == [20, 20, 20]
    assert seen == [(0, 20), (1, 20), (2, 20)]
    assert all(w["latencies_ns"] is None for w in wins)  # handed over, not kept
    assert d.inputs == list(range(60))


def test_max_seconds_keeps_finished_windows_and_drops_the_cut_one():
    d = FakeDevice(100 * MS)  # each window: 50 runs = 5 s
    wins, stopped = agent.run_windows(d.invoke, d.clock, 5, 50, 1.0, max_seconds=12.0)
    assert stopped == "max_seconds"
    assert [(w["index"], w["runs"], w["partial"]) for w in wins] == [(0, 50, False), (1, 50, False)]


def test_max_seconds_before_any_window_keeps_a_partial_one():
    d = FakeDevice(100 * MS)
    wins, stopped = agent.run_windows(d.invoke, d.clock, 5, 50, 1.0, max_seconds=2.0)
    assert stopped == "max_seconds"
    assert len(wins) == 1 and wins[0]["partial"] and wins[0]["runs"] == 20


def test_interrupt_keeps_finished_windows():
    d = FakeDevice(1 * MS, interrupt_at=25)  # during the third window of 10 runs
    wins, stopped = agent.run_windows(d.invoke, d.clock, 5, 10, 0.0)
    assert stopped == "interrupted"
    assert [w["runs"] for w in wins] == [10, 10]
    assert not any(w["partial"] for w in wins)


def test_options_validate():
    BenchOptions().validate()
    assert BenchOptions().problems() == []
    for bad in (dict(runs=0), dict(windows=0), dict(threads=0), dict(inputs="nope"), dict(max_seconds=0),
                dict(min_seconds=-1), dict(max_samples=0), dict(warmup_runs=-1), dict(warmup_min_seconds=-1),
                dict(run_delay_s=-1), dict(cooldown_s=-1)):
        (field,) = bad
        with pytest.raises(InputError) as e:
            BenchOptions(**bad).validate()
        # the library names its own field, never a CLI flag, and says what the value means
        assert field in e.value.message and "--" not in e.value.message and "--" not in e.value.hint
        assert e.value.hint and "later issue" not in str(e.value)
        assert [name for name, _ in BenchOptions(**bad).problems()] == [field]
    assert [n for n, _ in BenchOptions(runs=0, threads=0).problems()] == ["runs", "threads"]


def test_delegate_names():
    assert delegate_library("edgetpu").startswith("libedgetpu")
    assert delegate_library("xnnpack") is None
    assert delegate_library("/opt/lib/libfoo.so") == "/opt/lib/libfoo.so"
    with pytest.raises(InputError):
        delegate_library("warp-drive")


def test_request_carries_protocol_fields(tmp_path):
    opts = BenchOptions(runs=7, min_seconds=0.3, windows=2, affinity=[0], run_delay_s=0.01)
    req = build_request(tmp_path / "m.tflite", opts, 2, ["edgetpu", "xnnpack"], {"mode": "random", "seed": 0})
    assert req["protocol"] == agent.PROTOCOL_VERSION
    assert (req["runs"], req["min_seconds"], req["windows"], req["threads"]) == (7, 0.3, 2, 2)
    assert req["delegates"] == [{"library": delegate_library("edgetpu"), "options": {}}]
    assert req["affinity"] == [0] and req["run_delay_s"] == 0.01
    assert set(agent.DEFAULTS) <= set(req) | {"inputs"}


def test_stop_signal_waits_for_a_held_section(monkeypatch):
    monkeypatch.setitem(agent._SIG, "held", 0)
    monkeypatch.setitem(agent._SIG, "pending", False)
    monkeypatch.setitem(agent._SIG, "stopped", False)
    recorded = []
    with pytest.raises(agent.Stop):
        with agent._SignalsHeld():
            agent._on_stop_signal(2, None)  # arrives mid-section: must not raise here
            recorded.append("window")
    assert recorded == ["window"] and agent._SIG["stopped"]
    agent._on_stop_signal(2, None)  # a second signal while stopping is ignored


def _window_event(index: int, latencies_ns: list[int]) -> dict:
    import io
    import json
    from array import array

    buf = io.StringIO()
    agent.Emitter(buf).window({"index": index, "runs": len(latencies_ns), "seconds": 1.0,
                               "latencies_ns": array("q", latencies_ns), "partial": False})
    return json.loads(buf.getvalue())


def test_result_throughput_is_labelled_median_and_mean():
    """The table's headline is the median: `fps_median` = 1000 / median ms; `fps_mean` = 1000 / mean ms."""
    r = BenchmarkResult(name="m", model_path="m.tflite", format="tflite", recipe=None, device="local", profile=None,
                        model_size_bytes=1, threads=1, delegates=[], input_mode="random")
    r.add_window(_window_event(0, [17_900] * 48 + [400_000] * 2))
    r.add_window(_window_event(1, [17_900] * 49 + [400_000]))
    assert r.latency_ms["median"] == pytest.approx(0.0179)
    assert r.fps_median == pytest.approx(1000 / 0.0179)
    assert r.fps_mean == pytest.approx(1000 / r.latency_ms["mean"]) and r.fps_mean < r.fps_median
    d = r.to_dict()
    assert "fps" not in d and d["fps_median"] == r.fps_median and d["fps_mean"] == r.fps_mean
