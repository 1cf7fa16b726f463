"""Activations, output functions, losses and output-delta rules: the science of nnrun.

Every array here is laid out runs-last: ``(samples, units, runs)``. The run axis is
last so that per-run learning rates broadcast and all runs of a batch share each
NumPy call. All functions are pure and share one signature per kind:

* hidden activations ``f(z) -> a`` with derivatives ``f'(z, a)``;
* outputs ``g(z) -> a``;
* per-sample losses ``L(z, a, y) -> (samples, runs)``, summed over output units;
* output deltas ``delta(z, a, y) -> dL/dz`` (or the textbook formula a variant forces).

Overflow in ``exp`` is harmless here (it saturates to 0 or 1), so callers run these
under ``np.errstate(all="ignore")``; the losses are computed from ``z`` so that they
stay finite however saturated the output is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Array = np.ndarray


def rsum(x: Array, axis: int, keepdims: bool = False) -> Array:
    """Sum over ``axis`` in an order fixed by that axis's length alone.

    NumPy sums a contiguous axis pairwise but a strided one sequentially, so a plain
    ``x.sum(axis)`` can round differently when the run axis has length 1. Moving the
    summed axis last (contiguous) makes every run's sum the same whatever the batch.
    """
    y = np.ascontiguousarray(np.moveaxis(x, axis, -1)).sum(axis=-1)
    return np.expand_dims(y, axis) if keepdims else y

# ----------------------------------------------------------------------------- hidden


def sigmoid(z: Array) -> Array:
    # Written exactly as the seed writes it, so `legacy` runs reproduce it bit for bit.
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_derivative(z: Array, a: Array) -> Array:
    return a * (1.0 - a)


def tanh_derivative(z: Array, a: Array) -> Array:
    return 1.0 - a * a


def relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def relu_derivative(z: Array, a: Array) -> Array:
    return (z > 0).astype(z.dtype)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"sigmoid": sigmoid, "tanh": np.tanh, "relu": relu}
DERIVATIVES: dict[str, Callable[[Array, Array], Array]] = {
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
}
ACTIVATION_FORMULAS = {"sigmoid": "1/(1+e^-z)", "tanh": "tanh z", "relu": "max(z, 0)"}

# ----------------------------------------------------------------------------- outputs


def softmax(z: Array) -> Array:
    """Softmax over the units axis (axis 1), shifted by the max so exp never overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / rsum(e, 1, keepdims=True)


def identity(z: Array) -> Array:
    return z


OUTPUTS: dict[str, Callable[[Array], Array]] = {"sigmoid": sigmoid, "softmax": softmax, "linear": identity}
OUTPUT_FORMULAS = {"sigmoid": "a = σ(z)", "softmax": "a = e^z / Σe^z", "linear": "a = z"}

# ----------------------------------------------------------------------------- losses


