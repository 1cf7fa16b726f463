"""A fused full-batch epoch for the commonest case: small sigmoid networks under SGD.

``FullBatchKernel`` performs exactly the operations of ``engine.forward``, ``engine.backward``
and ``optim.SGD`` in the same order, so every number is bit-identical to the reference path
(and so grouping-invariant); it only avoids the reference's temporaries:

* every array is allocated once and written with ``out=``;
* the sigmoid's negation is folded into the shared input (``Σ(−x)·w == −Σx·w`` exactly),
  so the first layer's sigmoid is three passes: exp, +1, reciprocal;
* the output error ``a − y`` is computed once for the max-error check and the delta;
* a small contraction forms all its products in one call, then adds them in the loop's order;
* the shared input's exact-zero terms are skipped and its ±1 coefficients become an add or
  subtract (``_sparse_plan``), while the skipped weights and deltas are finite (checked each
  epoch; otherwise the dense loop, so diverged runs keep the reference's NaN/inf weights).
  Skipping a ±0 term can change only the sign of an exact-zero sum, which exp and the
  update of a nonzero weight do not see;
* the calls, with their views, are written down once as tapes of ``(ufunc, args)`` and
  replayed each epoch (the buffers and weights never move), so Python adds little to
  NumPy's own ~0.45 µs a call;
* all parameters (and gradients) share one array, so SGD is one multiply and one subtract,
  the multiply by a scalar when every run has the same rate and none at rate 1 (g·1 = g).

It applies to full-batch SGD with sigmoid hidden and output layers, the ce/mse deltas
(exact or forced), the max_error criterion, and every width and the sample count at most
``LOOP_LIMIT`` (so the reference uses its element-wise loops too). Logged epochs take their
metrics from the kernel's outputs (``keep_z``). Measured ×1.9–3.3 on the seed's network,
then ×1.1–1.2 more from the sparse input and fewer calls, then ×1.3 (float64) to ×1.4
(float32) from the tapes and the shared parameter array (benchmarks/).
"""

from __future__ import annotations

import math

import numpy as np

from nnrun.optim import one_rate
from nnrun.variants import rsum

LOOP_LIMIT = 16  # the engine's: longer contractions take its per-run matmul path instead
LOOP_CELLS = 256  # the engine's: larger per-run products take its per-run matmul path too
PRODUCT_CELLS = 256  # contractions with at most this many products per run form them in one call


def applies(spec, X: np.ndarray, sizes: list[int]) -> bool:
    """Does the fused kernel reproduce the reference path for this batch?"""
    v = spec.variant
    return (
        (spec.batch_size is None or spec.batch_size >= len(X))
        and spec.optimizer == "sgd"
        and spec.activation == "sigmoid"
        and v.output == "sigmoid"
        and v.delta_rule.name in ("a_minus_y", "times_derivative")
        and spec.criterion == "max_error"
        and len(X) <= LOOP_LIMIT
        and max(sizes) <= LOOP_LIMIT
    )


def _sparse_plan(C: np.ndarray) -> list[tuple]:
    """Steps (m, first, c, rows) for out[j] = Σₘ C[j, m]·src[m]: for each m in order, the rows
    j whose term m is nonzero with coefficient c, as slices, split into those it starts
    (``first``) and those it adds to; (None, …, rows) zero-fills rows with no term."""
    J, M = C.shape
    start = [next((m for m in range(M) if C[j, m] != 0), None) for j in range(J)]
    steps = [(None, True, 0, sl) for sl in _slices([j for j in range(J) if start[j] is None])]
    for m in range(M):
        for first in (True, False):
            rows = [j for j in range(J) if C[j, m] != 0 and (start[j] == m) == first]
            for c in dict.fromkeys(C[j, m] for j in rows):
                steps += [(m, first, c, sl) for sl in _slices([j for j in rows if C[j, m] == c])]
    return steps


def _slices(js: list[int]) -> list[slice]:
    """Increasing indices as few evenly spaced slices."""
    out, i = [], 0
    while i < len(js):
        k = i + 1
        if k < len(js):
            step = js[k] - js[i]
            while k < len(js) and js[k] - js[k - 1] == step:
                k += 1
        else:
            step = 1
        out.append(slice(js[i], js[k - 1] + 1, step))
        i = k
    return out


def _run(tape: list[tuple]) -> None:
    for f, args in tape:
        f(*args)


def _assign_rsum(out: np.ndarray, d: np.ndarray) -> None:
    out[...] = rsum(d, 0)  # the engine's order-fixed sum


