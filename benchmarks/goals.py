"""The performance goals of the compiled backend, measured for benchmarks/bench.py: the exp
and flop rates that bound W1's epoch, the learning-rate search's cost, the default study's
wall time, and a table saying which goal holds on this machine and by how much."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# W1's 3-4-1 network on 4 samples, per network-epoch: 20 exps (16 hidden + 4 output
# sigmoids) and, counted from the kernel's loops, 64 + 64 multiply-adds (forward, weight
# gradients), 16·2 + 4 for the hidden deltas, the sigmoids' 3 per unit, 16·2 for SGD.
W1_EXPS = 20
W1_FLOPS = 2 * 64 + 2 * 64 + 16 * 2 + 4 + 20 * 3 + 16 * 2


def exp_and_flop_rates(best_of, dtype: str = "float64", size: int = 1 << 16, repeat: int = 20) -> tuple[float, float]:
    """(exps/s, flops/s) on one core: the compiled ``fast_exp`` over a cached array, and a
    multiply-add loop over the same array (LLVM vectorises both); ``best_of(fn, repeat)``
    times them."""
    from nnrun.backends.exp_kernel import fast_exp
    from nnrun.backends.jit import njit

    @njit
    def exps(x, out):
        for i in range(x.size):
            out[i] = fast_exp(x[i])

    @njit
    def madds(x, out, a, b):
        for _ in range(8):
            for i in range(x.size):
                out[i] = out[i] * a + x[i] * b

    x = np.random.default_rng(0).uniform(-10, 10, size).astype(dtype)
    out = np.zeros_like(x)
    a, b = x.dtype.type(0.5), x.dtype.type(0.25)
    exps(x, out)
    madds(x, out, a, b)

    t_exp = best_of(lambda: exps(x, out), repeat)
    t_madd = best_of(lambda: madds(x, out, a, b), repeat)
    return size / t_exp, 8 * 3 * size / t_madd  # 8 passes of two multiplies and an add


def exp_bound(rate_per_core: float, exp_rate: float, flop_rate: float) -> str:
    """A W1 row's fraction of the exp-bound limit (and of exps plus counted flops)."""
    exp_limit = exp_rate / W1_EXPS
    full_limit = 1.0 / (W1_EXPS / exp_rate + W1_FLOPS / flop_rate)
    return f"{rate_per_core / exp_limit:.0%} of the exp-bound limit ({exp_limit:.3g}/s a core), {rate_per_core / full_limit:.0%} of exps + {W1_FLOPS} flops"


def search_ratio(root: Path, backend: str, tmp: Path) -> tuple[float, float]:
    """The default sweep (the seed's XOR with its learning-rate search): (network-epochs of
    all rounds ÷ those of the first round, wall seconds)."""
    import pandas as pd

    out = tmp / f"search-{backend}-{time.time_ns()}"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnrun", "sweep", "--out", str(out), "-q", "--set", f"training.backend={backend}"], cwd=root, check=True, capture_output=True)
    wall = time.perf_counter() - t
    runs = pd.read_csv(out / "runs.csv")
    return float(runs["epochs_run"].sum() / runs.loc[runs["round"] == 0, "epochs_run"].sum()), wall


def study_seconds(root: Path, tmp: Path) -> float:
    """Wall seconds of the default study, ``nnrun study``, as a user runs it (all cores)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnrun", "study", "--out", str(tmp / f"study-{time.time_ns()}"), "-q"], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - t


def verdicts(rate: dict[str, float], extra: dict[str, float]) -> list[str]:
    """Markdown rows: goal | target | measured | holds. ``rate`` maps row labels to
    network-epochs/s; ``extra`` holds the search ratio and the study's seconds."""
    rows = []

    def goal(text: str, target: str, value: float | None, ok) -> None:
        if value is None:
            rows.append(f"| {text} | {target} | not measured | — |")
            return
        rows.append(f"| {text} | {target} | {value:.2f} | {'yes' if ok(value) else 'no'} |")

    def ratio(a: str, b: str) -> float | None:
        return rate[a] / rate[b] if a in rate and b in rate else None

    goal("W1 1e7, whole process, numba vs JAX whole process", "≥ 2×", ratio("numba 1e7 process", "JAX 1e7 process"), lambda v: v >= 2)
    goal("W1 1e8, whole process, numba vs JAX whole process", "≥ 2×", ratio("numba 1e8 process", "JAX 1e8 process"), lambda v: v >= 2)
    goal("W1 engine per core, numba float64 vs JAX float64 steady", "≥ 1×", ratio("numba f64 core", "JAX f64 steady"), lambda v: v >= 1)
    goal("W1 engine per core, numba float32 vs JAX float64 steady", "≥ 1.5×", ratio("numba f32 core", "JAX f64 steady"), lambda v: v >= 1.5)
    goal("W2 nnrun float64 (auto: NumPy on minibatches) vs scikit-learn", "≥ 5×", ratio("nnrun W2", "scikit-learn"), lambda v: v >= 5)
    goal("learning-rate search: network-epochs ÷ first round's", "≤ 3×", extra.get("search ratio"), lambda v: v <= 3)
    goal("default study (`nnrun study`), minutes on this machine", "≤ 20", None if "study s" not in extra else extra["study s"] / 60, lambda v: v <= 20)
    return ["| goal | target | measured | holds |", "|---|---|---:|---|", *rows]
