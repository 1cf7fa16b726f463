"""Forward and backward passes of a batch of runs that share shapes, as stacked arrays.

Indexing: weights ``W[l]`` are ``(fan_in, fan_out, runs)``, biases ``b[l]`` are
``(fan_out, runs)``, activations ``(samples, units, runs)``; the run axis is last in every
index, so per-run learning rates broadcast. Memory order is a separate, storage choice: an
array may be a runs-last view of runs-first memory (the engine keeps minibatch weights so
where a contraction is a per-run matrix product). Every function here gives the same
numbers for either order, and its results follow its operands' order, so a pass over
runs-first memory copies nothing.

Grouping invariance: every contraction is either a loop of element-wise multiply and add
(exact IEEE operations, the same for each run whatever else is in the batch) or one matrix
product per run on contiguous runs-first operands, so a run gives bit-identical numbers
trained alone or among thousands. Never a BLAS call whose result could depend on the
other runs' columns.
"""

from __future__ import annotations

import numpy as np

from nnrun.variants import A_MINUS_Y, ACTIVATIONS, DERIVATIVES, Variant, rsum

# Contractions over at most LOOP_LIMIT terms, producing at most LOOP_CELLS numbers per run,
# run as a loop of element-wise operations over all runs at once; others as one matrix
# product per run. The choice depends on shapes only, never on the number of runs, so a
# run takes the same arithmetic alone or batched.
LOOP_LIMIT = 16
LOOP_CELLS = 256


def use_loop(terms: int, rows: int, cols: int) -> bool:
    return terms <= LOOP_LIMIT and rows * cols <= LOOP_CELLS


def forward(Ws, bs, X, activation: str, variant: Variant):
    """Lists of pre-activations z and activations a (a[0] is the input ``X``: shared,
    (samples, features), or per run, (samples, features, runs))."""
    act = ACTIVATIONS[activation]
    zs, acts = [], [X]
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = affine(acts[-1], W, b)
        zs.append(z)
        acts.append(variant.output_fn(z) if l == len(Ws) - 1 else act(z))
    return zs, acts


def backward(Ws, zs, acts, Y, activation: str, variant: Variant, scale: float, bs=None):
    """Gradients of the summed (scale=1) or averaged loss: lists gW, gb indexed as the
    weights; given the biases ``bs``, gb[l] is None where layer l has none."""
    deriv = DERIVATIVES[activation]
    delta = variant.delta_fn(zs[-1], acts[-1], Y)  # a new array: scaled in place
    if scale != 1.0:
        delta *= scale
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        gW[l] = weight_grad(acts[l], delta)
        if bs is None or bs[l] is not None:
            gb[l] = rsum(delta, 0)
        if l > 0:
            delta = backprop(delta, Ws[l])
            delta *= deriv(zs[l - 1], acts[l])
    return gW, gb


# ----------------------------------------------------------------------------- contractions


