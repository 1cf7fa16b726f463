"""nnrun's performance benchmark: W1 (the seed's XOR sweep), W2 (digits) and a scaling
series over the number of runs, each measured side by side with its peers in one run.

    python benchmarks/bench.py            # the full benchmark (several minutes on 2 cores)
    python benchmarks/bench.py --quick    # a smaller version, about a minute
    python benchmarks/bench.py --repeat 5 --skip jax
    python benchmarks/bench.py --passes 2  # W1 and W2 twice, each row its faster pass

Writes a markdown table to stdout and to benchmarks/results.md (``--out`` to change).
Every number is network-epochs per second (runs × epochs trained / seconds); "steady
state" times the training call alone after a warm-up, best of ``--repeat``; "whole
process" is a fresh Python process from start to results written, as a user would run it.
Peers that are not installed (JAX, scikit-learn: ``pip install -e '.[bench]'``) are
skipped and say so. Timings on a shared machine are noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # nnrun, and goals.py when imported as benchmarks.bench

import goals  # noqa: E402  (benchmarks/goals.py, beside this script)

from nnrun import backends  # noqa: E402
from nnrun import datasets as ds  # noqa: E402
from nnrun.engine import TrainSpec, init_params, train  # noqa: E402
from nnrun.variants import VARIANTS  # noqa: E402


# ----------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    w1_seeds: int = 1000
    w1_epochs: int = 5000
    seed_loop_runs: int = 4  # per variant; timed and extrapolated
    w2_runs: int = 16
    w2_epochs: int = 50
    sklearn_runs: int = 16
    scale_runs: tuple[int, ...] = (100, 1000, 10_000, 100_000)
    scale_work: int = 4_000_000  # network-epochs per scaling point (epochs = work / runs)
    scale_process_max: int = 100_000  # largest R also run as a whole `nnrun train` process
    repeat: int = 3


def quick_sizes() -> Sizes:
    return Sizes(
        w1_seeds=1000,
        w1_epochs=1000,
        seed_loop_runs=2,
        w2_runs=16,
        w2_epochs=5,
        sklearn_runs=4,
        scale_runs=(100, 1000, 10_000),
        scale_work=500_000,
        scale_process_max=10_000,
        repeat=2,
    )


@dataclass
class Row:
    workload: str
    impl: str
    kind: str  # steady state | whole process | extrapolated
    net_epochs: float
    seconds: float
    note: str = ""
    label: str = ""  # short name for ratio columns and goals
    cores: int = 1  # cores it ran on, for its rate per core
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.net_epochs / self.seconds if self.seconds > 0 else float("nan")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ----------------------------------------------------------------------------- W1


def xor_data() -> tuple[np.ndarray, np.ndarray]:
    d = ds.load("xor", bias_column=True)
    return d.X, d.targets("sigmoid")


def w1_engine(seeds: int, epochs: int, dtype: str, variants=("ce", "mse"), backend: str = "numpy") -> float:
    """Seconds for nnrun's training on every variant (lr 1, legacy init, no early stop), on
    one core: the NumPy engine, or the compiled kernel on one thread."""
    X, Y = xor_data()
    total = 0.0
    for v in variants:
        spec = TrainSpec(variant=VARIANTS[v], epochs=epochs, dtype=dtype, stop_converged=False, log_every=100)
        s = np.arange(seeds)
        Ws, bs = init_params("legacy", [3, 4, 1], s, dtype=dtype)
        t = time.perf_counter()
        with one_blas_thread():
            backends.train(backend, spec, X, Y, Ws, bs, np.ones(seeds), s)
        total += time.perf_counter() - t
    return total


def one_numba_thread() -> None:
    """The compiled kernel on one thread in this process (rates per core)."""
    backends.set_threads(1)


def one_blas_thread():
    """BLAS as nnrun's executor runs it inside a chunk: one thread (see executor.run_chunk)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


