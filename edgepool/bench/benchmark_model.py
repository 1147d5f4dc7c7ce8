"""Read the output of LiteRT / TFLite's `benchmark_model` into the agent's result fields.

Where a device has no Python (an Android phone; a board where the user prefers it), edgepool runs
Google's own static `benchmark_model` binary and reads what it prints. `parse_benchmark_model(text)`
takes its stdout and stderr together and returns the fields of the agent's `result` event that the
binary reports (see `edgepool/bench/agent.py`), plus what only the binary knows (delegation).

What the binary prints, from its source (tensorflow/lite/tools/benchmark/, now
google-ai-edge/LiteRT tflite/tools/benchmark/ and litert/tools/):

- every log line of the classic tool is `INFO: <text>` on stdout (`tflite/tools/logging.h`; releases
  before the prefix print the bare text; on Android the same text also goes to logcat as
  `I/tflite  ( pid): <text>`, which this parser reads as well);
- `Initialized session in 2.517ms.`; `The input model file size (MB): 4.27635` (bytes / 1e6);
- per phase `Running benchmark for at least N iterations and at least S seconds but terminate if
  exceeding M seconds.` followed by the phase's statistics in microseconds, `Stat::OutputToStream`:
  `count=50 first=209891 curr=209739 min=209739 max=210599 avg=210028 std=221`, or
  `count=1 curr=11403859` / `count=5 curr=120(all same)` when all runs took the same time; newer
  releases (StatWithPercentiles) append ` p5=... median=... p95=...`. The first phase is the warmup,
  the second the timed runs. `std` is the population standard deviation; percentiles are order
  statistics (`nth_element`, no interpolation). Numbers use C++ stream formatting (6 significant
  digits: `avg=8680.33`, `1.14039e+07`);
- `Inference timings in us: Init: 2517, First inference: 217409, Warmup (avg): 213058, Inference (avg): 210028`;
- memory, which changed between releases (both are deltas of the process's peak RSS, getrusage
  ru_maxrss, in MiB): older releases `Peak memory footprint (MB): init=6.44141 overall=64.8633`,
  newer ones `Memory footprint delta from the start of the tool (MB): init=81.3125 overall=115.211`,
  and with `--report_peak_memory_footprint=true`
  `Overall peak memory footprint (MB) via periodic monitoring: 120.5` (the absolute peak) followed on
  Linux by `- VmRSS              : 118 MB`;
- delegation, logged by the interpreter (`tflite/core/subgraph.cc`) on stderr:
  `Replacing 792 out of 836 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 21 partitions
  for subgraph 0 (main).` (older: `... for the whole graph.`, `... for subgraph 0.`, oldest without
  `out of N`), and by the tool: `Explicitly applied GPU delegate, and the model graph will be
  completely executed by the delegate.` (or `partially executed ... w/ N delegate kernels.`, or
  `Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.`);
- failures: `ERROR: <text>` lines and `Benchmarking failed.`

LiteRT's newer `benchmark_model` (litert/tools/benchmark_litert_model.h) prints milliseconds in a block
`========== BENCHMARK RESULTS ==========` with `Model initialization: 45.32 ms`,
`Warmup (first): 120.45 ms` (its README shows `First inference:`), `Warmup (avg): 98.76 ms (1 runs)`,
`Inference (avg): 85.23 ms (50 runs)`, `Inference (min|max): ... ms`, `Inference (std): 3.21`,
`Throughput: 12.45 MB/s`, `Init footprint: 25.60 MB`, `Overall footprint: 32.40 MB`,
`Peak memory: 35.20 MB`; each line behind `INFO: [file:line] `. It still prints the `count=` lines.

Standard library only.
"""

from __future__ import annotations

import math
import re
from typing import Any