def softplus(z: Array) -> Array:
    """log(1 + e^z) without overflow."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid_cross_entropy(z: Array, a: Array, y: Array) -> Array:
    # −[y log σ(z) + (1−y) log(1−σ(z))] = softplus(z) − y·z, finite for any z.
    return rsum(softplus(z) - y * z, 1)


def softmax_cross_entropy(z: Array, a: Array, y: Array) -> Array:
    # −Σ y log softmax(z) = logsumexp(z)·Σy − Σ y·z, finite wherever lse − z is (|z| up to ~1e308;
    # beyond, 0 · ∞ gives NaN, which the engine counts as divergence).
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(rsum(np.exp(z - m), 1, keepdims=True))
    return rsum(y * (lse - z), 1)


def squared_error(z: Array, a: Array, y: Array) -> Array:
    # ½ Σ (a − y)²
    d = a - y
    return 0.5 * rsum(d * d, 1)


# (output, loss) -> per-sample loss. Cross-entropy means the one that matches the output:
# Bernoulli per unit for sigmoid, categorical for softmax; it has no meaning for `linear`.
LOSSES: dict[tuple[str, str], Callable[[Array, Array, Array], Array]] = {
    ("sigmoid", "ce"): sigmoid_cross_entropy,
    ("softmax", "ce"): softmax_cross_entropy,
    ("sigmoid", "mse"): squared_error,
    ("softmax", "mse"): squared_error,
    ("linear", "mse"): squared_error,
}
LOSS_FORMULAS = {
    ("sigmoid", "ce"): "−Σ[y log a + (1−y) log(1−a)]",
    ("softmax", "ce"): "−Σ y log a",
    ("sigmoid", "mse"): "½Σ(a − y)²",
    ("softmax", "mse"): "½Σ(a − y)²",
    ("linear", "mse"): "½Σ(a − y)²",
}

# ----------------------------------------------------------------------------- deltas


def delta_a_minus_y(z: Array, a: Array, y: Array) -> Array:
    # Ng: exact for sigmoid + CE, softmax + categorical CE and linear + squared error.
    return a - y


def delta_sigmoid_mse(z: Array, a: Array, y: Array) -> Array:
    # Mitchell: exact for sigmoid + ½(a−y)²; the σ'(z) = a(1−a) factor vanishes when the
    # output saturates. Bracketed as the seed brackets it, so legacy runs match it exactly.
    return (a - y) * (a * (1.0 - a))


def delta_softmax_mse(z: Array, a: Array, y: Array) -> Array:
    # Exact for softmax + ½Σ(a−y)²: Jacobianᵀ(a − y) = a ⊙ ((a − y) − Σⱼ(aⱼ − yⱼ)aⱼ).
    d = a - y
    return a * (d - rsum(d * a, 1, keepdims=True))


def delta_softmax_diagonal(z: Array, a: Array, y: Array) -> Array:
    # Mitchell's formula forced on a softmax: (a − y)·a(1 − a) keeps only the diagonal of the
    # softmax Jacobian, so it is the exact gradient of no loss listed here.
    return (a - y) * (a * (1.0 - a))


# The true dL/dz for each (output, loss) pair: `delta: exact` looks itself up here.
EXACT_DELTAS: dict[tuple[str, str], Callable[[Array, Array, Array], Array]] = {
    ("sigmoid", "ce"): delta_a_minus_y,
    ("softmax", "ce"): delta_a_minus_y,
    ("sigmoid", "mse"): delta_sigmoid_mse,
    ("softmax", "mse"): delta_softmax_mse,
    ("linear", "mse"): delta_a_minus_y,
}
EXACT_DELTA_FORMULAS = {
    ("sigmoid", "ce"): "a − y",
    ("softmax", "ce"): "a − y",
    ("sigmoid", "mse"): "(a − y)·a(1 − a)",
    ("softmax", "mse"): "a ⊙ ((a − y) − Σⱼ(aⱼ − yⱼ)aⱼ)",
    ("linear", "mse"): "a − y",
}
# The two textbook formulas, forced: (rule, output) -> delta.
FORCED_DELTAS: dict[tuple[str, str], Callable[[Array, Array, Array], Array]] = {
    ("a_minus_y", "sigmoid"): delta_a_minus_y,
    ("a_minus_y", "softmax"): delta_a_minus_y,
    ("a_minus_y", "linear"): delta_a_minus_y,
    ("times_derivative", "sigmoid"): delta_sigmoid_mse,
    ("times_derivative", "softmax"): delta_softmax_diagonal,
    ("times_derivative", "linear"): delta_a_minus_y,  # identity' = 1
}
FORCED_DELTA_FORMULAS = {"a_minus_y": "a − y", "times_derivative": "(a − y)·a(1 − a)"}

OUTPUT_NAMES = tuple(OUTPUTS)
LOSS_NAMES = ("ce", "mse")
DELTA_RULES = ("exact", "a_minus_y", "times_derivative")


class VariantError(ValueError):
    """A variant whose output, loss and delta do not fit together."""


@dataclass(frozen=True)
class Variant:
    """An (output, loss, delta rule) triple; `exact` says whether delta is dL/dz."""

    name: str
    output: str
    loss: str
    delta: str = "exact"
    description: str = ""

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise VariantError(f"variant {self.name!r}: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.loss not in LOSS_NAMES:
            raise VariantError(f"variant {self.name!r}: loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        if (self.output, self.loss) not in LOSSES:
            raise VariantError(
                f"variant {self.name!r}: loss {self.loss!r} is not defined for a {self.output!r} output "
                f"(cross-entropy needs probabilities: use a sigmoid or softmax output)"
            )
        if self.delta not in DELTA_RULES:
            raise VariantError(f"variant {self.name!r}: delta must be one of {', '.join(DELTA_RULES)}, got {self.delta!r}")

    @property
    def exact(self) -> bool:
        return self.delta == "exact" or self.delta_fn is EXACT_DELTAS[(self.output, self.loss)]

    @property
    def output_fn(self) -> Callable[[Array], Array]:
        return OUTPUTS[self.output]

    @property
    def loss_fn(self) -> Callable[[Array, Array, Array], Array]:
        return LOSSES[(self.output, self.loss)]

    @property
    def delta_fn(self) -> Callable[[Array, Array, Array], Array]:
        if self.delta == "exact":
            return EXACT_DELTAS[(self.output, self.loss)]
        return FORCED_DELTAS[(self.delta, self.output)]

    @property
    def loss_formula(self) -> str:
        return LOSS_FORMULAS[(self.output, self.loss)]

    @property
    def delta_formula(self) -> str:
        if self.delta == "exact":
            return EXACT_DELTA_FORMULAS[(self.output, self.loss)]
        return FORCED_DELTA_FORMULAS[self.delta]


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("ce", "sigmoid", "ce", "exact", "Ng's course: sigmoid + cross-entropy, delta a − y"),
        Variant("mse", "sigmoid", "mse", "exact", "Mitchell's book: sigmoid + squared error, delta (a − y)·a(1 − a)"),
        Variant("ce-softmax", "softmax", "ce", "exact", "softmax + categorical cross-entropy, delta a − y"),
        Variant("mse-softmax", "softmax", "mse", "exact", "softmax + squared error, delta through the softmax Jacobian"),
        Variant("mse-linear", "linear", "mse", "exact", "identity output + squared error, delta a − y"),
        Variant("ng-on-mse", "sigmoid", "mse", "a_minus_y", "mismatch: claims squared error, uses Ng's a − y"),
        Variant("mitchell-on-ce", "sigmoid", "ce", "times_derivative", "mismatch: claims cross-entropy, uses Mitchell's (a − y)·a(1 − a)"),
    )
}