W1_CONFIG = """\
name: bench-w1
dataset: {{name: xor, bias_column: true}}
model: {{hidden: [4], activation: sigmoid, bias: false, init: {{scheme: legacy}}}}
training: {{epochs: {epochs}, batch_size: full, reduction: sum, optimizer: {{name: sgd}}, dtype: {dtype}, backend: {backend}}}
variants: [{variants}]
learning_rates: [1.0]
seeds: {seeds}
convergence: {{criterion: max_error, threshold: 0.1, stop_converged: false}}
logging: {{every: 100}}
"""


def nnrun_process(config_text: str, workers: int | None, tmp: Path) -> float:
    """Wall seconds of `python -m nnrun train CONFIG --out DIR -q [--workers N]`."""
    cfg = tmp / f"bench-{time.time_ns()}.yaml"
    cfg.write_text(config_text)
    out = tmp / f"out-{time.time_ns()}"
    cmd = [sys.executable, "-m", "nnrun", "train", str(cfg), "--out", str(out), "-q"] + ([] if workers is None else ["--workers", str(workers)])
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0 or not (out / "runs.csv").exists():
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def seed_loop(seed: int, epochs: int, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """The seed's own loop (one network, np.dot, `+=` with y − a), with legacy weights."""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
    y = np.array([[0, 1, 1, 0]], dtype=float).T
    rs = np.random.RandomState(seed)
    syn0 = 2 * rs.random_sample((3, 4)) - 1
    syn1 = 2 * rs.random_sample((4, 1)) - 1
    for _ in range(epochs):
        l1 = 1 / (1 + np.exp(-(np.dot(X, syn0))))
        l2 = 1 / (1 + np.exp(-(np.dot(l1, syn1))))
        if variant == "mse":
            l2_delta = (y - l2) * (l2 * (1 - l2))
        else:
            l2_delta = y - l2
        l1_delta = l2_delta.dot(syn1.T) * (l1 * (1 - l1))
        syn1 += l1.T.dot(l2_delta)
        syn0 += X.T.dot(l1_delta)
    return syn0, syn1


# The JAX peer: jit(vmap(lax.scan)) over runs, the same math as the seed (float64).
JAX_W1 = """
import time, numpy as np
import jax
jax.config.update("jax_enable_x64", {x64})
import jax.numpy as jnp
from jax import lax

def legacy(seeds):
    W0, W1 = [], []
    for s in seeds:
        rs = np.random.RandomState(int(s))
        W0.append(2 * rs.random_sample((3, 4)) - 1)
        W1.append(2 * rs.random_sample((4, 1)) - 1)
    return np.stack(W0), np.stack(W1)

X = jnp.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype={dt})
Y = jnp.array([[0], [1], [1], [0]], dtype={dt})

def make(variant, epochs):
    def epoch(carry, _):
        W0, W1 = carry
        l1 = 1 / (1 + jnp.exp(-(X @ W0)))
        l2 = 1 / (1 + jnp.exp(-(l1 @ W1)))
        d2 = (l2 - Y) * (l2 * (1 - l2)) if variant == "mse" else l2 - Y
        d1 = (d2 @ W1.T) * (l1 * (1 - l1))
        return (W0 - X.T @ d1, W1 - l1.T @ d2), None
    def run(W0, W1):
        return lax.scan(epoch, (W0, W1), None, length=epochs)[0]
    return jax.jit(jax.vmap(run))
"""

JAX_W1_PROCESS = JAX_W1 + """
seeds = np.arange({seeds})
W0, W1 = legacy(seeds)
out = {{}}
for v in ("ce", "mse"):
    a, b = make(v, {epochs})(jnp.asarray(W0, {dt}), jnp.asarray(W1, {dt}))
    out[v + "_W1"], out[v + "_W2"] = np.asarray(a), np.asarray(b)
np.savez({path!r}, **out)
"""


def jax_w1_steady(seeds: int, epochs: int, dtype: str, repeat: int) -> tuple[float, dict]:
    """Best-of-repeat seconds for the compiled JAX W1 (both variants), and its final weights."""
    ns: dict = {}
    exec(JAX_W1.format(x64=dtype == "float64", dt=f"jnp.{dtype}"), ns)
    jnp = ns["jnp"]
    W0, W1 = ns["legacy"](np.arange(seeds))
    W0, W1 = jnp.asarray(W0, dtype), jnp.asarray(W1, dtype)
    fns = {v: ns["make"](v, epochs) for v in ("ce", "mse")}
    finals = {}
    for v, f in fns.items():  # compile and warm up
        a, b = f(W0, W1)
        finals[v] = (np.asarray(a.block_until_ready()), np.asarray(b))

    def go():
        for f in fns.values():
            a, _ = f(W0, W1)
            a.block_until_ready()

    return best_of(go, repeat), finals


def jax_w1_process(seeds: int, epochs: int, tmp: Path) -> float:
    """Wall seconds of the JAX W1 as a user runs it: `python -c`, default threads."""
    code = JAX_W1_PROCESS.format(x64=True, dt="jnp.float64", seeds=seeds, epochs=epochs, path=str(tmp / "jax_w1.npz"))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"JAX process failed: {proc.stderr[-2000:]}")
    return elapsed


