"""A fused full-batch epoch for the commonest case: small sigmoid networks under SGD.

``FullBatchKernel`` performs exactly the operations of ``engine.forward``, ``engine.backward``
and ``optim.SGD`` in the same order, so every number is bit-identical to the reference path
(and so grouping-invariant); it only avoids the reference's temporaries:

* every array is allocated once and written with ``out=``;
* the sigmoid's negation is folded into the shared input (``Σ(−x)·w == −Σx·w`` exactly),
  so the first layer's sigmoid is three passes: exp, +1, reciprocal;
* the output error ``a − y`` is computed once for the max-error check and the delta.

It applies to full-batch SGD with sigmoid hidden and output layers, the ce/mse deltas
(exact or forced), the max_error criterion, and every width and the sample count at most
``LOOP_LIMIT`` (so the reference uses its element-wise loops too). Logged epochs still go
through the reference path. Measured ×1.9–3.3 on the seed's network (benchmarks/).
"""

from __future__ import annotations

import numpy as np

from nnrun.variants import delta_a_minus_y, delta_sigmoid_mse, rsum

LOOP_LIMIT = 16  # the engine's: longer contractions take its per-run matmul path instead
LOOP_CELLS = 256  # the engine's: larger per-run products take its per-run matmul path too


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


class FullBatchKernel:
    """Buffers for one batch of R runs; ``epoch`` does forward, check, backward, SGD."""

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
