"""Optimisers on stacked, runs-last parameters, with PyTorch's update formulas.

Each parameter is an array whose last axis is the run axis; ``lr`` has shape ``(runs,)``
and broadcasts against it, so every run of a batch has its own learning rate. A run
whose ``lr`` is 0 is frozen: its weights do not move.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class SGD:
    """w ← w − lr·g (torch.optim.SGD)."""

    def __init__(self, params: Sequence[np.ndarray]) -> None:
        self.t = 0

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        for w, g in zip(params, grads):
            g *= lr
            w -= g

    def compact(self, keep: np.ndarray) -> None:
        """Keep only the runs ``keep`` selects (the engine drops frozen runs)."""


class Momentum:
    """v ← βv + g, w ← w − lr·v (torch.optim.SGD with momentum, no dampening or Nesterov)."""

    def __init__(self, params: Sequence[np.ndarray], beta: float = 0.9) -> None:
        self.t = 0
        self.beta = beta
        self.v = [np.zeros_like(w) for w in params]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        for w, g, v in zip(params, grads, self.v):
            v *= self.beta
            v += g
            w -= lr * v

    def compact(self, keep: np.ndarray) -> None:
        self.v = [v[..., keep] for v in self.v]


class Adam:
    """torch.optim.Adam: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    w ← w − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)."""

    def __init__(self, params: Sequence[np.ndarray], beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.t = 0
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros_like(w) for w in params]
        self.v = [np.zeros_like(w) for w in params]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: np.ndarray) -> None:
        self.t += 1
        step_size = lr / (1.0 - self.beta1**self.t)
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        for w, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            w -= step_size * (m / denom)

    def compact(self, keep: np.ndarray) -> None:
        self.m = [m[..., keep] for m in self.m]
        self.v = [v[..., keep] for v in self.v]


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