def nnrun_final_weights(seeds: int, epochs: int, variant: str) -> tuple[np.ndarray, np.ndarray]:
    X, Y = xor_data()
    spec = TrainSpec(variant=VARIANTS[variant], epochs=epochs, stop_converged=False, log_every=100)
    s = np.arange(seeds)
    Ws, bs = init_params("legacy", [3, 4, 1], s)
    train(spec, X, Y, Ws, bs, np.ones(seeds), s)
    return Ws[0].transpose(2, 0, 1), Ws[1].transpose(2, 0, 1)


def bench_w1(z: Sizes, skip: set[str], tmp: Path) -> tuple[list[Row], list[str], float]:
    """W1's rows, its notes, and its start-up floor in seconds (see ``floor_seconds``)."""
    rows: list[Row] = []
    notes: list[str] = []
    name = f"W1 XOR 3-4-1, ce+mse × {z.w1_seeds:,} seeds × {z.w1_epochs:,} epochs"
    work = 2 * z.w1_seeds * z.w1_epochs
    numba = backends.numba_installed()
    for backend in ("numpy", "numba") if numba else ("numpy",):
        for dtype in ("float64", "float32"):
            log(f"W1 nnrun engine {backend} {dtype}")
            w1_engine(z.w1_seeds, min(z.w1_epochs, 50), dtype, backend=backend)  # warm-up (and compile)
            t = best_of(lambda: w1_engine(z.w1_seeds, z.w1_epochs, dtype, backend=backend), z.repeat)
            impl = "nnrun engine.train" if backend == "numpy" else "nnrun numba kernel, 1 thread"
            rows.append(Row(name, f"{impl}, {dtype}", "steady state", work, t, label=f"{backend} f{dtype[5:]} core"))
    for backend, workers in [("numpy", 1), ("numpy", 2)] + ([("numba", 1), ("numba", None)] if numba else []):
        log(f"W1 nnrun train {backend} --workers {workers or 'default'}")
        text = W1_CONFIG.format(epochs=z.w1_epochs, dtype="float64", variants="ce, mse", seeds=z.w1_seeds, backend=backend)
        t = min(nnrun_process(text, workers, tmp) for _ in range(z.repeat))
        how = f"--workers {workers}" if workers else "default workers"
        rows.append(Row(name, f"`nnrun train {how}`, {backend}, float64", "whole process", work, t, label=f"{backend} 1e7 process" if workers is None else "", cores=workers or CORES))
    log("W1 seed loop")
    t = 0.0
    for v in ("ce", "mse"):
        seed_loop(0, 10, v)
        t += best_of(lambda: [seed_loop(s, z.w1_epochs, v) for s in range(z.seed_loop_runs)], z.repeat)
    per_run = t / (2 * z.seed_loop_runs)
    rows.append(
        Row(name, "the seed's loop, one run at a time", "extrapolated", work, per_run * 2 * z.w1_seeds, f"{z.seed_loop_runs} runs per variant timed, × {z.w1_seeds:,}", "seed loop")
    )
    if "jax" in skip or not have("jax"):
        notes.append("JAX: not installed (pip install -e '.[bench]'), rows skipped.")
        rows += w1_large(z, skip, tmp, numba)
        return rows, notes, floor_seconds(z, tmp, numba)
    for dtype in ("float64", "float32"):
        log(f"W1 JAX steady {dtype}")
        t, finals = jax_w1_steady(z.w1_seeds, z.w1_epochs, dtype, z.repeat)
        rows.append(Row(name, f"JAX jit(vmap(lax.scan)), {dtype}", "steady state", work, t, label=f"JAX f{dtype[5:]} steady", cores=CORES))
        if dtype == "float64":
            k = min(50, z.w1_seeds)
            ours = nnrun_final_weights(k, z.w1_epochs, "mse")
            diff = max(float(np.max(np.abs(o - j[:k]) / np.maximum(np.abs(o), 1e-300))) for o, j in zip(ours, finals["mse"]))
            notes.append(f"Check: JAX float64 and nnrun final weights (mse, first {k} seeds) agree to {diff:.1e} relative.")
    log("W1 JAX whole process")
    t = min(jax_w1_process(z.w1_seeds, z.w1_epochs, tmp) for _ in range(z.repeat))
    rows.append(Row(name, "JAX `python -c` (import + compile + run + save), float64", "whole process", work, t, label="JAX 1e7 process", cores=CORES))
    rows += w1_large(z, skip, tmp, numba)
    return rows, notes, floor_seconds(z, tmp, numba)


