"""Proposed engine fast path (a drop-in for nnrun/engine.py's full-batch SGD branch).

``FullBatchKernel`` does one full-batch epoch of any small network (every fan-in, fan-out
and the sample count at most engine.LOOP_LIMIT, so the engine uses its element-wise loops)
with hidden sigmoid layers and a sigmoid output, the ce or mse variants (exact or forced
deltas), optional biases, sum or mean reduction and SGD. It performs the engine's
operations in the engine's order, so every number is bit-identical to ``engine.train``
(checked below) and grouping invariance is untouched; what changes:

* every array is preallocated once and written with ``out=``: no temporaries per epoch;
* the sigmoid's negation is folded into the shared input (``Σ(−x)·w == −Σx·w`` exactly),
  so the first layer's sigmoid is exp, +1, reciprocal — three passes, no ``negative``;
* the output error ``a − y`` is computed once and serves both the max-error check and the
  delta (ce), instead of ``metrics`` recomputing it;
* the per-epoch bookkeeping is a handful of calls on (runs,) arrays.

Log epochs still go through ``engine.forward``/``engine.metrics`` (every ``log_every``).

Check: python benchmarks/experiments/engine_fastpath.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nnrun.engine import LOOP_LIMIT, TrainSpec, init_params, train  # noqa: E402
from nnrun.variants import VARIANTS, delta_a_minus_y, delta_sigmoid_mse, rsum  # noqa: E402


def fast_path_applies(spec: TrainSpec, X: np.ndarray, sizes: list[int]) -> bool:
    v = spec.variant
    return (
        (spec.batch_size is None or spec.batch_size >= len(X))
        and spec.optimizer == "sgd"
        and spec.activation == "sigmoid"
        and v.output == "sigmoid"
        and v.delta_fn in (delta_a_minus_y, delta_sigmoid_mse)
        and len(X) <= LOOP_LIMIT
        and max(sizes) <= LOOP_LIMIT
    )


class FullBatchKernel:
    """Buffers for one batch of R runs; ``epoch`` does forward, check, backward, SGD."""

    def __init__(self, spec: TrainSpec, X: np.ndarray, Y: np.ndarray, Ws, bs) -> None:
        dt = Ws[0].dtype
        n, R = len(X), Ws[0].shape[-1]
        self.dt, self.n, self.R = dt, n, R
        self.Xn = (-X).astype(dt)  # negated shared input: exp(Σ(−x)w) == exp(−Σxw)
        self.X = X.astype(dt)
        self.Y = Y.astype(dt)[..., None]  # (n, k, 1)
        self.one = dt.type(1.0)
        self.scale = dt.type(1.0 / n) if spec.reduction == "mean" else None
        self.mse = spec.variant.delta_fn is delta_sigmoid_mse
        self.L = len(Ws)
        e = lambda *s: np.empty(s, dtype=dt)  # noqa: E731
        self.a = [None] + [e(n, W.shape[1], R) for W in Ws]  # activations (a[0] is X)
        self.s = [None] + [e(n, W.shape[1], R) for W in Ws[:-1]]  # a(1 − a) of hidden layers
        self.tmp = [e(n, W.shape[1], R) for W in Ws]
        self.delta = [e(n, W.shape[1], R) for W in Ws]
        self.gW = [np.empty_like(W) for W in Ws]
        self.tW = [np.empty_like(W) for W in Ws]
        self.gb = [None if b is None else np.empty_like(b) for b in bs]
        self.err = e(n, Ws[-1].shape[1], R)
        self.abs = e(n, Ws[-1].shape[1], R)
        self.zero = e(n, Ws[-1].shape[1], R)  # 0·z: NaN where the output z is ±inf or NaN
        self.max_error = e(R)

    def _sigmoid_of_neg(self, a: np.ndarray) -> None:
        np.exp(a, out=a)
        np.add(a, self.one, out=a)
        np.divide(self.one, a, out=a)

    def forward(self, Ws, bs) -> np.ndarray:
        """Fills the activations and returns max |a − y| per run: the engine's max_error, or
        NaN where the engine's ``_finite`` would call the run diverged (z not finite)."""
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z, tmp = self.a[l + 1], self.tmp[l]
            negated = l == 0 and b is None  # fold −1 into the shared input
            if l == 0:
                Xs = self.Xn if negated else self.X
                np.multiply(Xs[:, 0, None, None], W[0], out=z)
                for i in range(1, W.shape[0]):
                    np.multiply(Xs[:, i, None, None], W[i], out=tmp)
                    np.add(z, tmp, out=z)
            else:
                a = self.a[l]
                np.multiply(a[:, 0, None, :], W[0], out=z)
                for i in range(1, W.shape[0]):
                    np.multiply(a[:, i, None, :], W[i], out=tmp)
                    np.add(z, tmp, out=z)
            if b is not None:
                np.add(z, b, out=z)
            if l == self.L - 1:
                np.multiply(z, 0, out=self.zero)
            if not negated:
                np.negative(z, out=z)
            self._sigmoid_of_neg(z)
            if l < self.L - 1:
                np.subtract(self.one, z, out=self.s[l + 1])
                np.multiply(z, self.s[l + 1], out=self.s[l + 1])
        np.subtract(self.a[-1], self.Y, out=self.err)
        np.abs(self.err, out=self.abs)
        np.add(self.abs, self.zero, out=self.abs)  # |a − y| + 0·z: unchanged, or NaN if z is not finite
        np.max(self.abs, axis=(0, 1), out=self.max_error)
        return self.max_error

    def backward_step(self, Ws, bs, lr: np.ndarray) -> None:
        """Gradients of the last forward pass and the SGD update, as engine.backward + SGD."""
        d = self.delta[-1]
        if self.mse:  # (a − y) · (a · (1 − a))
            a = self.a[-1]
            np.subtract(self.one, a, out=self.tmp[-1])
            np.multiply(a, self.tmp[-1], out=self.tmp[-1])
            np.multiply(self.err, self.tmp[-1], out=d)
        else:
            np.copyto(d, self.err)
        if self.scale is not None:
            np.multiply(d, self.scale, out=d)
        for l in range(self.L - 1, -1, -1):
            W, g, t = Ws[l], self.gW[l], self.tW[l]
            if l == 0:
                X = self.X
                np.multiply(X[0, :, None, None], d[0, None], out=g)
                for k in range(1, self.n):
                    np.multiply(X[k, :, None, None], d[k, None], out=t)
                    np.add(g, t, out=g)
            else:
                a = self.a[l]
                np.multiply(a[0, :, None, :], d[0, None], out=g)
                for k in range(1, self.n):
                    np.multiply(a[k, :, None, :], d[k, None], out=t)
                    np.add(g, t, out=g)
            if bs[l] is not None:
                self.gb[l][...] = rsum(d, 0)  # the engine's order-fixed sum
            if l > 0:
                nd, tmp = self.delta[l - 1], self.tmp[l - 1]
                np.multiply(d[:, None, 0, :], W[None, :, 0, :], out=nd)
                for o in range(1, W.shape[1]):
                    np.multiply(d[:, None, o, :], W[None, :, o, :], out=tmp)
                    np.add(nd, tmp, out=nd)
                np.multiply(nd, self.s[l], out=nd)
                d = nd
        # SGD in the engine's parameter order (Ws, then bs): g *= lr; w -= g
        for W, g in zip(Ws, self.gW):
            np.multiply(g, lr, out=g)
            np.subtract(W, g, out=W)
        for b, g in zip(bs, self.gb):
            if b is not None:
                np.multiply(g, lr, out=g)
                np.subtract(b, g, out=b)


