"""How an epoch updates the working runs: the fused kernel, full-batch or minibatch backprop.

A stepper holds the working weights ``Ws``/``bs`` (the runs the engine has not dropped,
in the memory order it computes fastest in) and the optimiser's state, and offers

* ``outputs()`` — the output layer's ``(z, a)`` at the current weights, for the metrics;
* ``step(epoch, lr)`` — one epoch of updates at per-run rates ``lr`` (0 freezes a run);
* ``compact(keep)`` — keep only the runs ``keep`` selects.

All three give the numbers of ``network.forward``/``network.backward`` and ``optim``,
bit for bit; they differ in speed only.
"""

from __future__ import annotations

import numpy as np

from nnrun import fastpath
from nnrun.network import RunsFirstPass, backward, forward, use_loop
from nnrun.optim import OPTIMIZERS


def _params(Ws, bs) -> list[np.ndarray]:
    return Ws + [b for b in bs if b is not None]


def _unparams(params: list[np.ndarray], bs) -> tuple[list, list]:
    """``_params``'s inverse: weights and biases (None where ``bs`` has none) from its list."""
    biases = iter(params[len(bs) :])
    return params[: len(bs)], [None if b is None else next(biases) for b in bs]


class FusedStepper:
    """Full-batch SGD on small sigmoid networks through ``fastpath.FullBatchKernel``, which
    trains its own copy of the weights. Its check needs no metrics: ``max_error()``."""

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs, sparse: bool = True) -> None:
        self.spec, self.X, self.Y, self.sparse = spec, X, Y, sparse
        self._start(Ws, bs)

    def _start(self, Ws, bs) -> None:
        self.kernel = fastpath.FullBatchKernel(self.spec, self.X, self.Y, Ws, bs, sparse=self.sparse)
        self.Ws, self.bs = self.kernel.Ws, self.kernel.bs
        self.fresh = False  # has the kernel's forward pass run on the current weights?

    def max_error(self) -> np.ndarray:
        """max |a − y| per working run, NaN where the output z is not finite."""
        self.fresh = True
        return self.kernel.forward()

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        self.kernel.forward(keep_z=True)
        self.fresh = True
        return self.kernel.z_out, self.kernel.a[-1]

    def step(self, epoch: int, lr: np.ndarray) -> None:
        if not self.fresh:
            self.kernel.forward()
        self.kernel.backward_step(lr)
        self.fresh = False

    def compact(self, keep: np.ndarray) -> None:
        self._start([W[..., keep] for W in self.Ws], [None if b is None else b[..., keep] for b in self.bs])


class FullBatchStepper:
    """Full-batch backprop: the forward pass of an epoch serves its metrics and its step."""

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs) -> None:
        self.spec, self.X, self.Y = spec, X, Y[..., None]  # (n, k, 1) broadcasts over runs
        self.Ws, self.bs = Ws, bs
        self.scale = 1.0 / len(X) if spec.reduction == "mean" else 1.0
        self.opt = OPTIMIZERS[spec.optimizer](_params(Ws, bs), **dict(spec.optimizer_args))
        self.passed = None  # (zs, acts) at the current weights, once computed

    def _forward(self):
        if self.passed is None:
            self.passed = forward(self.Ws, self.bs, self.X, self.spec.activation, self.spec.variant)
        return self.passed

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        zs, acts = self._forward()
        return zs[-1], acts[-1]

    def step(self, epoch: int, lr: np.ndarray) -> None:
        zs, acts = self._forward()
        gW, gb = backward(self.Ws, zs, acts, self.Y, self.spec.activation, self.spec.variant, self.scale, self.bs)
        self.opt.step(_params(self.Ws, self.bs), _params(gW, gb), lr)
        self.passed = None

    def compact(self, keep: np.ndarray) -> None:
        self.Ws = [W[..., keep] for W in self.Ws]
        self.bs = [None if b is None else b[..., keep] for b in self.bs]
        self.opt.compact(keep)
        self.passed = None