CORES = os.cpu_count() or 1


def floor_seconds(z: Sizes, tmp: Path, numba: bool) -> float:
    """What W1's whole process costs besides training: `nnrun train` of its config for one
    epoch, default workers, best of ``repeat``."""
    backend = "numba" if numba else "numpy"
    log(f"W1 start-up floor ({backend}, 1 epoch)")
    text = W1_CONFIG.format(epochs=1, dtype="float64", variants="ce, mse", seeds=z.w1_seeds, backend=backend)
    return min(nnrun_process(text, None, tmp) for _ in range(z.repeat))


def floor_notes(z: Sizes, rows: list[Row], floor: float) -> list[str]:
    """The start-up floor, and what it leaves of the time a 2× whole-process ratio against
    JAX allows: a whole run takes at least its floor, and its training adds to that, less
    what of the floor it overlaps (the statistics imports, while the workers train)."""
    numba = backends.numba_installed()
    backend = "numba" if numba else "numpy"
    notes = [
        f"Start-up floor: `nnrun train` of W1 for 1 epoch ({backend}, default workers) takes {floor:.2f} s: the interpreter, "
        f"{'the compiled backend' if numba else 'NumPy'}'s start in its worker{'' if numba else 's'}, scipy.stats and pandas for the verdict tables, the results files."
    ]
    seconds = {r.label: r.seconds for r in rows if r.label}
    core = seconds.get(f"{backend} f64 core")
    for scale, label in ((1, "JAX 1e7 process"), (10, "JAX 1e8 process")):
        if label not in seconds:
            continue
        work, target = 2 * scale * z.w1_seeds * z.w1_epochs, seconds[label] / 2
        text = f"W1 at {f'{work:.0e}'.replace('e+0', 'e')} network-epochs: 2× JAX's whole process ({2 * target:.2f} s) means finishing in {target:.2f} s; the floor alone takes {floor / target:.0%} of that"
        if core is not None and floor < target:
            kernel = 2 * z.w1_seeds * z.w1_epochs / core  # network-epochs/s on one core
            text += f", and training at the kernel's {kernel:.3g}/s a core on all {CORES} cores {work / (kernel * CORES):.2f} s more, less what of the floor it overlaps"
        notes.append(text + ".")
    return notes


