"""A fused full-batch epoch for the commonest case: small sigmoid networks under SGD.

``FullBatchKernel`` performs exactly the operations of ``network.forward``,
``network.backward`` and ``optim.SGD`` in the same order, so every number is bit-identical
to the reference path (and so grouping-invariant; tests/test_engine.py compares the two
bit for bit). It is the one place where formulas are spelled out again, as ufunc calls,
each beside the name of the function it mirrors; it only avoids the reference's
temporaries:

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
metrics from the kernel's outputs (``keep_z``). benchmarks/bench.py measures it.
"""

from __future__ import annotations

import math

import numpy as np

from nnrun.network import LOOP_LIMIT
from nnrun.optim import one_rate
from nnrun.variants import rsum

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

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs, sparse: bool = True) -> None:
        self.sparse = sparse  # skip the shared input's zero terms (False: the dense loop, to compare)
        dt = Ws[0].dtype
        n, R = len(X), Ws[0].shape[-1]
        self.dt, self.n = dt, n
        # The parameters, and their gradients, live in one (rows, R) array each, so the SGD
        # update is two calls whatever the depth; ``Ws``/``bs`` are views into it, which the
        # engine trains from here on (element-wise, so no number changes).
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
        self.X_negated = (-X).astype(dt)  # negated shared input: exp(Σ(−x)w) == exp(−Σxw)
        self.X = X.astype(dt)
        self.Y = Y.astype(dt)[..., None]  # (n, k, 1)
        self.one = dt.type(1.0)
        self.scale = dt.type(1.0 / n) if spec.reduction == "mean" else None
        self.times_derivative = spec.variant.delta_rule.name == "times_derivative"
        self.layers = len(Ws)
        empty = lambda *shape: np.empty(shape, dtype=dt)  # noqa: E731
        self.a = [None] + [empty(n, W.shape[1], R) for W in Ws]  # activations (a[0] is X)
        self.sigmoid_prime = [None] + [empty(n, W.shape[1], R) for W in Ws[:-1]]  # a(1 − a) of hidden layers
        self.term = [empty(n, W.shape[1], R) for W in Ws]  # one product of a contraction
        self.delta = [empty(n, W.shape[1], R) for W in Ws]
        self.gW_term = [np.empty_like(W) for W in Ws]  # one sample's term of gW
        self.error = empty(n, Ws[-1].shape[1], R)
        self.abs_error = empty(n, Ws[-1].shape[1], R)
        self.zero_z = empty(n, Ws[-1].shape[1], R)  # 0·z: NaN where the output z is ±inf or NaN
        self.max_error = empty(R)
        self.z_out = empty(n, Ws[-1].shape[1], R)
        # Products of a whole contraction in one call, (n, in, out, R), then summed in the
        # loop's order: the same products and additions as the loop, in fewer NumPy calls.
        self.products = [empty(n, W.shape[0], W.shape[1], R) if n * W.shape[0] * W.shape[1] <= PRODUCT_CELLS else None for W in Ws]
        self.products_by_input = [None if p is None else p.reshape(W.shape[0], n, W.shape[1], R) for p, W in zip(self.products, Ws)]  # (in, n, out, R)
        # Sparse plans for the shared input (it is the same for every run): per sample, the
        # first layer's (input, coefficient) terms that are not exactly 0, in the summation
        # order, and per input the (sample, coefficient) terms of its weight gradient. A skipped
        # term 0·w adds ±0 (no change but the sign of a zero sum, which exp and the updates of
        # nonzero weights do not see); a coefficient ±1 is an add or subtract (x·w == ±w). Both
        # hold only while every skipped w is finite, so each epoch checks that first (one sum:
        # it is finite only if every term is) and takes the dense loop otherwise.
        Xs = self.X_negated if bs[0] is None else self.X
        self.plan_z1 = _sparse_plan(Xs)  # z1[k] = Σᵢ Xs[k, i]·W1[i]
        self.plan_gW1 = _sparse_plan(self.X.T)  # gW1[i] = Σₖ X[k, i]·delta1[k]
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
        """Write down the epoch's calls in the reference's order (layers numbered from 1):

        forward  = x·W1 (``tape_xW1_sparse`` or ``tape_xW1_dense``), ``tape_to_z_out`` (up to the
                   output z), ``tape_keep_z`` on logged epochs, ``tape_output`` (a = σ(z),
                   a − y, max error);
        backward = ``tape_backward`` (output delta; gW, gb and delta of layers L … 2),
                   gW1 = xᵀ·delta1 (``tape_gW1_sparse`` or ``tape_gW1_dense``), ``tape_gb1``, SGD.
        """
        self.W1_check = self._finite_check(self.Ws[0])
        self._forward_tapes()
        self._backward_tapes()

    def _forward_tapes(self) -> None:
        Ws, bs, L = self.Ws, self.bs, self.layers
        self.tape_xW1_sparse, self.tape_xW1_dense, self.tape_to_z_out, self.tape_keep_z, self.tape_output = [], [], [], [], []
        t = self.tape_to_z_out
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z, term = self.a[l + 1], self.term[l]  # z, then a = σ(z) in the same buffer
            negated = l == 0 and b is None  # fold −1 into the shared input
            if l == 0:
                self._sparse_steps(self.tape_xW1_sparse, self.plan_z1, W, z, term)
                self._affine_dense(self.tape_xW1_dense, l, W, z, term, negated)
            else:
                self._affine_dense(t, l, W, z, term, negated)
            if b is not None:
                t.append((np.add, (z, b, z)))
            if l == L - 1:
                t.append((np.multiply, (z, self.dt.type(0), self.zero_z)))
                # z holds −z when negated: negation is exact
                self.tape_keep_z.append((np.negative, (z, self.z_out)) if negated else (np.copyto, (self.z_out, z)))
                t = self.tape_output
            # variants.sigmoid: 1 / (1 + exp(−z)), its calls in its order
            if not negated:
                t.append((np.negative, (z, z)))
            t += [(np.exp, (z, z)), (np.add, (z, self.one, z)), (np.divide, (self.one, z, z))]
            if l < L - 1:  # variants.sigmoid_derivative: a · (1 − a)
                a_prime = self.sigmoid_prime[l + 1]
                t += [(np.subtract, (self.one, z, a_prime)), (np.multiply, (z, a_prime, a_prime))]
        t += [  # engine.metrics' max_error, and variants.delta_a_minus_y: a − y
            (np.subtract, (self.a[-1], self.Y, self.error)),
            (np.absolute, (self.error, self.abs_error)),
            (np.add, (self.abs_error, self.zero_z, self.abs_error)),  # |a − y| + 0·z: unchanged, or NaN if z is not finite
            (np.maximum.reduce, (self.abs_error, (0, 1), None, self.max_error)),
        ]

    def _backward_tapes(self) -> None:
        Ws, bs, L = self.Ws, self.bs, self.layers
        self.tape_backward, self.tape_gW1_sparse, self.tape_gW1_dense, self.tape_gb1 = [], [], [], []
        t = self.tape_backward
        delta = self.delta[-1]
        if self.times_derivative:  # variants.delta_times_derivative: (a − y) · (a · (1 − a))
            a, a_prime = self.a[-1], self.term[-1]
            t += [(np.subtract, (self.one, a, a_prime)), (np.multiply, (a, a_prime, a_prime)), (np.multiply, (self.error, a_prime, delta))]
        elif self.scale is None:
            delta = self.error  # a − y itself (only read from here on)
        else:
            t.append((np.copyto, (delta, self.error)))
        if self.scale is not None:
            t.append((np.multiply, (delta, self.scale, delta)))
        for l in range(L - 1, -1, -1):
            W, gW, gW_term = Ws[l], self.gW[l], self.gW_term[l]
            if l == 0:
                self.delta1_check = self._finite_check(delta)
                self._sparse_steps(self.tape_gW1_sparse, self.plan_gW1, delta, gW, gW_term)
                self._weight_grad_dense(self.tape_gW1_dense, l, delta, gW, gW_term)
                t = self.tape_gb1
            else:
                self._weight_grad_dense(t, l, delta, gW, gW_term)
            if bs[l] is not None:
                t.append((_assign_rsum, (self.gb[l], delta)))
            if l > 0:  # network.backprop, then times σ'(z) of the layer below
                below, term = self.delta[l - 1], self.term[l - 1]
                t.append((np.multiply, (delta[:, None, 0, :], W[None, :, 0, :], below)))
                for o in range(1, W.shape[1]):
                    t += [(np.multiply, (delta[:, None, o, :], W[None, :, o, :], term)), (np.add, (below, term, below))]
                t.append((np.multiply, (below, self.sigmoid_prime[l], below)))
                delta = below

    def _affine_dense(self, t: list, l: int, W, z, term, negated: bool) -> None:
        """z = Σᵢ x[:, i]·W[i], summed in i order (network.affine's loop)."""
        if self.products[l] is not None:
            products = self.products_by_input[l]
            x = (self.X_negated if negated else self.X).T[:, :, None, None] if l == 0 else self.a[l].transpose(1, 0, 2)[:, :, None, :]
            t.append((np.multiply, (x, W[:, None], products)))
            self._sum_steps(t, products, z)
            return
        x = (self.X_negated if negated else self.X)[:, :, None, None] if l == 0 else self.a[l][:, :, None, :]
        t.append((np.multiply, (x[:, 0], W[0], z)))
        for i in range(1, W.shape[0]):
            t += [(np.multiply, (x[:, i], W[i], term)), (np.add, (z, term, z))]

    def _weight_grad_dense(self, t: list, l: int, delta, gW, gW_term) -> None:
        """gW = Σₖ a[k]·delta[k], summed in k order (network.weight_grad's loop)."""
        a = self.X[:, :, None, None] if l == 0 else self.a[l][:, :, None, :]
        if self.products[l] is not None:
            t.append((np.multiply, (a, delta[:, None], self.products[l])))
            self._sum_steps(t, self.products[l], gW)
            return
        t.append((np.multiply, (a[0], delta[0, None], gW)))
        for k in range(1, self.n):
            t += [(np.multiply, (a[k], delta[k, None], gW_term)), (np.add, (gW, gW_term, gW))]

    @staticmethod
    def _sum_steps(t: list, products: np.ndarray, out: np.ndarray) -> None:
        """out = products[0] + products[1] + … left to right, as the loop adds."""
        parts = list(products)
        if len(parts) == 1:
            t.append((np.copyto, (out, parts[0])))
            return
        t.append((np.add, (parts[0], parts[1], out)))
        t += [(np.add, (out, p, out)) for p in parts[2:]]

    @staticmethod
    def _sparse_steps(t: list, plan, src: np.ndarray, out: np.ndarray, term: np.ndarray) -> None:
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
                t += [(np.multiply, (src[m], c, term[sl])), (np.add, (o, term[sl], o))]

    # ------------------------------------------------------------------------- an epoch

    def forward(self, keep_z: bool = False) -> np.ndarray:
        """Fills the activations and returns max |a − y| per run: the engine's max_error, or
        NaN where the engine's ``_finite`` would call the run diverged (z not finite).
        ``keep_z``: also keep the output layer's z in ``z_out`` (for the logged metrics)."""
        _run(self.tape_xW1_sparse if self.sparse and self._finite(self.W1_check) else self.tape_xW1_dense)
        _run(self.tape_to_z_out)
        if keep_z:
            _run(self.tape_keep_z)
        _run(self.tape_output)
        return self.max_error

    def backward_step(self, lr: np.ndarray) -> None:
        """Gradients of the last forward pass and the SGD update (``lr`` per run), as
        network.backward + optim.SGD."""
        _run(self.tape_backward)
        _run(self.tape_gW1_sparse if self.sparse and self._finite(self.delta1_check) else self.tape_gW1_dense)
        _run(self.tape_gb1)
        if lr is not self.lr:  # SGD: g *= lr; w -= g, every parameter at once
            self.lr = lr
            rate = one_rate(lr, {})
            scale = lr if rate is None else None if rate == 1 else rate  # g·1 is g, and one rate is a scalar
            self.sgd = [] if scale is None else [(np.multiply, (self.grad, scale, self.grad))]
            self.sgd.append((np.subtract, (self.theta, self.grad, self.theta)))
        _run(self.sgd)
