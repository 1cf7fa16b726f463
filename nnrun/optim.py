"""Optimisers on stacked, runs-last parameters, with PyTorch's update formulas.

Each parameter is an array whose last axis is the run axis; ``lr`` has shape ``(runs,)``
and broadcasts against it, so every run of a batch has its own learning rate. A run
whose ``lr`` is 0 is frozen: its weights do not move. ``OPTIMIZERS`` is the registry: each
entry carries its arguments with their defaults and a description, from which the config
schema is derived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nnrun.registry import Param, resolve


def _oriented(arrays: Sequence[np.ndarray], lr: np.ndarray, cache: dict | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The arrays with the run axis moved first when that makes every one of them contiguous
    (parameters kept in runs-first storage, e.g. for minibatches), ``lr`` shaped to match;
    otherwise unchanged. The updates are element-wise, so this changes no number, only how
    NumPy walks the memory (a broadcast ``lr`` over strided views is slow)."""
    first = arrays[0]
    nd = first.ndim
    if nd < 2 or first.strides[-1] <= first.strides[0]:  # not runs-first storage
        return arrays, lr
    axes = _RUNS_FIRST[nd]
    moved = [x.transpose(axes) for x in arrays]
    if all(m.flags.c_contiguous for m in moved):
        if cache is None:
            return moved, np.reshape(lr, np.shape(lr) + (1,) * (nd - 1))
        return moved, _expanded(lr, moved[0].shape, cache)
    return arrays, lr


_RUNS_FIRST = {nd: (nd - 1,) + tuple(range(nd - 1)) for nd in range(2, 8)}
def _expanded(lr: np.ndarray, shape: tuple[int, ...], cache: dict) -> np.ndarray:
    """``lr`` (runs,) as a contiguous runs-first array of ``shape``: the same values, but
    NumPy multiplies two contiguous arrays ~2× faster than one broadcast over the other.
    ``cache`` (the optimiser's) keeps one per shape while ``lr`` holds the same values."""
    lr = np.asarray(lr)
    key, raw = (shape, lr.dtype.str), lr.tobytes()
    hit = cache.get(key)
    if hit is not None and hit[0] == raw:
        return hit[1]
    full = np.ascontiguousarray(np.broadcast_to(lr.reshape(lr.shape + (1,) * (len(shape) - 1)), shape))
    cache[key] = (raw, full)
    return full


def one_rate(lr: np.ndarray, cache: dict):
    """The rate as a scalar when every run has the same one (multiplying by it gives the same
    bits as by the broadcast array, in fewer cycles), else None; remembered for ``lr``'s
    identity, as the engine passes one array until a run stops."""
    if cache.get("lr") is not lr:
        lo, hi = np.min(lr), np.max(lr)
        cache["lr"], cache["rate"] = lr, (lo if lo == hi else None)
    return cache["rate"]


class SGD:
    """w ← w − lr·g (torch.optim.SGD)."""

    def __init__(self, params: Sequence[np.ndarray]) -> None:
        self.t = 0
        self.lr_cache: dict = {}
        self.rate_cache: dict = {}

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        rate = one_rate(lr, self.rate_cache)
        for w, g in zip(params, grads):
            if rate is None:
                (w, g), lr_ = _oriented((w, g), lr, self.lr_cache)
                g *= lr_
            elif rate != 1:  # g·1 is g
                g *= rate
            w -= g

    def compact(self, keep: np.ndarray) -> None:
        """Keep only the runs ``keep`` selects (the engine drops frozen runs)."""


class Momentum:
    """v ← βv + g, w ← w − lr·v (torch.optim.SGD with momentum, no dampening or Nesterov)."""

    def __init__(self, params: Sequence[np.ndarray], beta: float) -> None:
        self.t = 0
        self.beta = beta
        self.v = [np.zeros_like(w) for w in params]
        self.lr_cache: dict = {}
        self.rate_cache: dict = {}

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        rate = one_rate(lr, self.rate_cache)
        for w, g, v in zip(params, grads, self.v):
            (w, g, v), lr_ = _oriented((w, g, v), lr, self.lr_cache) if rate is None else ((w, g, v), rate)
            v *= self.beta
            v += g
            w -= lr_ * v

    def compact(self, keep: np.ndarray) -> None:
        self.v = [v[..., keep] for v in self.v]


class Adam:
    """torch.optim.Adam: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    w ← w − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)."""

    def __init__(self, params: Sequence[np.ndarray], beta1: float, beta2: float, eps: float) -> None:
        self.t = 0
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros_like(w) for w in params]
        self.v = [np.zeros_like(w) for w in params]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        step_size = lr / (1.0 - self.beta1**self.t)
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        for w, g, m, v in zip(params, grads, self.m, self.v):
            (w, g, m, v), step = _oriented((w, g, m, v), step_size)
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            w -= step * (m / denom)

    def compact(self, keep: np.ndarray) -> None:
        self.m = [m[..., keep] for m in self.m]
        self.v = [v[..., keep] for v in self.v]


@dataclass(frozen=True)
class Optimizer:
    """An optimiser nnrun knows by name: its update rule ``make``, what it is, its arguments.
    Calling the entry builds the rule with the arguments given over the defaults."""

    name: str
    description: str
    make: Callable[..., object]
    params: tuple[Param, ...] = ()

    def __call__(self, params: Sequence[np.ndarray], **args: float):
        return self.make(params, **resolve(self.params, args, f"optimizer {self.name!r}"))


def _decay(name: str, default: float, description: str) -> Param:
    return Param(name, float, default, description, ge=0, lt=1)


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("sgd", "plain gradient descent, w ← w − lr·g, as the seed (torch.optim.SGD)", SGD),
        Optimizer(
            "momentum", "heavy-ball momentum, v ← βv + g, w ← w − lr·v (torch.optim.SGD with momentum)", Momentum,
            (_decay("beta", 0.9, "momentum factor β (PyTorch users' usual 0.9)"),),
        ),
        Optimizer(
            "adam", "Adam with bias correction (torch.optim.Adam)", Adam,
            (
                _decay("beta1", 0.9, "decay β₁ of the gradient's running mean (torch.optim.Adam's)"),
                _decay("beta2", 0.999, "decay β₂ of the squared gradient's running mean (torch.optim.Adam's)"),
                Param("eps", float, 1e-8, "ε added to the denominator (torch.optim.Adam's)", gt=0),
            ),
        ),
    )
}  # fmt: skip