class MinibatchStepper:
    """Minibatch backprop. Each run's sample order is reshuffled every epoch from its own
    seed, so runs sharing a seed see the same order and stay paired. A minibatch gathers
    each run's own samples in runs-first memory; where some contraction at the batch size
    is a matrix product (``runs_first``), the parameters live in one runs-first buffer and
    each minibatch runs through ``RunsFirstPass``'s buffers, so no contraction copies an
    operand, no step allocates its activations or gradients, and the optimiser updates
    every parameter in one call."""

    KEY_EPOCHS = 64  # epochs of shuffle keys drawn at a time

    def __init__(self, spec, X: np.ndarray, Y: np.ndarray, Ws, bs, seeds: np.ndarray, runs_first: bool) -> None:
        self.spec, self.X, self.Y, self.runs_first = spec, X, Y, runs_first
        self._store(Ws, bs)
        self.opt = OPTIMIZERS[spec.optimizer](self.params, **dict(spec.optimizer_args))
        self.rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.keys = None

    def _store(self, Ws, bs) -> None:
        self.passes: dict[int, RunsFirstPass] = {}  # by batch size: the last minibatch may be short
        if not self.runs_first:
            self.Ws, self.bs, self.params = Ws, bs, _params(Ws, bs)
            return
        self.flat, views = flat_storage(_params(Ws, bs))
        self.Ws, self.bs = _unparams(views, bs)
        self.params = [self.flat.T]  # (parameters, runs): the optimiser's runs-last view
        self.grads = np.empty_like(self.flat)

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        zs, acts = forward(self.Ws, self.bs, self.X, self.spec.activation, self.spec.variant)
        return zs[-1], acts[-1]

    def step(self, epoch: int, lr: np.ndarray) -> None:
        spec, n = self.spec, len(self.X)
        if epoch % self.KEY_EPOCHS == 0:
            self.keys = shuffle_keys(self.rngs, min(self.KEY_EPOCHS, spec.epochs - epoch), n)
        order = sample_order(self.keys[:, epoch % self.KEY_EPOCHS])  # (runs, n)
        for start in range(0, n, spec.batch_size):
            idx = order[:, start : start + spec.batch_size]  # (runs, B)
            scale = 1.0 / idx.shape[1] if spec.reduction == "mean" else 1.0
            if self.runs_first:
                self._pass(idx.shape[1]).gradients(self.X, self.Y, idx, scale)
                self.opt.step(self.params, [self.grads.T], lr)
                continue
            Xb = np.take(self.X, idx, axis=0).transpose(1, 2, 0)  # (B, features, runs), runs-first memory
            Yb = np.take(self.Y, idx, axis=0).transpose(1, 2, 0)
            zs, acts = forward(self.Ws, self.bs, Xb, spec.activation, spec.variant)
            gW, gb = backward(self.Ws, zs, acts, Yb, spec.activation, spec.variant, scale, self.bs)
            self.opt.step(self.params, _params(gW, gb), lr)

    def _pass(self, B: int) -> RunsFirstPass:
        if B not in self.passes:
            gW, gb = _unparams(flat_views(self.grads, _params(self.Ws, self.bs)), self.bs)
            self.passes[B] = RunsFirstPass(self.spec, B, self.X, self.Y, self.Ws, self.bs, gW, gb)
        return self.passes[B]

    def compact(self, keep: np.ndarray) -> None:
        self._store([W[..., keep] for W in self.Ws], [None if b is None else b[..., keep] for b in self.bs])
        self.opt.compact(keep)
        self.rngs = [g for g, k in zip(self.rngs, keep) if k]
        if self.keys is not None:
            self.keys = self.keys[keep]


def runs_first_pays(batch_size: int, sizes: list[int]) -> bool:
    """Is some contraction of a minibatch of ``batch_size`` a per-run matrix product (shapes
    only, never the number of runs)? Otherwise runs-last memory keeps the loops fastest."""
    B = batch_size
    return any(not (use_loop(i, B, o) and use_loop(o, B, i) and use_loop(B, i, o)) for i, o in zip(sizes[:-1], sizes[1:]))


def flat_storage(params: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One runs-first buffer (runs, Σ parameter sizes) holding copies of ``params`` (runs-last
    arrays), and runs-last views of it in their shapes."""
    flat = np.empty((params[0].shape[-1], sum(p[..., 0].size for p in params)), params[0].dtype)
    views = flat_views(flat, params)
    for v, p in zip(views, params):
        v[...] = p
    return flat, views


def flat_views(flat: np.ndarray, params: list[np.ndarray]) -> list[np.ndarray]:
    """Runs-last views of consecutive stretches of each row of ``flat`` (runs, total), shaped
    as ``params``."""
    views, start = [], 0
    for p in params:
        size = p[..., 0].size
        v = flat[:, start : start + size].reshape((flat.shape[0],) + p.shape[:-1])
        views.append(np.moveaxis(v, 0, -1))
        start += size
    return views


def shuffle_keys(rngs: list[np.random.Generator], epochs: int, n: int) -> np.ndarray:
    """(runs, epochs, n) sort keys; a run's keys depend on its own stream only."""
    keys = np.empty((len(rngs), epochs, n))
    for g, k in zip(rngs, keys):
        g.random(out=k)  # the same draws as g.random((epochs, n)), without np.stack's copy
    return keys


def sample_order(keys: np.ndarray) -> np.ndarray:
    """Each row's stable argsort, ``np.argsort(keys, axis=1, kind="stable")``. Where no row has
    two equal keys the sorted permutation is unique, so the ~5× faster unstable sort gives
    the same one; a tie anywhere falls back to the stable sort."""
    order = np.argsort(keys, axis=1)
    s = np.take_along_axis(keys, order, axis=1)
    if (s[:, 1:] > s[:, :-1]).all():
        return order
    return np.argsort(keys, axis=1, kind="stable")
