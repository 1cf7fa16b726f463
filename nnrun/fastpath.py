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
  update of a nonzero weight do not see.

It applies to full-batch SGD with sigmoid hidden and output layers, the ce/mse deltas
(exact or forced), the max_error criterion, and every width and the sample count at most
``LOOP_LIMIT`` (so the reference uses its element-wise loops too). Logged epochs take their
metrics from the kernel's outputs (``keep_z``). Measured ×1.9–3.3 on the seed's network,
then ×1.1–1.2 more from the sparse input and fewer calls (benchmarks/).
"""

from __future__ import annotations

import math

import numpy as np

from nnrun.variants import delta_a_minus_y, delta_sigmoid_mse, rsum

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
        and v.delta_fn in (delta_a_minus_y, delta_sigmoid_mse)
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


class FullBatchKernel:
    """Buffers for one batch of R runs; ``epoch`` does forward, check, backward, SGD."""

    sparse = True

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs) -> None:
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

    def _finite(self, x: np.ndarray) -> bool:
        """Is every element of the contiguous ``x`` finite? Its sum (one BLAS dot) is finite
        only if they are; an overflowing sum of finite values only costs the dense loop."""
        ones = self.ones.get(x.size)
        if ones is None:
            ones = self.ones[x.size] = np.ones(x.size, dtype=self.dt)
        return math.isfinite(np.dot(x.reshape(-1), ones))

    @staticmethod
    def _sum(P: np.ndarray, axis: int, out: np.ndarray) -> None:
        """out = P[0] + P[1] + … along ``axis``, left to right, as the loop adds."""
        parts = [P[:, i] for i in range(P.shape[1])] if axis == 1 else list(P)
        if len(parts) == 1:
            np.copyto(out, parts[0])
            return
        np.add(parts[0], parts[1], out=out)
        for p in parts[2:]:
            np.add(out, p, out=out)

    @staticmethod
    def _sparse(plan, src: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        """out[j] = Σₘ C[j, m]·src[m] summed in m order without the exact-zero terms, for
        finite ``src`` (``_sparse_plan``): each out[j] sees the dense loop's nonzero terms in
        the dense loop's order."""
        for m, first, c, sl in plan:
            o = out[sl]
            if m is None:
                o.fill(0)
            elif first:
                if c == 1:
                    np.copyto(o, src[m])
                elif c == -1:
                    np.negative(src[m], out=o)
                else:
                    np.multiply(src[m], c, out=o)
            elif c == 1:
                np.add(o, src[m], out=o)
            elif c == -1:
                np.subtract(o, src[m], out=o)
            else:
                np.multiply(src[m], c, out=tmp[sl])
                np.add(o, tmp[sl], out=o)

    def _sigmoid_of_neg(self, a: np.ndarray) -> None:
        np.exp(a, out=a)
        np.add(a, self.one, out=a)
        np.divide(self.one, a, out=a)

    def forward(self, Ws, bs, keep_z: bool = False) -> np.ndarray:
        """Fills the activations and returns max |a − y| per run: the engine's max_error, or
        NaN where the engine's ``_finite`` would call the run diverged (z not finite).
        ``keep_z``: also keep the output layer's z in ``z_out`` (for the logged metrics)."""
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z, tmp = self.a[l + 1], self.tmp[l]
            negated = l == 0 and b is None  # fold −1 into the shared input
            P = self.P[l]
            if l == 0 and self.sparse and self._finite(W):
                self._sparse(self.rows, W, z, tmp)
            elif P is not None:  # z = Σᵢ x[:, i]·W[i], summed in i order
                P = self.Pf[l]
                src = (self.Xn if negated else self.X).T[:, :, None, None] if l == 0 else self.a[l].transpose(1, 0, 2)[:, :, None, :]
                np.multiply(src, W[:, None], out=P)
                self._sum(P, 0, z)
            elif l == 0:
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
                if keep_z and negated:  # z holds −z here: negation is exact
                    np.negative(z, out=self.z_out)
                elif keep_z:
                    np.copyto(self.z_out, z)
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
        elif self.scale is None:
            d = self.err  # a − y itself (only read from here on)
        else:
            np.copyto(d, self.err)
        if self.scale is not None:
            np.multiply(d, self.scale, out=d)
        for l in range(self.L - 1, -1, -1):
            W, g, t = Ws[l], self.gW[l], self.tW[l]
            P = self.P[l]
            if l == 0 and self.sparse and self._finite(d):
                self._sparse(self.cols, d, g, t)
            elif P is not None:  # g = Σₖ a[k]·d[k], summed in k order
                src = self.X[:, :, None, None] if l == 0 else self.a[l][:, :, None, :]
                np.multiply(src, d[:, None], out=P)
                self._sum(P, 0, g)
            elif l == 0:
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
