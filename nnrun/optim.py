"""Optimisers on stacked, runs-last parameters, with PyTorch's update formulas.

Each parameter is an array whose last index is the run (its memory may be in either
order: the updates are element-wise); ``lr`` has shape ``(runs,)`` and broadcasts
against it, so every run of a batch has its own learning rate. A run whose ``lr`` is 0
is frozen: its weights do not move. ``OPTIMIZERS`` is the registry: each entry carries
its arguments with their defaults and a description, from which the config schema is
derived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nnrun.registry import Param, resolve


def _rate_like(lr: np.ndarray, x: np.ndarray, cache: dict, key) -> np.ndarray:
    """``lr`` (runs,) as an array of ``x``'s shape and memory order: the same values, but
    NumPy multiplies two arrays of one layout ~2× faster than it broadcasts ``lr`` over a
    runs-first one. ``cache`` (the optimiser's) keeps one per ``key`` while ``lr`` holds the
    same values and ``x`` the same shape."""
    raw = np.asarray(lr).tobytes()
    hit = cache.get(key)
    if hit is not None and hit[0] == raw and hit[1].shape == x.shape:
        return hit[1]
    full = np.empty_like(x, dtype=np.asarray(lr).dtype)  # empty_like keeps x's memory order
    full[...] = lr
    cache[key] = (raw, full)
    return full


def _scratch(cache: dict, key, x: np.ndarray, *others) -> np.ndarray:
    """A buffer of ``x``'s shape and memory order, of the type NumPy gives ``x`` combined with
    ``others`` (a float32 parameter times a float64 rate is float64, and an ``out=`` of
    another type would round differently); ``cache`` keeps one per ``key``."""
    dtype = np.result_type(x, *others)
    hit = cache.get(key)
    if hit is None or hit.shape != x.shape or hit.dtype != dtype:
        hit = cache[key] = np.empty_like(x, dtype=dtype)
    return hit


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
        for i, (w, g) in enumerate(zip(params, grads)):
            if rate is None:
                g *= _rate_like(lr, g, self.lr_cache, i)
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
        self.scratch: dict = {}  # lr·v, without a new array each step
        self.lr_cache: dict = {}
        self.rate_cache: dict = {}

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        rate = one_rate(lr, self.rate_cache)
        for i, (w, g, v) in enumerate(zip(params, grads, self.v)):
            lr_ = _rate_like(lr, v, self.lr_cache, i) if rate is None else rate
            v *= self.beta
            v += g
            w -= np.multiply(v, lr_, out=_scratch(self.scratch, i, v, lr_))

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
        self.scratch: dict = {}  # each step's terms, in turn, without new arrays

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        step_size = lr / (1.0 - self.beta1**self.t)
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        for i, (w, g, m, v) in enumerate(zip(params, grads, self.m, self.v)):
            s = _scratch(self.scratch, i, v)
            m *= self.beta1
            m += np.multiply(g, 1.0 - self.beta1, out=s)
            v *= self.beta2
            np.multiply(g, g, out=s)
            s *= 1.0 - self.beta2
            v += s
            denom = np.sqrt(v, out=s)  # √v / √(1−β₂ᵗ) + ε
            denom /= bias_correction2_sqrt
            denom += self.eps
            ratio = np.divide(m, denom, out=s)
            w -= np.multiply(ratio, step_size, out=_scratch(self.scratch, (i, "step"), ratio, step_size))

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