def w1_large(z: Sizes, skip: set[str], tmp: Path, numba: bool) -> list[Row]:
    """W1 with ten times the seeds (1e8 network-epochs at full size): whole processes."""
    seeds = 10 * z.w1_seeds
    name = f"W1 XOR 3-4-1, ce+mse × {seeds:,} seeds × {z.w1_epochs:,} epochs"
    work = 2 * seeds * z.w1_epochs
    rows = []
    for backend in ("numba",) if numba else ():
        log(f"W1 ×10 nnrun train {backend}")
        text = W1_CONFIG.format(epochs=z.w1_epochs, dtype="float64", variants="ce, mse", seeds=seeds, backend=backend)
        t = min(nnrun_process(text, None, tmp) for _ in range(max(1, z.repeat - 1)))
        rows.append(Row(name, f"`nnrun train` (default workers), {backend}, float64", "whole process", work, t, label=f"{backend} 1e8 process", cores=CORES))
    if "jax" not in skip and have("jax"):
        log("W1 ×10 JAX whole process")
        t = min(jax_w1_process(seeds, z.w1_epochs, tmp) for _ in range(max(1, z.repeat - 1)))
        rows.append(Row(name, "JAX `python -c` (import + compile + run + save), float64", "whole process", work, t, label="JAX 1e8 process", cores=CORES))
    return rows


# ----------------------------------------------------------------------------- W2


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = ds.load("digits", bias_column=False)
    return d.X, d.targets("softmax"), d.labels


def w2_nnrun(runs: int, epochs: int, dtype: str = "float64", backend: str = "numpy") -> float:
    X, Y, _ = digits()
    # Like scikit-learn's fit, no extra pass over the data each epoch: the convergence check
    # and the curves look at the final epoch only (convergence.check_every, logging.every).
    spec = TrainSpec(
        variant=VARIANTS["ce-softmax"], epochs=epochs, batch_size=64, reduction="mean", dtype=dtype,
        stop_converged=False, check_every=epochs, log_every=epochs,
    )  # fmt: skip
    s = np.arange(runs)
    Ws, bs = init_params("xavier", [64, 32, 10], s, bias=True, dtype=dtype)
    t = time.perf_counter()
    with one_blas_thread():
        res = backends.train(backend, spec, X, Y, Ws, bs, np.full(runs, 0.1), s)
    t = time.perf_counter() - t
    assert np.nanmean(res.final["accuracy"]) > 0.5 or epochs < 5, res.final["accuracy"]
    return t


def w2_sklearn(runs: int, epochs: int) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, _, labels = digits()
    t = time.perf_counter()
    acc = []
    for r in range(runs):
        clf = MLPClassifier(
            hidden_layer_sizes=(32,),
            activation="logistic",
            solver="sgd",
            alpha=0.0,
            batch_size=64,
            learning_rate="constant",
            learning_rate_init=0.1,
            momentum=0.0,
            nesterovs_momentum=False,
            max_iter=epochs,
            shuffle=True,
            random_state=r,
            tol=0.0,
            n_iter_no_change=epochs + 1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, labels)
        acc.append(clf.score(X, labels))
    return time.perf_counter() - t, float(np.mean(acc))


JAX_W2 = """
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from jax import lax

def make_w2(X, Y, epochs, batch=64, lr=0.1):
    n = X.shape[0]
    nb = -(-n // batch)
    pad = nb * batch - n
    def loss(p, xb, yb, mb):
        h = jax.nn.sigmoid(xb @ p[0] + p[1])
        z = h @ p[2] + p[3]
        ce = -(yb * jax.nn.log_softmax(z)).sum(axis=1)
        return (ce * mb).sum() / mb.sum()
    grad = jax.grad(loss)
    def step(p, b):
        idx, mb = b
        g = grad(p, X[idx], Y[idx], mb)
        return tuple(w - lr * gw for w, gw in zip(p, g)), None
    def epoch(p, key):
        perm = jax.random.permutation(key, n)
        idx = jnp.concatenate([perm, jnp.zeros(pad, perm.dtype)]).reshape(nb, batch)
        mask = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(nb, batch)
        return lax.scan(step, p, (idx, mask))[0], None
    def run(p, key):
        return lax.scan(epoch, p, jax.random.split(key, epochs))[0]
    return jax.jit(jax.vmap(run))
"""