MIB = 1024 * 1024
TOOL = "benchmark_model"
FORMAT_CLASSIC = "classic"  # "Inference timings in us: ..." (TFLite / LiteRT tflite/tools/benchmark)
FORMAT_LITERT = "litert"  # "========== BENCHMARK RESULTS ==========" in ms (LiteRT litert/tools)

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations and at least (" + _NUM + r") seconds")
_KV = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=(" + _NUM + r")")
_TIMINGS = re.compile(
    r"Inference timings in us: Init: (" + _NUM + r"), First inference: (" + _NUM + r"), "
    r"Warmup \(avg\): (" + _NUM + r"), Inference \(avg\): (" + _NUM + r")"
)
_INIT_SESSION = re.compile(r"Initialized session in (" + _NUM + r") ?ms")
_MODEL_SIZE = re.compile(r"The input model file size \(MB\): (" + _NUM + r")")
_MEM_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=(" + _NUM + r") overall=(" + _NUM + r")")
_MEM_PEAK_OLD = re.compile(r"Peak memory footprint \(MB\): init=(" + _NUM + r") overall=(" + _NUM + r")")
_MEM_MONITOR = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (" + _NUM + r")")
_VMRSS = re.compile(r"- VmRSS\s*:\s*(\d+) MB")
_REPLACING = re.compile(
    r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]*)\) node, yielding (\d+) partitions"
    r"(?: for (?:(the whole graph)|subgraph (\d+)(?: \(([^)]*)\))?))?"
)
_EXPLICIT = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) executed"
                       r"(?: by the delegate w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
# LiteRT (litert/tools) block, milliseconds
_L_INIT = re.compile(r"Model initialization:\s*(" + _NUM + r") ms")
_L_FIRST = re.compile(r"(?:Warmup \(first\)|First inference):\s*(" + _NUM + r") ms")
_L_WARM = re.compile(r"Warmup \(avg\):\s*(" + _NUM + r") ms(?: \((\d+) runs\))?")
_L_AVG = re.compile(r"Inference \(avg\):\s*(" + _NUM + r") ms(?: \((\d+) runs\))?")
_L_MIN = re.compile(r"Inference \(min\):\s*(" + _NUM + r") ms")
_L_MAX = re.compile(r"Inference \(max\):\s*(" + _NUM + r") ms")
_L_STD = re.compile(r"Inference \(std\):\s*(" + _NUM + r")")
_L_THROUGHPUT = re.compile(r"Throughput:\s*(" + _NUM + r") MB/s")
_L_INIT_MEM = re.compile(r"Init footprint:\s*(" + _NUM + r") MB")
_L_OVERALL_MEM = re.compile(r"Overall footprint:\s*(" + _NUM + r") MB")
_L_PEAK_MEM = re.compile(r"Peak memory:\s*(" + _NUM + r") MB")

# Param echo lines ("Num threads: [4]") -> request-like names (from LOG_BENCHMARK_PARAM / LOG_TOOL_PARAM)
PARAM_NAMES = {
    "Graph": "graph", "Num threads": "num_threads", "#threads used for CPU inference": "num_threads",
    "Min num runs": "num_runs", "Min runs duration (seconds)": "min_secs", "Max runs duration (seconds)": "max_secs",
    "Min warmup runs": "warmup_runs", "Min warmup runs duration (seconds)": "warmup_min_secs",
    "Inter-run delay (seconds)": "run_delay", "Use xnnpack": "use_xnnpack", "Use gpu": "use_gpu",
    "Use NNAPI": "use_nnapi", "Use Hexagon": "use_hexagon", "Use CoreML": "use_coreml",
    "Report the peak memory footprint": "report_peak_memory_footprint", "Benchmark name": "benchmark_name",
}
LATENCY_KEYS = ("median", "p90", "p95", "p99", "mean", "std", "min", "max")  # stats.LatencyStats, in ms


