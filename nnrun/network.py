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

from nnrun.variants import ACTIVATIONS, DERIVATIVES, Variant, rsum

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