def train_fast(spec: TrainSpec, X, Y, Ws, bs, lr):
    """The engine's full-batch loop on the kernel (convergence by max_error; no logging),
    enough to check bits and speed. Returns epochs_to_converge."""
    dt = Ws[0].dtype
    lr = np.asarray(lr, dtype=dt)
    R = len(lr)
    k = FullBatchKernel(spec, X, Y, Ws, bs)
    etc = np.full(R, -1)
    pending = np.ones(R, bool)
    active = np.ones(R, bool)
    met = np.empty(R, bool)
    lr_active = lr.copy()
    with np.errstate(all="ignore"):
        for epoch in range(spec.epochs + 1):
            m = k.forward(Ws, bs)
            if not np.isfinite(m.max()):  # rare: a run diverged (NaN propagates through max)
                bad = active & ~np.isfinite(m)
                active &= ~bad
                pending &= ~bad
                lr_active = lr * active  # as the engine freezes it
            np.less(m, spec.threshold, out=met)
            met &= pending
            if met.any():
                etc[met] = epoch
                pending &= ~met
            if epoch == spec.epochs:
                break
            k.backward_step(Ws, bs, lr_active)
    etc[~active] = -1  # as the engine: a diverged run has not converged
    return etc


def _case(name, X, Y, sizes, bias, reduction, dtype, epochs=300, R=301):
    seeds = np.arange(R)
    lr = np.where(seeds % 3 == 0, 0.5, 2.0) * np.where(seeds % 17 == 0, 1e30, 1.0)
    ok = True
    for v in ("ce", "mse", "ng-on-mse", "mitchell-on-ce"):
        spec = TrainSpec(variant=VARIANTS[v], epochs=epochs, dtype=dtype, stop_converged=False, reduction=reduction, log_every=50)
        assert fast_path_applies(spec, X, sizes)
        Ws, bs = init_params("uniform" if bias else "legacy", sizes, seeds, bias=bias, dtype=dtype)
        Ws[0][0, 0, ::11] = np.inf  # runs that diverge at once, to check the engine's freezing
        Ws[-1][0, 0, 5::13] = np.nan
        Wf, bf = [W.copy() for W in Ws], [None if b is None else b.copy() for b in bs]
        res = train(spec, X, Y, Ws, bs, lr, seeds)
        etc = train_fast(spec, X, Y, Wf, bf, lr)
        same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(Ws + [b for b in bs if b is not None], Wf + [b for b in bf if b is not None]))
        same &= np.array_equal(res.epochs_to_converge, etc)
        ok &= same
        print(f"{name} {dtype} {v:15s} bit-identical to engine.train (weights, epochs_to_converge): {same}  ({int(res.diverged.sum())} of {R} runs diverged)")
    return ok