def _f(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _stat(line: str) -> dict[str, Any]:
    """One `count=...` line -> {count, first, curr, min, max, avg, std, p5, median, p95} (µs); all-same filled in."""
    kv = {k: _f(v) for k, v in _KV.findall(line)}
    out: dict[str, Any] = {"count": int(kv.get("count") or 0)}
    out.update({k: kv.get(k) for k in ("first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")})
    if out["count"] and out["min"] is None and out["curr"] is not None:  # "count=N curr=X" or "(all same)"
        x = out["curr"]
        out.update(first=x if out["first"] is None else out["first"], min=x, max=x, avg=x, std=0.0)
    return out


def _latency_ms(stat: dict[str, Any]) -> dict[str, float | None]:
    """A phase's statistics in the shape of `stats.LatencyStats.to_dict()` (ms), plus p5 / first / last.
    Keys the binary does not print (p90, p99; median / p5 / p95 before StatWithPercentiles) are None."""
    lat: dict[str, float | None] = dict.fromkeys(LATENCY_KEYS)
    lat.update(mean=_ms(stat["avg"]), std=_ms(stat["std"]), min=_ms(stat["min"]), max=_ms(stat["max"]),
               median=_ms(stat["median"]), p95=_ms(stat["p95"]))
    lat.update(p5=_ms(stat["p5"]), first=_ms(stat["first"]), last=_ms(stat["curr"]))
    return lat


def _strip(line: str) -> tuple[str, str]:
    """(severity, message) of a log line: logcat, `INFO: ` / `VERBOSE: ` / `ERROR: ` and LiteRT's `[file:line] `
    prefixes removed; severity is "" for a bare line (releases before the prefix, a stats line)."""
    text = line.strip()
    text = re.sub(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+(?:\d+\s+\d+\s+)?", "", text)  # logcat time (pid tid)
    severity = ""
    m = re.match(r"^([VDIWEF])[/ ]\s*(?:tflite|litert|tflite_bm)\s*(?:\(\s*\d+\))?\s*:\s?", text)
    if m:
        severity = {"E": "ERROR", "F": "FATAL", "W": "WARN"}.get(m.group(1), "INFO")
        text = text[m.end():]
    m = re.match(r"^(INFO|VERBOSE|WARN|WARNING|ERROR|FATAL): ?", text)
    if m:
        severity = m.group(1)
        text = text[m.end():]
    return severity, re.sub(r"^\[[\w.+-]+:\d+\] ", "", text)


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """benchmark_model's stdout + stderr -> the agent's result fields it reports, and its delegation.

    Returns {"tool", "output_format" ("classic" | "litert" | None when no timings were found),
    "init_ms", "first_inference_ms", "warmup" {runs, seconds (None), first_ms, mean_ms},
    "latency_ms" {median, p90, p95, p99, mean, std, min, max, p5, first, last} (None where not printed),
    "runs", "memory" {init_footprint_delta_bytes, overall_footprint_delta_bytes, peak_rss_bytes,
    vm_rss_bytes, model_size_bytes, source}, "model_size_bytes", "throughput_mb_s", "delegation" (one
    entry per "Replacing" line), "delegate_coverage" {delegate kernel name: replaced / total nodes of the
    main graph}, "delegates_applied", "params" (echoed flags), "errors", "failed", "notes"}.
    """
    lines = text.splitlines()
    phases: list[dict[str, Any]] = []  # one per "Running benchmark ..." line, with its count= stats
    loose: list[dict[str, Any]] = []  # count= lines seen before any "Running" line (a truncated log)
    out: dict[str, Any] = {
        "tool": TOOL, "output_format": None, "init_ms": None, "first_inference_ms": None,
        "warmup": {"runs": None, "seconds": None, "first_ms": None, "mean_ms": None},
        "latency_ms": None, "runs": None,
        "memory": {"init_footprint_delta_bytes": None, "overall_footprint_delta_bytes": None, "peak_rss_bytes": None,
                   "vm_rss_bytes": None, "model_size_bytes": None, "source": None},
        "model_size_bytes": None, "throughput_mb_s": None, "delegation": [], "delegate_coverage": {},
        "delegates_applied": [], "params": {}, "errors": [], "failed": False, "notes": [],
    }
    timings = None
    litert: dict[str, Any] = {}
    session_ms = None
    for raw in lines:
        severity, line = _strip(raw)
        if not line:
            continue
        m = _RUNNING.search(line)
        if m:
            phases.append({"min_runs": int(m.group(1)), "min_secs": _f(m.group(2)), "stat": None})
            continue
        if line.startswith("count="):  # a phase's statistics (op profiling's "Timings (microseconds): count=" is not)
            stat = _stat(line)
            if phases and phases[-1]["stat"] is None:
                phases[-1]["stat"] = stat
            elif not phases:
                loose.append(stat)
            continue
        if (m := _TIMINGS.search(line)) is not None:
            timings = [_f(g) for g in m.groups()]
            continue
        if (m := _INIT_SESSION.search(line)) is not None:
            session_ms = _f(m.group(1))
        elif (m := _MODEL_SIZE.search(line)) is not None:
            size = _f(m.group(1))
            out["model_size_bytes"] = None if size is None else int(round(size * 1e6))
        elif (m := _MEM_DELTA.search(line)) is not None:
            _mem(out, m, "footprint delta (MB)")
        elif (m := _MEM_PEAK_OLD.search(line)) is not None:
            _mem(out, m, "peak memory footprint (MB), older releases")
        elif (m := _MEM_MONITOR.search(line)) is not None:
            peak = _f(m.group(1))
            out["memory"]["peak_rss_bytes"] = None if peak is None else int(round(peak * MIB))
        elif (m := _VMRSS.search(line)) is not None:
            out["memory"]["vm_rss_bytes"] = int(m.group(1)) * MIB
        elif (m := _REPLACING.search(line)) is not None:
            out["delegation"].append(_delegation(m))
        elif (m := _EXPLICIT.search(line)) is not None:
            out["delegates_applied"].append({"delegate": m.group(1), "execution": "complete" if m.group(2) == "completely"
                                             else "partial", "kernels": int(m.group(3)) if m.group(3) else None})
        elif (m := _NOT_APPLIED.search(line)) is not None:
            out["delegates_applied"].append({"delegate": m.group(1), "execution": "none", "kernels": 0})
        elif _litert_line(line, litert):
            pass
        elif severity in ("ERROR", "FATAL"):
            out["errors"].append(line)
            out["failed"] = out["failed"] or "Benchmarking failed" in line
        elif "Benchmarking failed" in line:
            out["failed"] = True
        else:
            _param(line, out)
    _timings(out, phases, loose, timings, litert, session_ms)
    _coverage(out)
    if out["output_format"] is None and not out["errors"]:
        out["errors"].append("no benchmark results in the output")
    out["failed"] = out["failed"] or out["output_format"] is None
    return out


def _mem(out: dict[str, Any], m: re.Match[str], source: str) -> None:
    init, overall = _f(m.group(1)), _f(m.group(2))
    mem = out["memory"]
    mem["init_footprint_delta_bytes"] = None if init is None else int(round(init * MIB))
    mem["overall_footprint_delta_bytes"] = None if overall is None else int(round(overall * MIB))
    mem["source"] = f"benchmark_model: {source}: change of the process's peak RSS (getrusage) since the tool started"


def _delegation(m: re.Match[str]) -> dict[str, Any]:
    nodes, total, name, parts, whole, subgraph, subname = m.groups()
    return {"delegate": name, "nodes": int(nodes), "total_nodes": int(total) if total else None,
            "partitions": int(parts), "subgraph": int(subgraph) if subgraph is not None else (0 if whole else None),
            "subgraph_name": subname}


def _coverage(out: dict[str, Any]) -> None:
    """Per delegate: replaced / total nodes of its first line on the main graph (subgraph 0, the whole graph, or
    a line that names no subgraph)."""
    cov: dict[str, float] = {}
    for d in out["delegation"]:
        if d["subgraph"] not in (0, None) or d["delegate"] in cov or not d["total_nodes"]:
            continue
        cov[d["delegate"]] = d["nodes"] / d["total_nodes"]
    out["delegate_coverage"] = cov


def _litert_line(line: str, litert: dict[str, Any]) -> bool:
    for key, rx in (("init", _L_INIT), ("first", _L_FIRST), ("warm", _L_WARM), ("avg", _L_AVG), ("min", _L_MIN),
                    ("max", _L_MAX), ("std", _L_STD), ("throughput", _L_THROUGHPUT), ("init_mem", _L_INIT_MEM),
                    ("overall_mem", _L_OVERALL_MEM), ("peak_mem", _L_PEAK_MEM)):
        m = rx.search(line)
        if m:
            litert[key] = [g for g in m.groups()]
            return True
    return "BENCHMARK RESULTS" in line or line.strip("=") == "" or line == "Memory Usage:"


def _param(line: str, out: dict[str, Any]) -> None:
    p = re.match(r"^(.+?): \[(.*)\]$", line)
    if p and p.group(1) in PARAM_NAMES:
        text = p.group(2)
        value: Any = text
        if re.fullmatch(r"-?\d+", text):
            value = int(text)
        elif re.fullmatch(_NUM, text):
            value = float(text)
        out["params"][PARAM_NAMES[p.group(1)]] = value


def _timings(out: dict[str, Any], phases: list[dict[str, Any]], loose: list[dict[str, Any]], timings: list[Any] | None,
             litert: dict[str, Any], session_ms: float | None) -> None:
    if phases:  # the first phase is the warmup, the second the timed runs
        warm_stat = phases[0]["stat"]
        run_stat = phases[1]["stat"] if len(phases) > 1 else None
    else:  # statistics without their "Running benchmark" lines: warmup then runs, or the runs alone
        warm_stat = loose[0] if len(loose) >= 2 else None
        run_stat = loose[-1] if loose else None
    if timings is not None:
        out["output_format"] = FORMAT_CLASSIC
        init_us, first_us, warm_avg_us, inf_avg_us = timings
        out["init_ms"], out["first_inference_ms"] = _ms(init_us), _ms(first_us)
        out["warmup"]["mean_ms"] = _ms(warm_avg_us)
        if run_stat is None and inf_avg_us is not None:
            run_stat = {"count": None, "first": None, "curr": None, "min": None, "max": None, "avg": inf_avg_us,
                        "std": None, "p5": None, "median": None, "p95": None}
    elif litert.get("avg"):
        out["output_format"] = FORMAT_LITERT
        out["init_ms"] = _f(litert.get("init", [None])[0])
        out["first_inference_ms"] = _f(litert.get("first", [None])[0])
        warm = litert.get("warm") or [None, None]
        out["warmup"]["mean_ms"] = _f(warm[0])
        if warm[1]:
            out["warmup"]["runs"] = int(warm[1])
        if run_stat is None:
            avg, runs = litert["avg"]
            run_stat = {"count": int(runs) if runs else None, "first": None, "curr": None, "p5": None, "median": None,
                        "p95": None, "avg": _us(avg), "min": _us(_first(litert, "min")), "max": _us(_first(litert, "max")),
                        "std": _us(_first(litert, "std"))}
        out["throughput_mb_s"] = _f(_first(litert, "throughput"))
        mem = out["memory"]
        for key, field in (("init_mem", "init_footprint_delta_bytes"), ("overall_mem", "overall_footprint_delta_bytes"),
                           ("peak_mem", "peak_rss_bytes")):
            v = _f(_first(litert, key))
            if v is not None:
                mem[field] = int(round(v * MIB))
        if mem["init_footprint_delta_bytes"] is not None:
            mem["source"] = ("benchmark_model (LiteRT): init / overall footprint: change of the process's peak RSS "
                             "(getrusage) since the tool started")
    elif run_stat is not None:
        out["output_format"] = FORMAT_CLASSIC  # a log cut after the statistics: the count= lines still hold them
    if out["init_ms"] is None and session_ms is not None:
        out["init_ms"] = session_ms
    if warm_stat is not None:
        out["warmup"]["runs"] = warm_stat["count"]
        out["warmup"]["first_ms"] = _ms(warm_stat["first"])
        if warm_stat["avg"] is not None:
            out["warmup"]["mean_ms"] = _ms(warm_stat["avg"])
        if out["first_inference_ms"] is None:
            out["first_inference_ms"] = _ms(warm_stat["first"])
    if run_stat is not None and run_stat.get("avg") is not None:
        out["latency_ms"] = _latency_ms(run_stat)
        out["runs"] = run_stat["count"]
        notes = ["latency from benchmark_model's own statistics: one timed phase, no raw latencies; std is the "
                 "population standard deviation"]
        if run_stat.get("median") is None:
            notes.append("this benchmark_model release prints no percentiles: median, p90, p95 and p99 are unknown")
        else:
            notes.append("p5 / median / p95 are order statistics (no interpolation); p90 and p99 are not printed")
        out["notes"].extend(notes)
    out["memory"]["model_size_bytes"] = out["model_size_bytes"]


def _first(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v[0] if v else None


def _us(ms_text: str | float | None) -> float | None:
    v = _f(ms_text) if isinstance(ms_text, str) else ms_text
    return None if v is None else v * 1000.0


def result_record(parsed: dict[str, Any], *, transport: str, model_size_bytes: int, threads: int | None,
                  delegates: list[str], requested_runs: int, environment: dict[str, Any],
                  runtime_version: str | None = None) -> dict[str, Any]:
    """The agent's `result` event fields from a successful parse (shared by every transport that runs the binary).

    There are no windows (`windows_requested` 0, so `BenchmarkResult.apply_result` calls a finished run complete);
    `latency_ms` / `runs` hold the binary's own statistics; `stopped` is "max_seconds" when fewer runs than
    `requested_runs` were made (the binary's max_secs); inputs were random, so there is no accuracy.
    """
    runs = parsed["runs"]
    return {
        "event": "result", "protocol": 1, "runtime": TOOL, "runtime_version": runtime_version, "tool": TOOL,
        "output_format": parsed["output_format"], "transport": transport, "model_size_bytes": model_size_bytes,
        "threads": threads, "delegates": list(delegates), "input_mode": "random", "init_ms": parsed["init_ms"],
        "first_inference_ms": parsed["first_inference_ms"], "warmup": parsed["warmup"],
        "latency_ms": parsed["latency_ms"], "runs": runs, "windows_requested": 0, "windows_finished": 0,
        "stopped": "max_seconds" if runs is not None and runs < requested_runs else None,
        "accuracy": None, "nonfinite_outputs": None, "outputs_checked": None, "memory": parsed["memory"],
        "delegation": parsed["delegation"], "delegate_coverage": parsed["delegate_coverage"],
        "delegates_applied": parsed["delegates_applied"],
        "notes": [*parsed["notes"], "inputs are random values (benchmark_model): accuracy is not measured"],
        "environment": {**environment, "runtime": TOOL, "runtime_version": runtime_version,
                        "tool_params": parsed["params"]},
    }


def command_line(binary: str, model: str, *, threads: int | None, delegates: list[str], warmup_runs: int,
                 warmup_min_seconds: float, runs: int, min_seconds: float, max_seconds: float,
                 run_delay_s: float = 0.0) -> list[str]:
    """benchmark_model's argument list for one timed phase (flags from benchmark_model.cc and the delegate
    providers: --graph, --num_threads, --warmup_runs, --warmup_min_secs, --num_runs, --min_secs, --max_secs,
    --run_delay, --use_xnnpack / --use_gpu / --use_nnapi). `delegates` are names: xnnpack, gpu, nnapi, cpu."""
    args = [binary, f"--graph={model}"]
    if threads:
        args.append(f"--num_threads={int(threads)}")
    args += [f"--warmup_runs={int(warmup_runs)}", f"--warmup_min_secs={_num(warmup_min_seconds)}",
             f"--num_runs={int(runs)}", f"--min_secs={_num(min_seconds)}", f"--max_secs={_num(max_seconds)}"]
    if run_delay_s and run_delay_s > 0:
        args.append(f"--run_delay={_num(run_delay_s)}")
    args += delegate_flags(delegates)
    return args


DELEGATE_FLAGS = {"xnnpack": "--use_xnnpack=true", "gpu": "--use_gpu=true", "nnapi": "--use_nnapi=true"}


def delegate_flags(delegates: list[str]) -> list[str]:
    """Delegate names -> benchmark_model flags; ValueError naming a delegate the binary cannot apply."""
    flags = []
    for d in delegates:
        low = str(d).lower()
        if low == "cpu":
            continue
        if low not in DELEGATE_FLAGS:
            raise ValueError(d)
        if DELEGATE_FLAGS[low] not in flags:
            flags.append(DELEGATE_FLAGS[low])
    return flags


def _num(x: float) -> str:
    return f"{float(x):g}"