def w2_jax(runs: int, epochs: int, repeat: int) -> float:
    ns: dict = {}
    exec(JAX_W2, ns)
    jax, jnp = ns["jax"], ns["jnp"]
    X, Y, _ = digits()
    s = np.arange(runs)
    Ws, bs = init_params("xavier", [64, 32, 10], s, bias=True)
    p = tuple(jnp.asarray(a) for a in (Ws[0].transpose(2, 0, 1), bs[0].T, Ws[1].transpose(2, 0, 1), bs[1].T))
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    f = ns["make_w2"](jnp.asarray(X), jnp.asarray(Y), epochs)
    jax.block_until_ready(f(p, keys))  # compile
    return best_of(lambda: jax.block_until_ready(f(p, keys)), repeat)


def bench_w2(z: Sizes, skip: set[str]) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    name = f"W2 digits 64-32-10, ce-softmax, batch 64 × {z.w2_epochs} epochs"
    log("W2 nnrun")
    w2_nnrun(z.w2_runs, 1)
    t = best_of(lambda: w2_nnrun(z.w2_runs, z.w2_epochs), z.repeat)
    rows.append(Row(name, f"nnrun engine.train, {z.w2_runs} runs, float64 (what backend auto trains minibatches with)", "steady state", z.w2_runs * z.w2_epochs, t, label="nnrun W2"))
    log("W2 nnrun float32")
    t = best_of(lambda: w2_nnrun(z.w2_runs, z.w2_epochs, "float32"), z.repeat)
    rows.append(Row(name, f"nnrun engine.train, {z.w2_runs} runs, float32", "steady state", z.w2_runs * z.w2_epochs, t))
    if backends.numba_installed():
        for dtype in ("float64", "float32"):
            log(f"W2 nnrun numba {dtype}")
            w2_nnrun(z.w2_runs, 1, dtype, "numba")  # compile
            t = best_of(lambda: w2_nnrun(z.w2_runs, z.w2_epochs, dtype, "numba"), z.repeat)
            rows.append(Row(name, f"nnrun numba kernel, 1 thread, {z.w2_runs} runs, {dtype}", "steady state", z.w2_runs * z.w2_epochs, t, label="numba W2" if dtype == "float64" else ""))
    if "sklearn" in skip or not have("sklearn"):
        notes.append("scikit-learn: not installed, W2 baseline skipped.")
    else:
        log("W2 scikit-learn")
        t, acc = min(w2_sklearn(z.sklearn_runs, z.w2_epochs) for _ in range(max(1, z.repeat - 1)))
        rows.append(Row(name, f"scikit-learn MLPClassifier (sgd, no momentum), {z.sklearn_runs} fits one by one", "steady state", z.sklearn_runs * z.w2_epochs, t, f"train accuracy {acc:.3f}", "scikit-learn"))
    if "jax" in skip or not have("jax"):
        notes.append("JAX: not installed, W2 JAX row skipped.")
    else:
        log("W2 JAX")
        t = w2_jax(z.w2_runs, z.w2_epochs, z.repeat)
        rows.append(Row(name, f"JAX jit(vmap(scan(grad))), {z.w2_runs} runs, float64", "steady state", z.w2_runs * z.w2_epochs, t, label="JAX"))
    return rows, notes


# ----------------------------------------------------------------------------- scaling