class FullBatchKernel:
    """Buffers for one batch of R runs and the weights ``Ws``/``bs`` it trains in place;
    ``forward`` then ``backward_step`` is one epoch: forward, check, backward, SGD.

    Every buffer and weight array stays the same object for the kernel's life, so each
    epoch's calls, with their views, are written down once (``_tapes``) as lists of
    ``(ufunc, args)``: an epoch replays them with no slicing or branching in Python. Where
    the reference would take another path (a shared-input weight or delta not finite), an
    alternative tape for that stretch is kept beside the sparse one."""

    sparse = True

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs) -> None:
        dt = Ws[0].dtype
        n, R = len(X), Ws[0].shape[-1]
        self.dt, self.n, self.R = dt, n, R
        # The parameters, and their gradients, live in one (rows, R) array each, so the SGD
        # update is two calls whatever the depth; ``Ws``/``bs`` are views into it, which the
        # engine trains from here on (elementwise, so no number changes).
        shapes = [W.shape for W in Ws] + [b.shape for b in bs if b is not None]
        rows = [math.prod(shape[:-1]) for shape in shapes]
        self.theta, self.grad = np.empty((sum(rows), R), dtype=dt), np.empty((sum(rows), R), dtype=dt)
        offsets = np.cumsum([0] + rows).tolist()
        views = [(self.theta[o : o + k].reshape(shape), self.grad[o : o + k].reshape(shape)) for o, k, shape in zip(offsets, rows, shapes)]
        given = list(Ws) + [b for b in bs if b is not None]
        for (view, _), source in zip(views, given):
            np.copyto(view, source)
        params = iter(views)
        self.Ws, self.gW = map(list, zip(*[next(params) for _ in Ws]))
        self.bs, self.gb = [None] * len(bs), [None] * len(bs)
        for l, b in enumerate(bs):
            if b is not None:
                self.bs[l], self.gb[l] = next(params)
        self.Xn = (-X).astype(dt)  # negated shared input: exp(Σ(−x)w) == exp(−Σxw)
        self.X = X.astype(dt)
        self.Y = Y.astype(dt)[..., None]  # (n, k, 1)
        self.one = dt.type(1.0)
        self.scale = dt.type(1.0 / n) if spec.reduction == "mean" else None
        self.mse = spec.variant.delta_rule.name == "times_derivative"
        self.L = len(Ws)
        e = lambda *s: np.empty(s, dtype=dt)  # noqa: E731
        self.a = [None] + [e(n, W.shape[1], R) for W in Ws]  # activations (a[0] is X)
        self.s = [None] + [e(n, W.shape[1], R) for W in Ws[:-1]]  # a(1 − a) of hidden layers
        self.tmp = [e(n, W.shape[1], R) for W in Ws]
        self.delta = [e(n, W.shape[1], R) for W in Ws]
        self.tW = [np.empty_like(W) for W in Ws]
        self.err = e(n, Ws[-1].shape[1], R)
        self.abs = e(n, Ws[-1].shape[1], R)
        self.zero = e(n, Ws[-1].shape[1], R)  # 0·z: NaN where the output z is ±inf or NaN
        self.max_error = e(R)
        self.z_out = e(n, Ws[-1].shape[1], R)
        # Products of a whole contraction in one call, (n, in, out, R), then summed in the
        # loop's order: the same products and additions as the loop, in fewer NumPy calls.
        self.P = [e(n, W.shape[0], W.shape[1], R) if n * W.shape[0] * W.shape[1] <= PRODUCT_CELLS else None for W in Ws]
        self.Pf = [None if P is None else P.reshape(W.shape[0], n, W.shape[1], R) for P, W in zip(self.P, Ws)]  # (in, n, out, R)
        # Sparse plans for the shared input (it is the same for every run): per sample, the
        # first layer's (input, coefficient) terms that are not exactly 0, in the summation
        # order, and per input the (sample, coefficient) terms of its weight gradient. A skipped
        # term 0·w adds ±0 (no change but the sign of a zero sum, which exp and the updates of
        # nonzero weights do not see); a coefficient ±1 is an add or subtract (x·w == ±w). Both
        # hold only while every skipped w is finite, so each epoch checks that first (one sum:
        # it is finite only if every term is) and takes the dense loop otherwise.
        self.ones: dict[int, np.ndarray] = {}
        Xs = self.Xn if bs[0] is None else self.X
        self.rows = _sparse_plan(Xs)  # z[k] = Σᵢ Xs[k, i]·W[i]
        self.cols = _sparse_plan(self.X.T)  # g[i] = Σₖ X[k, i]·d[k]
        self._tapes()
        self.lr = None
        self.sgd: list[tuple] = []

    def _finite_check(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat view of the contiguous ``x``, ones) for ``_finite``."""
        flat = x.reshape(-1)
        assert np.shares_memory(flat, x), "a kernel buffer must be contiguous"
        return flat, np.ones(flat.size, dtype=self.dt)

    @staticmethod
    def _finite(check: tuple[np.ndarray, np.ndarray]) -> bool:
        """Is every element of the array behind ``check`` finite? Its sum (one BLAS dot with
        ones) is finite only if they are; an overflowing sum of finite values only costs the
        dense loop."""
        return math.isfinite(np.dot(*check))

    # ------------------------------------------------------------------------- the tapes

    def _tapes(self) -> None:
        """Write down the epoch's calls in the reference's order:

        forward  = f0 (layer 0's contraction: ``f0_sparse`` or ``f0_dense``), ``f1`` (up to
                   the output layer's z), ``keep_z`` on logged epochs, ``f2`` (the rest);
        backward = ``b1`` (output delta, layers L−1 … 1), b0 (``b0_sparse`` or ``b0_dense``:
                   layer 0's weight gradient), ``b2`` (layer 0's bias gradient), SGD.
        """
        Ws, bs, L = self.Ws, self.bs, self.L
        self.f0_sparse, self.f0_dense, self.f1, self.keep_z, self.f2 = [], [], [], [], []
        self.w0 = self._finite_check(Ws[0])
        t = self.f1
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z, tmp = self.a[l + 1], self.tmp[l]
            negated = l == 0 and b is None  # fold −1 into the shared input
            if l == 0:
                self._sparse_steps(self.f0_sparse, self.rows, W, z, tmp)
                self._forward_dense(self.f0_dense, l, W, z, tmp, negated)
            else:
                self._forward_dense(t, l, W, z, tmp, negated)
            if b is not None:
                t.append((np.add, (z, b, z)))
            if l == L - 1:
                t.append((np.multiply, (z, self.dt.type(0), self.zero)))
                # z holds −z when negated: negation is exact
                self.keep_z.append((np.negative, (z, self.z_out)) if negated else (np.copyto, (self.z_out, z)))
                t = self.f2
            if not negated:
                t.append((np.negative, (z, z)))
            t += [(np.exp, (z, z)), (np.add, (z, self.one, z)), (np.divide, (self.one, z, z))]
            if l < L - 1:
                t += [(np.subtract, (self.one, z, self.s[l + 1])), (np.multiply, (z, self.s[l + 1], self.s[l + 1]))]
        t += [
            (np.subtract, (self.a[-1], self.Y, self.err)),
            (np.absolute, (self.err, self.abs)),
            (np.add, (self.abs, self.zero, self.abs)),  # |a − y| + 0·z: unchanged, or NaN if z is not finite
            (np.maximum.reduce, (self.abs, (0, 1), None, self.max_error)),
        ]

        self.b1, self.b0_sparse, self.b0_dense, self.b2 = [], [], [], []
        t = self.b1
        d = self.delta[-1]
        if self.mse:  # (a − y) · (a · (1 − a))
            a, tm = self.a[-1], self.tmp[-1]
            t += [(np.subtract, (self.one, a, tm)), (np.multiply, (a, tm, tm)), (np.multiply, (self.err, tm, d))]
        elif self.scale is None:
            d = self.err  # a − y itself (only read from here on)
        else:
            t.append((np.copyto, (d, self.err)))
        if self.scale is not None:
            t.append((np.multiply, (d, self.scale, d)))
        for l in range(L - 1, -1, -1):
            W, g, tw = Ws[l], self.gW[l], self.tW[l]
            if l == 0:
                self.d0 = self._finite_check(d)
                self._sparse_steps(self.b0_sparse, self.cols, d, g, tw)
                self._grad_dense(self.b0_dense, l, d, g, tw)
                t = self.b2
            else:
                self._grad_dense(t, l, d, g, tw)
            if bs[l] is not None:
                t.append((_assign_rsum, (self.gb[l], d)))
            if l > 0:
                nd, tmp = self.delta[l - 1], self.tmp[l - 1]
                t.append((np.multiply, (d[:, None, 0, :], W[None, :, 0, :], nd)))
                for o in range(1, W.shape[1]):
                    t += [(np.multiply, (d[:, None, o, :], W[None, :, o, :], tmp)), (np.add, (nd, tmp, nd))]
                t.append((np.multiply, (nd, self.s[l], nd)))
                d = nd

    def _forward_dense(self, t: list, l: int, W, z, tmp, negated: bool) -> None:
        """z = Σᵢ x[:, i]·W[i], summed in i order."""
        if self.P[l] is not None:
            P = self.Pf[l]
            src = (self.Xn if negated else self.X).T[:, :, None, None] if l == 0 else self.a[l].transpose(1, 0, 2)[:, :, None, :]
            t.append((np.multiply, (src, W[:, None], P)))
            self._sum_steps(t, P, z)
            return
        x = (self.Xn if negated else self.X)[:, :, None, None] if l == 0 else self.a[l][:, :, None, :]
        t.append((np.multiply, (x[:, 0], W[0], z)))
        for i in range(1, W.shape[0]):
            t += [(np.multiply, (x[:, i], W[i], tmp)), (np.add, (z, tmp, z))]

    def _grad_dense(self, t: list, l: int, d, g, tw) -> None:
        """g = Σₖ a[k]·d[k], summed in k order."""
        src = self.X[:, :, None, None] if l == 0 else self.a[l][:, :, None, :]
        if self.P[l] is not None:
            t.append((np.multiply, (src, d[:, None], self.P[l])))
            self._sum_steps(t, self.P[l], g)
            return
        t.append((np.multiply, (src[0], d[0, None], g)))
        for k in range(1, self.n):
            t += [(np.multiply, (src[k], d[k, None], tw)), (np.add, (g, tw, g))]

    @staticmethod
    def _sum_steps(t: list, P: np.ndarray, out: np.ndarray) -> None:
        """out = P[0] + P[1] + … left to right, as the loop adds."""
        parts = list(P)
        if len(parts) == 1:
            t.append((np.copyto, (out, parts[0])))
            return
        t.append((np.add, (parts[0], parts[1], out)))
        t += [(np.add, (out, p, out)) for p in parts[2:]]

    @staticmethod
    def _sparse_steps(t: list, plan, src: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        """out[j] = Σₘ C[j, m]·src[m] summed in m order without the exact-zero terms, for
        finite ``src`` (``_sparse_plan``): each out[j] sees the dense loop's nonzero terms in
        the dense loop's order."""
        for m, first, c, sl in plan:
            o = out[sl]
            if m is None:
                t.append((o.fill, (0,)))
            elif first:
                if c == 1:
                    t.append((np.copyto, (o, src[m])))
                elif c == -1:
                    t.append((np.negative, (src[m], o)))
                else:
                    t.append((np.multiply, (src[m], c, o)))
            elif c == 1:
                t.append((np.add, (o, src[m], o)))
            elif c == -1:
                t.append((np.subtract, (o, src[m], o)))
            else:
                t += [(np.multiply, (src[m], c, tmp[sl])), (np.add, (o, tmp[sl], o))]

    # ------------------------------------------------------------------------- an epoch

    def forward(self, keep_z: bool = False) -> np.ndarray:
        """Fills the activations and returns max |a − y| per run: the engine's max_error, or
        NaN where the engine's ``_finite`` would call the run diverged (z not finite).
        ``keep_z``: also keep the output layer's z in ``z_out`` (for the logged metrics)."""
        _run(self.f0_sparse if self.sparse and self._finite(self.w0) else self.f0_dense)
        _run(self.f1)
        if keep_z:
            _run(self.keep_z)
        _run(self.f2)
        return self.max_error

    def backward_step(self, lr: np.ndarray) -> None:
        """Gradients of the last forward pass and the SGD update (``lr`` per run), as
        engine.backward + SGD."""
        _run(self.b1)
        _run(self.b0_sparse if self.sparse and self._finite(self.d0) else self.b0_dense)
        _run(self.b2)
        if lr is not self.lr:  # SGD: g *= lr; w -= g, every parameter at once
            self.lr = lr
            rate = one_rate(lr, {})
            scale = lr if rate is None else None if rate == 1 else rate  # g·1 is g, and one rate is a scalar
            self.sgd = [] if scale is None else [(np.multiply, (self.grad, scale, self.grad))]
            self.sgd.append((np.subtract, (self.theta, self.grad, self.theta)))
        _run(self.sgd)