def affine(a: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """z[n,o,r] = Σᵢ a[n,i,r]·W[i,o,r] + b[o,r]; ``a`` may be shared, (samples, in)."""
    n, fan_in, fan_out = a.shape[0], W.shape[0], W.shape[1]
    if use_loop(fan_in, n, fan_out):
        x = a[:, :, None, None] if a.ndim == 2 else a[:, :, None, :]  # (n, in, 1, runs or 1)
        z = _sum_of_products((x[:, i], W[i]) for i in range(fan_in))
    else:
        z = np.matmul(a if a.ndim == 2 else _runs_first(a), _runs_first(W)).transpose(1, 2, 0)
    if b is not None:
        z += b  # z is this function's own array
    return z


def backprop(delta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """d[n,i,r] = Σₒ delta[n,o,r]·W[i,o,r]."""
    fan_in, fan_out = W.shape[0], W.shape[1]
    if use_loop(fan_out, delta.shape[0], fan_in):
        return _sum_of_products((delta[:, None, o, :], W[None, :, o, :]) for o in range(fan_out))
    return np.matmul(_runs_first(delta), _runs_first(W, (2, 1, 0))).transpose(1, 2, 0)


def weight_grad(a: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """g[i,o,r] = Σₙ a[n,i,r]·delta[n,o,r]; ``a`` may be shared, (samples, in)."""
    n, fan_in, fan_out = delta.shape[0], a.shape[1], delta.shape[1]
    if use_loop(n, fan_in, fan_out):
        x = a[:, :, None, None] if a.ndim == 2 else a[:, :, None, :]  # (n, in, 1, runs or 1)
        return _sum_of_products((x[k], delta[k, None]) for k in range(n))
    d = _runs_first(delta)
    if a.ndim == 2:
        return np.matmul(np.ascontiguousarray(a.T), d).transpose(1, 2, 0)
    # aᵀ as a transposed view of a contiguous runs-first a: BLAS reads it transposed, with no
    # copy, whichever memory order a came in.
    return np.matmul(_runs_first(a).transpose(0, 2, 1), d).transpose(1, 2, 0)


def _sum_of_products(pairs) -> np.ndarray:
    """Σ x·y over ``pairs`` in their order, one element-wise multiply and add at a time; the
    sum follows its operands' memory order."""
    pairs = iter(pairs)
    total = np.multiply(*next(pairs))
    product = np.empty_like(total)
    for x, y in pairs:
        np.multiply(x, y, out=product)
        total += product
    return total


def _runs_first(x: np.ndarray, axes: tuple[int, ...] = (2, 0, 1)) -> np.ndarray:
    """A contiguous runs-first array (no copy if ``x`` is a view of one): np.matmul then makes
    the same BLAS call for every run, whatever the batch size (a strided view may take
    NumPy's own loop, which rounds differently)."""
    return np.ascontiguousarray(x.transpose(axes))


# ----------------------------------------------------------------------------- runs-first minibatches


class RunsFirstPass:
    """``forward`` then ``backward`` of minibatches of ``B`` samples, in runs-first memory,
    ``(runs, samples, units)``, into buffers that every minibatch of that size reuses.

    ``Ws``/``bs`` are runs-last views of runs-first parameter storage; the gradients are
    written into the runs-last views ``gW``/``gb`` (of the same kind of storage). It performs
    the operations of ``forward``/``backward`` in their order on operands in the memory order
    those functions would see — every matrix product on the same contiguous per-run operands
    — so every number is theirs, bit for bit; contractions on their loop path, and
    activations or deltas with no in-place form here, are computed by those functions and
    copied in."""

    def __init__(self, spec, B: int, X: np.ndarray, Y: np.ndarray, Ws, bs, gW, gb) -> None:
        R, dtype = Ws[0].shape[-1], Ws[0].dtype
        self.spec, self.B, self.Ws, self.bs, self.gW, self.gb = spec, B, Ws, bs, gW, gb
        self.Wr = [W.transpose(2, 0, 1) for W in Ws]  # (runs, in, out) views
        self.a = [np.empty((R, B, X.shape[1]), X.dtype)] + [np.empty((R, B, W.shape[1]), dtype) for W in Ws]
        self.z = [np.empty_like(a) for a in self.a[1:]]
        self.d = [np.empty_like(a) for a in self.a[1:]]  # deltas at each layer's output
        self.y = np.empty((R, B, Y.shape[1]), Y.dtype)
        self.dT = [np.empty((R, W.shape[1], B), dtype) for W in Ws]  # for the bias sums
        self.WT = [np.empty((R, W.shape[1], W.shape[0]), dtype) for W in Ws]  # for backprop
        self.s = [np.empty_like(a) for a in self.a[1:-1]]  # activation derivatives
        self.m = np.empty((R, B, 1), dtype)  # softmax's max, then its sum
        # Runs-first views, made once: (runs, 1, out) biases, (runs, out, in) weights,
        # (runs, in, out) and (runs, out) gradients, (runs, in, samples) activations.
        self.br = [None if b is None else b.T[:, None, :] for b in bs]
        self.WrT = [W.transpose(2, 1, 0) for W in Ws]
        self.gWr = [g.transpose(2, 0, 1) for g in gW]
        self.gbr = [None if g is None else g.T for g in gb]
        self.aT = [a.transpose(0, 2, 1) for a in self.a]

    def gradients(self, X: np.ndarray, Y: np.ndarray, idx: np.ndarray, scale: float) -> None:
        """The gradients of the minibatch ``idx`` (runs, B) of samples of ``X``/``Y``."""
        X.take(idx, axis=0, out=self.a[0], mode="clip")  # idx is in range: clip never applies; out= with
        Y.take(idx, axis=0, out=self.y, mode="clip")  # the default mode would buffer a copy
        for l in range(len(self.Ws)):
            self._affine(l)
            self._activate(l)
        self._output_delta(scale)
        for l in range(len(self.Ws) - 1, -1, -1):
            self._grads(l)
            if l > 0:
                self._backprop(l)

    def _affine(self, l: int) -> None:
        a, z, W = self.a[l], self.z[l], self.Ws[l]
        if use_loop(W.shape[0], self.B, W.shape[1]):
            np.copyto(z, affine(_rl(a), W, None).transpose(2, 0, 1))
        else:
            np.matmul(a, self.Wr[l], out=z)
        if self.br[l] is not None:
            z += self.br[l]

    def _activate(self, l: int) -> None:
        z, a = self.z[l], self.a[l + 1]
        last = l == len(self.Ws) - 1
        kind = self.spec.variant.output if last else self.spec.activation
        if kind == "sigmoid":  # variants.sigmoid
            np.negative(z, out=a)
            np.exp(a, out=a)
            np.add(a, 1.0, out=a)
            np.divide(1.0, a, out=a)
        elif kind == "softmax":
            self._softmax(z, a)
        else:
            np.copyto(a, _rf_view((self.spec.variant.output_fn if last else ACTIVATIONS[kind])(_rl(z))))

    def _softmax(self, z: np.ndarray, e: np.ndarray) -> None:
        """variants.softmax over the units, here the contiguous last axis."""
        m = self.m
        if z.shape[-1] > 16:
            np.max(z, axis=-1, keepdims=True, out=m)
        else:  # variants._max_over_units's loop: the same maximum
            np.copyto(m, z[..., :1])
            for o in range(1, z.shape[-1]):
                np.maximum(m, z[..., o : o + 1], out=m)
        np.subtract(z, m, out=e)
        np.exp(e, out=e)
        np.sum(e, axis=-1, keepdims=True, out=m)  # the sum rsum makes over a contiguous axis
        np.divide(e, m, out=e)

    def _output_delta(self, scale: float) -> None:
        variant, d = self.spec.variant, self.d[-1]
        if variant.delta_rule.name == A_MINUS_Y.name:
            np.subtract(self.a[-1], self.y, out=d)
        else:
            np.copyto(d, _rf_view(variant.delta_fn(_rl(self.z[-1]), _rl(self.a[-1]), _rl(self.y))))
        if scale != 1.0:
            d *= scale

    def _grads(self, l: int) -> None:
        a, d = self.a[l], self.d[l]
        if use_loop(self.B, a.shape[2], d.shape[2]):
            np.copyto(self.gW[l], weight_grad(_rl(a), _rl(d)))
        else:
            np.matmul(self.aT[l], d, out=self.gWr[l])
        if self.gb[l] is not None:  # rsum over the samples: a contiguous copy, summed innermost
            np.copyto(self.dT[l], d.transpose(0, 2, 1))
            np.sum(self.dT[l], axis=-1, out=self.gbr[l])

    def _backprop(self, l: int) -> None:
        d, below, W = self.d[l], self.d[l - 1], self.Ws[l]
        if use_loop(W.shape[1], self.B, W.shape[0]):
            np.copyto(below, backprop(_rl(d), W).transpose(2, 0, 1))
        else:
            np.copyto(self.WT[l], self.WrT[l])
            np.matmul(d, self.WT[l], out=below)
        if self.spec.activation == "sigmoid":  # variants.sigmoid_derivative: a·(1 − a)
            s = self.s[l - 1]
            np.subtract(1.0, self.a[l], out=s)
            np.multiply(self.a[l], s, out=s)
            below *= s
        else:
            np.multiply(_rl(below), DERIVATIVES[self.spec.activation](_rl(self.z[l - 1]), _rl(self.a[l])), out=_rl(below))


def _rl(x: np.ndarray) -> np.ndarray:
    """The runs-last view (samples, units, runs) of a runs-first array."""
    return x.transpose(1, 2, 0)


def _rf_view(x: np.ndarray) -> np.ndarray:
    """The runs-first view (runs, samples, units) of a runs-last array."""
    return x.transpose(2, 0, 1)