SCALE_POINT = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from benchmarks.bench import w1_engine
w1_engine(min({runs}, 1000), 20, {dtype!r}, ("ce",))
t = min(w1_engine({runs}, {epochs}, {dtype!r}, ("ce",)) for _ in range({repeat}))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
rss = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": t, "maxrss_mib": rss}}))
"""


def bench_scaling(z: Sizes, tmp: Path) -> tuple[list[dict], list[str]]:
    out = []
    for runs in z.scale_runs:
        epochs = max(20, z.scale_work // runs)
        log(f"scaling R={runs:,} × {epochs} epochs")
        code = SCALE_POINT.format(root=str(ROOT), runs=runs, epochs=epochs, dtype="float64", repeat=z.repeat)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        point = {"runs": runs, "epochs": epochs, "engine": runs * epochs / r["seconds"], "rss": r["maxrss_mib"]}
        if runs <= z.scale_process_max:
            seeds = max(1, runs)
            text = W1_CONFIG.format(epochs=epochs, dtype="float64", variants="ce", seeds=seeds, backend="numpy")
            t = min(nnrun_process(text, 1, tmp) for _ in range(max(1, z.repeat - 1)))
            point["process"] = runs * epochs / t
            point["process_s"] = t
        out.append(point)
    return out, []


# ----------------------------------------------------------------------------- goals


def bench_goals(rows: list[Row], notes: list[str], tmp: Path) -> dict[str, float]:
    """The exp-bound fraction of each W1 row, the learning-rate search's cost and the default
    study's wall time (with the compiled backend where installed)."""
    extra: dict[str, float] = {}
    backend = "numba" if backends.numba_installed() else "numpy"
    if backend == "numba":
        log("exp and flop rates")
        exp_rate, flop_rate = goals.exp_and_flop_rates(best_of)
        notes.append(f"One core: compiled exp {exp_rate:.3g}/s (float64), multiply-adds {flop_rate:.3g} flops/s; W1 needs {goals.W1_EXPS} exps and ~{goals.W1_FLOPS} flops a network-epoch.")
        for r in rows:
            if r.workload.startswith("W1"):
                r.note = "; ".join(x for x in (r.note, goals.exp_bound(r.rate / r.cores, exp_rate, flop_rate)) if x)
    log(f"learning-rate search (nnrun sweep, {backend})")
    extra["search ratio"], wall = goals.search_ratio(ROOT, backend, tmp)
    notes.append(f"Default sweep with its learning-rate search ({backend}): {extra['search ratio']:.2f}× the first round's network-epochs, {wall:.1f} s whole process.")
    log("default study (nnrun study)")
    extra["study s"] = goals.study_seconds(ROOT, tmp)
    notes.append(f"Default study (`nnrun study`, training.backend auto = {backend}): {extra['study s'] / 60:.1f} min.")
    return extra


# ----------------------------------------------------------------------------- report


