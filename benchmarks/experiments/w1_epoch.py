"""Speed study: faster NumPy formulations of one W1 training epoch (runs-last).

W1 is the seed's network: XOR with a bias column (4 × 3), 3-4-1 sigmoid, no bias vectors,
summed full-batch gradient descent, per-run learning rate, a max-error convergence check
every epoch (stop_converged false, as in the benchmark).

Formulations (all element-wise over the run axis; no BLAS call touches more than one run):

* ``engine``  — nnrun.engine.train as it is (the reference).
* ``fused``   — the same arithmetic in the same order, but with every buffer preallocated
  and written with ``out=``, the sigmoid's negation folded into the (shared) input constants
  (``exp(Σ(−x)·w)`` is bit-identical to ``exp(−Σx·w)``), the check reusing ``a − y``, and the
  per-epoch Python work cut to one ``any()``. Bit-identical to ``engine``.
* ``sparse``  — ``fused`` plus: terms of the shared input that are exactly 0 are skipped and
  exactly 1 are not multiplied (XOR's inputs are all 0/1). Bit-identical to ``engine``
  except in the sign of an exact zero and when a weight is already ±inf (0·inf = NaN).
* ``tanh``    — ``fused`` with σ(z) = 0.5·tanh(0.5z) + 0.5 (not bit-identical; for comparison).
* any of them with ``block=B``: the runs are trained B at a time, each block through all
  its epochs (runs are independent, so this is exact), keeping the working set in L2.
* ``procs=2``: the blocks split between two processes.

Run: python benchmarks/experiments/w1_epoch.py [--quick] [--check]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.bench import seed_loop  # noqa: E402  (the seed's own loop, the benchmark's copy)
from nnrun import datasets as ds  # noqa: E402
from nnrun.engine import TrainSpec, init_params, train  # noqa: E402
from nnrun.variants import VARIANTS  # noqa: E402

D = ds.load("xor", bias_column=True)
X, Y = D.X, D.targets("sigmoid")  # (4, 3), (4, 1)
THRESHOLD = 0.1


# ----------------------------------------------------------------------------- reference


def run_engine(W0, W1, lr, epochs, variant, dtype):
    R = W0.shape[-1]
    spec = TrainSpec(variant=VARIANTS[variant], epochs=epochs, dtype=dtype, stop_converged=False, log_every=100)
    Ws = [W0.copy(), W1.copy()]
    res = train(spec, X, Y, Ws, [None, None], lr.copy(), np.arange(R))
    return Ws[0], Ws[1], res.epochs_to_converge


# ----------------------------------------------------------------------------- fused


class Fused:
    """One W1 epoch with preallocated buffers; the same operations, in the same order, as
    nnrun.engine for this network (so the same bits), unless ``sparse`` or ``act='tanh'``."""

    def __init__(self, R: int, variant: str, dtype, sparse: bool = False, act: str = "exp") -> None:
        dt = np.dtype(dtype)
        self.dt, self.variant, self.sparse, self.act = dt, variant, sparse, act
        n, d = X.shape
        h = 4
        e = lambda *s: np.empty(s, dtype=dt)  # noqa: E731
        self.z1 = e(n, h, R)  # −z1, then a1
        self.tmp = e(n, h, R)
        self.s1 = e(n, h, R)  # a1(1 − a1)
        self.p = e(n, h, R)  # products, reused
        self.z2 = e(n, R)  # −z2, then a2
        self.err = e(n, R)  # a2 − y
        self.t2 = e(n, R)
        self.m = e(R)
        self.g0 = e(d, h, R)
        self.t0 = e(d, h, R)
        self.g1 = e(h, R)
        self.Xn = (-X).astype(dt)  # shared input, negated: Σ(−x)w = −Σxw exactly
        self.Xc = X.astype(dt)
        self.Y = Y.astype(dt)[:, 0, None]  # (n, 1)
        self.half = dt.type(0.5)
        self.one = dt.type(1.0)
        # Sparse plan for the shared input: per output row, the (column, coefficient) terms
        # that are not exactly 0, in the engine's summation order.
        self.rows = [[(i, X[k, i]) for i in range(d) if X[k, i] != 0] for k in range(n)]
        self.cols = [[(k, X[k, i]) for k in range(n) if X[k, i] != 0] for i in range(d)]

    def _sigmoid_neg(self, zneg: np.ndarray) -> None:
        """zneg holds −z; overwrite it with σ(z) = 1/(1 + exp(−z))."""
        if self.act == "tanh":  # σ(z) = 0.5·tanh(0.5z) + 0.5 = 0.5 − 0.5·tanh(0.5·(−z))
            np.multiply(zneg, self.half, out=zneg)
            np.tanh(zneg, out=zneg)
            np.multiply(zneg, -self.half, out=zneg)
            np.add(zneg, self.half, out=zneg)
            return
        np.exp(zneg, out=zneg)
        np.add(zneg, self.one, out=zneg)
        np.divide(self.one, zneg, out=zneg)

    def epoch(self, W0: np.ndarray, W1: np.ndarray, lr: np.ndarray) -> np.ndarray:
        """One update of W0 (d, h, R) and W1 (h, R) in place; returns max |a − y| before it."""
        z1, tmp, s1, p, z2, err, t2, g0, t0, g1 = self.z1, self.tmp, self.s1, self.p, self.z2, self.err, self.t2, self.g0, self.t0, self.g1
        Xn = self.Xn
        # forward, layer 1: −z1[n,h] = Σᵢ (−x[n,i])·W0[i,h]
        if self.sparse:
            for k, terms in enumerate(self.rows):
                (i0, c0), rest = terms[0], terms[1:]
                if c0 == 1:
                    np.negative(W0[i0], out=z1[k])
                else:
                    np.multiply(W0[i0], -c0, out=z1[k])
                for i, c in rest:
                    if c == 1:
                        np.subtract(z1[k], W0[i], out=z1[k])
                    else:
                        np.multiply(W0[i], -c, out=tmp[k])
                        np.add(z1[k], tmp[k], out=z1[k])
        else:
            np.multiply(Xn[:, 0, None, None], W0[0], out=z1)
            for i in range(1, Xn.shape[1]):
                np.multiply(Xn[:, i, None, None], W0[i], out=tmp)
                np.add(z1, tmp, out=z1)
        self._sigmoid_neg(z1)
        a1 = z1
        np.subtract(self.one, a1, out=s1)  # the engine's a(1 − a), bracketed the same
        np.multiply(a1, s1, out=s1)
        # forward, layer 2: z2[n] = Σₕ a1[n,h]·W1[h], summed in h order
        np.multiply(a1, W1, out=p)
        np.add(p[:, 0], p[:, 1], out=z2)
        for h in range(2, p.shape[1]):
            np.add(z2, p[:, h], out=z2)
        np.negative(z2, out=z2)
        self._sigmoid_neg(z2)
        a2 = z2
        # check (reuses a − y, the ce delta)
        np.subtract(a2, self.Y, out=err)
        np.abs(err, out=t2)
        np.max(t2, axis=0, out=self.m)
        # output delta
        if self.variant == "mse":
            np.subtract(self.one, a2, out=t2)
            np.multiply(a2, t2, out=t2)
            np.multiply(err, t2, out=t2)
            d2 = t2
        else:
            d2 = err
        # gW1[h] = Σₙ a1[n,h]·d2[n], summed in n order
        np.multiply(a1, d2[:, None, :], out=p)
        np.add(p[0], p[1], out=g1)
        for k in range(2, p.shape[0]):
            np.add(g1, p[k], out=g1)
        # d1 = (d2 ⊗ W1) · a1(1 − a1)
        d1 = p
        np.multiply(d2[:, None, :], W1, out=d1)
        np.multiply(d1, s1, out=d1)
        # gW0[i,h] = Σₙ x[n,i]·d1[n,h], summed in n order
        if self.sparse:
            for i, terms in enumerate(self.cols):
                (k0, c0), rest = terms[0], terms[1:]
                if c0 == 1:
                    np.copyto(g0[i], d1[k0])
                else:
                    np.multiply(d1[k0], c0, out=g0[i])
                for k, c in rest:
                    if c == 1:
                        np.add(g0[i], d1[k], out=g0[i])
                    else:
                        np.multiply(d1[k], c, out=t0[i])
                        np.add(g0[i], t0[i], out=g0[i])
        else:
            Xc = self.Xc
            np.multiply(Xc[0, :, None, None], d1[0], out=g0)
            for k in range(1, Xc.shape[0]):
                np.multiply(Xc[k, :, None, None], d1[k], out=t0)
                np.add(g0, t0, out=g0)
        # SGD, as nnrun.optim.SGD: g *= lr; w -= g
        np.multiply(g0, lr, out=g0)
        np.subtract(W0, g0, out=W0)
        np.multiply(g1, lr, out=g1)
        np.subtract(W1, g1, out=W1)
        return self.m


def run_fused(W0, W1, lr, epochs, variant, dtype, sparse=False, act="exp", block=None):
    """Train every run for ``epochs`` epochs, ``block`` runs at a time; returns W0, W1 and
    epochs_to_converge (first epoch whose check passed, −1 if none), as the engine does."""
    dt = np.dtype(dtype)
    W0 = W0.astype(dt)
    W1 = np.ascontiguousarray(W1[:, 0, :]).astype(dt)
    lr = lr.astype(dt)
    R = W0.shape[-1]
    block = block or R
    etc = np.full(R, -1)
    thr = dt.type(THRESHOLD)
    with np.errstate(all="ignore"):
        for lo in range(0, R, block):
            hi = min(R, lo + block)
            f = Fused(hi - lo, variant, dt, sparse, act)
            w0, w1, l = np.ascontiguousarray(W0[..., lo:hi]), np.ascontiguousarray(W1[:, lo:hi]), lr[lo:hi]
            e = etc[lo:hi]
            pending = np.ones(hi - lo, bool)
            met = np.empty(hi - lo, bool)
            for epoch in range(epochs):
                m = f.epoch(w0, w1, l)
                np.less(m, thr, out=met)
                met &= pending
                if met.any():
                    e[met] = epoch
                    pending &= ~met
            # the check after the last update
            f.epoch(w0.copy(), w1.copy(), l)
            met = (f.m < thr) & pending
            e[met] = epochs
            W0[..., lo:hi], W1[:, lo:hi] = w0, w1
    return W0, W1[:, None, :], etc


def _run_part(args):
    return run_fused(*args[:-1], **args[-1])


def run_procs(W0, W1, lr, epochs, variant, dtype, procs=2, pool=None, **kw):
    """The runs split in ``procs`` contiguous parts, one process each."""
    R = W0.shape[-1]
    cuts = np.linspace(0, R, procs + 1).astype(int)
    parts = [(W0[..., a:b], W1[..., a:b], lr[a:b], epochs, variant, dtype, kw) for a, b in zip(cuts[:-1], cuts[1:])]
    outs = list(pool.map(_run_part, parts))
    return np.concatenate([o[0] for o in outs], -1), np.concatenate([o[1] for o in outs], -1), np.concatenate([o[2] for o in outs])


# ----------------------------------------------------------------------------- checks


def init(R: int, dtype="float64"):
    Ws, _ = init_params("legacy", [3, 4, 1], np.arange(R), dtype="float64")
    return Ws[0], Ws[1]


def checks(quick: bool) -> list[str]:
    out = []
    R, E = (257, 300) if quick else (1000, 2000)
    W0, W1 = init(R)
    lr = np.where(np.arange(R) % 3 == 0, 0.5, 1.0) * np.where(np.arange(R) % 7 == 0, 10.0, 1.0)
    for dtype in ("float64", "float32"):
        for v in ("ce", "mse"):
            ref = run_engine(W0.astype(dtype), W1.astype(dtype), lr, E, v, dtype)
            for name, kw in (("fused", {}), ("fused block=64", {"block": 64}), ("sparse", {"sparse": True}), ("tanh", {"act": "tanh"})):
                got = run_fused(W0, W1, lr, E, v, dtype, **kw)
                same = all(np.array_equal(a, b) for a, b in zip(ref[:2], got[:2]))
                rel = max(float(np.nanmax(np.abs(a - b) / np.abs(a))) for a, b in zip(ref[:2], got[:2]))
                same_etc = np.array_equal(ref[2], got[2])
                out.append(f"{dtype} {v} {name}: bit-identical to engine {same}, max rel diff {rel:.1e}, epochs_to_converge equal {same_etc}")
    # grouping invariance: each run alone, in a different block size, in a permuted batch
    for name, kw in (("fused", {}), ("sparse", {"sparse": True})):
        for dtype in ("float64", "float32"):
            full = run_fused(W0, W1, lr, E, "mse", dtype, **kw)
            perm = np.random.default_rng(0).permutation(R)
            shuf = run_fused(W0[..., perm], W1[..., perm], lr[perm], E, "mse", dtype, block=37, **kw)
            ok = all(np.array_equal(a[..., perm], b) for a, b in zip(full[:2], shuf[:2]))
            alone = all(
                all(np.array_equal(a[..., [r]], b) for a, b in zip(full[:2], run_fused(W0[..., [r]], W1[..., [r]], lr[[r]], E, "mse", dtype, **kw)[:2]))
                for r in (0, 5, R // 2, R - 1)
            )
            out.append(f"grouping invariance {name} {dtype}: permuted + block 37 identical {ok}; runs 0,5,R/2,R-1 alone identical {alone}")
    # sigmoid via tanh vs 1/(1+exp(−z)) in float64
    z = np.linspace(-40, 40, 2_000_001)
    s_ref = 1.0 / (1.0 + np.exp(-z))
    s_tanh = 0.5 * np.tanh(0.5 * z) + 0.5
    out.append(f"tanh sigmoid vs 1/(1+exp(-z)), float64, z in [-40, 40]: max rel diff {np.max(np.abs(s_tanh - s_ref) / s_ref):.1e} (|z| ≤ 5: {np.max((np.abs(s_tanh - s_ref) / s_ref)[np.abs(z) <= 5]):.1e})")
    # seed replication: 60,000 epochs, final weights within 1e-9 relative of the seed's loop
    seeds = 4 if quick else 8
    W0s, W1s = init(seeds)
    for name, kw in (("fused", {}), ("sparse", {"sparse": True}), ("tanh", {"act": "tanh"})):
        worst = 0.0
        for v in ("ce", "mse"):
            got = run_fused(W0s, W1s, np.ones(seeds), 60_000, v, "float64", **kw)
            for s in range(seeds):
                s0, s1 = seed_loop(s, 60_000, v)
                for a, b in ((got[0][..., s], s0), (got[1][..., s], s1)):
                    worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
        out.append(f"seed replication ({seeds} seeds × ce, mse × 60,000 epochs) {name}: worst rel diff {worst:.1e} -> {'PASS' if worst < 1e-9 else 'FAIL'} at 1e-9")
    return out


# ----------------------------------------------------------------------------- timing


def timeit(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true", help="run the exactness checks")
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", type=int, nargs="*", default=[1000, 10_000])
    ap.add_argument("--work", type=float, default=4e6, help="network-epochs per measurement")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    if args.check:
        for line in checks(args.quick):
            print(line, flush=True)
    if args.no_time:
        return
    pool = ProcessPoolExecutor(2)
    list(pool.map(int, range(2)))  # start the workers
    forms = {
        "engine": lambda *a: run_engine(*a),
        "fused": lambda *a: run_fused(*a),
        "fused block=512": lambda *a: run_fused(*a, block=512),
        "fused block=1024": lambda *a: run_fused(*a, block=1024),
        "fused block=2048": lambda *a: run_fused(*a, block=2048),
        "tanh": lambda *a: run_fused(*a, act="tanh"),
        "sparse": lambda *a: run_fused(*a, sparse=True),
        "sparse block=1024": lambda *a: run_fused(*a, sparse=True, block=1024),
        "sparse block=2048": lambda *a: run_fused(*a, sparse=True, block=2048),
        "fused 2 procs": lambda *a: run_procs(*a, pool=pool),
        "sparse 2 procs": lambda *a: run_procs(*a, pool=pool, sparse=True),
        "sparse 2 procs block=1024": lambda *a: run_procs(*a, pool=pool, sparse=True, block=1024),
    }
    if args.only:
        forms = {k: v for k, v in forms.items() if k in args.only}
    print(f"{'formulation':28s} {'dtype':8s} {'runs':>7s} {'epochs':>6s}  network-epochs/s (ce, mse; best of {args.repeat})", flush=True)
    for R in args.runs:
        E = max(20, int(args.work // R))
        W0, W1 = init(R)
        lr = np.ones(R)
        for dtype in ("float64", "float32"):
            for name, fn in forms.items():
                if name.startswith("engine") or "procs" not in name:
                    fn(W0.astype(dtype), W1.astype(dtype), lr, 5, "ce", dtype)  # warm-up
                rates = []
                for v in ("ce", "mse"):
                    t = timeit(lambda: fn(W0.astype(dtype), W1.astype(dtype), lr, E, v, dtype), args.repeat)
                    rates.append(R * E / t)
                print(f"{name:28s} {dtype:8s} {R:7d} {E:6d}  {rates[0]:.2e}  {rates[1]:.2e}", flush=True)
    pool.shutdown()


if __name__ == "__main__":
    main()