def main() -> None:
    from nnrun import datasets as ds

    ok = True
    x = ds.load("xor", bias_column=True)
    p = ds.load("parity", n_bits=3, bias_column=False)
    for dtype in ("float64", "float32"):
        ok &= _case("xor 3-4-1 sum", x.X, x.targets("sigmoid"), [3, 4, 1], False, "sum", dtype)
        ok &= _case("parity 3-5-3-1 +bias mean", p.X, p.targets("sigmoid"), [3, 5, 3, 1], True, "mean", dtype)
    print("ALL BIT-IDENTICAL" if ok else "MISMATCH")
    # grouping invariance and the seed replication, on the kernel itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from w1_epoch import seed_loop

    for dtype in ("float64", "float32"):
        R, seeds = 1001, np.arange(1001)
        spec = TrainSpec(variant=VARIANTS["mse"], epochs=500, dtype=dtype, stop_converged=False)
        Ws, bs = init_params("legacy", [3, 4, 1], seeds, dtype=dtype)
        train_fast(spec, x.X, x.targets("sigmoid"), Ws, bs, np.ones(R))
        alone = True
        for r in (0, 7, 500, 1000):
            W1s, b1s = init_params("legacy", [3, 4, 1], seeds[[r]], dtype=dtype)
            train_fast(spec, x.X, x.targets("sigmoid"), W1s, b1s, np.ones(1))
            alone &= all(np.array_equal(a[..., [r]], b) for a, b in zip(Ws, W1s))
        print(f"kernel {dtype}: runs 0, 7, 500, 1000 trained alone are bit-identical to the batch of 1001: {alone}")
    worst = 0.0
    for v in ("ce", "mse"):
        spec = TrainSpec(variant=VARIANTS[v], epochs=60_000, stop_converged=False)
        Ws, bs = init_params("legacy", [3, 4, 1], np.arange(4))
        train_fast(spec, x.X, x.targets("sigmoid"), Ws, bs, np.ones(4))
        for s_ in range(4):
            for a, b in zip((Ws[0][..., s_], Ws[1][..., s_]), seed_loop(s_, 60_000, v)):
                worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
    print(f"kernel seed replication (seeds 0-3, ce and mse, 60,000 epochs): worst rel diff {worst:.1e} ({'PASS' if worst < 1e-9 else 'FAIL'} at 1e-9)")
    # speed on W1 (ce, lr 1): engine.train vs the kernel, same epochs
    for dtype in ("float64", "float32"):
        for R in (1000, 10_000):
            E = max(50, 1_000_000 // R)
            seeds = np.arange(R)
            spec = TrainSpec(variant=VARIANTS["ce"], epochs=E, dtype=dtype, stop_converged=False, log_every=100)
            best = {"engine": np.inf, "kernel": np.inf}
            for _ in range(5):
                Ws, bs = init_params("legacy", [3, 4, 1], seeds, dtype=dtype)
                t = time.perf_counter()
                train(spec, x.X, x.targets("sigmoid"), Ws, bs, np.ones(R), seeds)
                best["engine"] = min(best["engine"], time.perf_counter() - t)
                Ws, bs = init_params("legacy", [3, 4, 1], seeds, dtype=dtype)
                t = time.perf_counter()
                train_fast(spec, x.X, x.targets("sigmoid"), Ws, bs, np.ones(R))
                best["kernel"] = min(best["kernel"], time.perf_counter() - t)
            print(f"W1 ce {dtype} R={R}: engine {R * E / best['engine']:.2e}/s, kernel {R * E / best['kernel']:.2e}/s, × {best['engine'] / best['kernel']:.2f}")


if __name__ == "__main__":
    main()