def help_time(repeat: int) -> float:
    best = float("inf")
    for _ in range(max(repeat, 3)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nnrun", "--help"], capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
    return best


def environment() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} threads)" for i in threadpool_info())
    except Exception:  # noqa: BLE001
        blas = "?"
    versions = [f"numpy {np.__version__}"]
    for mod in ("jax", "sklearn"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS") if k in os.environ)
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; {', '.join(versions)}; BLAS: {blas}" + (f"; env {env}" if env else "")


def fmt_rate(x: float) -> str:
    return f"{x:.3g}" if x < 1e3 else f"{x:.2e}"


def render(rows: list[Row], scaling: list[dict], notes: list[str], helps: float, args, z: Sizes, wall: float, goal_lines: list[str] = ()) -> str:
    lines = [
        f"# nnrun benchmark{' (--quick)' if args.quick else ''}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {environment()}",
        f"Command: `python benchmarks/bench.py {' '.join(sys.argv[1:])}`; best of {z.repeat}"
        + (f", and of {args.passes} passes over W1 and W2" if args.passes > 1 else "")
        + f"; total {wall:.0f} s.",
        "",
        "Rates are network-epochs/s (runs × epochs ÷ seconds). Ratios compare rows of the same workload measured in this run.",
    ]
    if goal_lines:
        lines += ["", "## Goals of the compiled backend on this machine", "", *goal_lines]
    by_work: dict[str, list[Row]] = {}
    for r in rows:
        by_work.setdefault(r.workload, []).append(r)
    for work, rs in by_work.items():
        refs = [r for r in rs if not r.impl.startswith("nnrun") and not r.impl.startswith("`nnrun")]
        lines += ["", f"## {work}", ""]
        head = "| implementation | measured | network-epochs | seconds | network-epochs/s |"
        sep = "|---|---|---:|---:|---:|"
        for ref in refs:
            head += f" vs {ref.label or ref.impl} |"
            sep += "---:|"
        lines += [head, sep]
        for r in rs:
            cells = [r.impl + (f" — {r.note}" if r.note else ""), r.kind, f"{r.net_epochs:.3g}", f"{r.seconds:.3f}", fmt_rate(r.rate)]
            cells += [f"{r.rate / ref.rate:.2f}" for ref in refs]
            lines.append("| " + " | ".join(cells) + " |")
    if scaling:
        lines += [
            "",
            "## Scaling over runs (W1-like: ce only, float64, lr 1, epochs = work ÷ runs)",
            "",
            "| runs | epochs | engine network-epochs/s | vs R=1,000 | engine peak RSS (MiB) | `nnrun train --workers 1` whole process network-epochs/s (s) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        base = next((p["engine"] for p in scaling if p["runs"] == 1000), scaling[0]["engine"])
        for p in scaling:
            proc = f"{fmt_rate(p['process'])} ({p['process_s']:.2f} s)" if "process" in p else "—"
            lines.append(f"| {p['runs']:,} | {p['epochs']:,} | {fmt_rate(p['engine'])} | {p['engine'] / base:.2f} | {p['rss']:.0f} | {proc} |")
    lines += ["", f"`nnrun --help`: {helps:.3f} s (best of 3, fresh process)."]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def keep_best(best: dict[tuple[str, str], Row], rows: list[Row]) -> None:
    """Each row's fastest measurement over the passes, in the order rows first appeared."""
    for r in rows:
        key = (r.workload, r.impl)
        if key not in best or r.seconds < best[key].seconds:
            best[key] = r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=textwrap.dedent(__doc__))
    ap.add_argument("--quick", action="store_true", help="smaller sizes: about a minute")
    ap.add_argument("--repeat", type=int, help="timings are best of this many (default 3, quick 2)")
    ap.add_argument("--passes", type=int, default=1, help="measure W1 and W2 this many times over, each row its best pass (a slow minute of a shared machine then decides no ratio)")
    ap.add_argument("--only", action="append", choices=["w1", "w2", "scaling", "goals"], help="run only these parts (repeatable); goals: the search and the default study")
    ap.add_argument("--skip", action="append", default=[], choices=["jax", "sklearn"], help="leave out a peer")
    ap.add_argument("--out", type=Path, default=HERE / "results.md", help="markdown file to write (default benchmarks/results.md)")
    args = ap.parse_args(argv)
    z = quick_sizes() if args.quick else Sizes()
    if args.repeat:
        z.repeat = args.repeat
    parts = set(args.only or ["w1", "w2", "scaling", "goals"])
    one_numba_thread()
    skip = set(args.skip)
    t0 = time.perf_counter()
    best: dict[tuple[str, str], Row] = {}
    notes, scaling, floor = [], [], float("inf")
    with tempfile.TemporaryDirectory(prefix="nnrun-bench-") as d:
        tmp = Path(d)
        helps = help_time(z.repeat)
        for n_pass in range(max(1, args.passes)):
            log(f"pass {n_pass + 1} of {max(1, args.passes)}")
            notes = []  # each pass's notes say the same; the last pass's are kept
            if "w1" in parts:
                r, n, f = bench_w1(z, skip, tmp)
                keep_best(best, r)
                notes += n
                floor = min(floor, f)
            if "w2" in parts:
                r, n = bench_w2(z, skip)
                keep_best(best, r)
                notes += n
        rows = list(best.values())
        if "w1" in parts:
            notes += floor_notes(z, rows, floor)
        if "scaling" in parts:
            scaling, n = bench_scaling(z, tmp)
            notes += n
        extra = bench_goals(rows, notes, tmp) if "goals" in parts else {}
    goal_lines = goals.verdicts({r.label: r.rate for r in rows if r.label}, extra)
    text = render(rows, scaling, notes, helps, args, z, time.perf_counter() - t0, goal_lines)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
