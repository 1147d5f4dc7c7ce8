"""Pooling ablation sweeps: every configuration (pool x model x window x width x seed) trained, converted for
each profile, benchmarked on its device (or estimated), and turned into a table, a Pareto plot and a
recommendation per profile, in one resumable sweep directory.

    spec = SweepSpec(data="mnist-5k", pools=["max", "avg"], profiles=["host-cpu", "raspberry-pi-5"], seeds=1)
    result = run_sweep(spec, "sweeps/pooling")          # executor="ray", address="HEAD:6379" for a cluster
    result.document["recommendation"]                   # {"host-cpu": "small-avg-w2-x1-s0", ...}

Modules: `spec` (the grid, device assignment), `jobs` (train / convert / benchmark as functions of paths),
`runner` (the driver, the sweep directory, the local executor), `ray_executor`, `results` (seeds averaged,
Pareto, recommendation, tables), `plot` (pareto.png). No TensorFlow or Ray at import time.
"""

from __future__ import annotations

from .runner import (
    PARETO_PNG,
    SWEEP_FILE,
    TABLE_CSV,
    TABLE_MD,
    SweepInterrupted,
    SweepResult,
    load_sweep,
    run_sweep,
)
from .spec import BenchSettings, Config, SweepSpec, parse_list

__all__ = ["PARETO_PNG", "SWEEP_FILE", "TABLE_CSV", "TABLE_MD", "BenchSettings", "Config", "SweepInterrupted",
           "SweepResult", "SweepSpec", "load_sweep", "parse_list", "run_sweep"]
