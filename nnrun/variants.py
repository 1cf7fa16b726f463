"""Activations, output functions, losses and output-delta rules: the science of nnrun.

Every array here is indexed runs-last: ``(samples, units, runs)``, so that per-run
learning rates broadcast and all runs of a batch share each NumPy call; the memory
behind an index may be in either order (the engine keeps some runs-first) and each
function gives the same numbers for both. All functions are pure and share one
signature per kind:

* hidden activations ``f(z) -> a`` with derivatives ``f'(z, a)``;
* outputs ``g(z) -> a``;
* per-sample losses ``L(z, a, y) -> (samples, runs)``, summed over output units;
* output deltas ``delta(z, a, y) -> dL/dz`` (or the textbook formula a variant forces),
  each a ``Delta`` rule that the engine knows by name, never by function identity.

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

    NumPy sums the axis that is innermost in memory pairwise but a strided one sequentially,
    so a plain ``x.sum(axis)`` can round differently when the run axis has length 1. Summing
    an axis that is contiguous in memory (copied innermost if it is not, the other axes
    keeping their memory order, which the result then has too) makes every run's sum the
    same whatever the batch.
    """
    if x.strides[axis] == x.itemsize and min(x.strides) > 0:  # already innermost: no copy
        return x.sum(axis=axis, keepdims=keepdims)
    others = sorted((k for k in range(x.ndim) if k != axis), key=lambda k: -abs(x.strides[k]))  # outermost first
    y = np.ascontiguousarray(x.transpose(others + [axis])).sum(axis=-1).transpose(np.argsort(others))
    return np.expand_dims(y, axis) if keepdims else y

# ----------------------------------------------------------------------------- hidden


def sigmoid(z: Array) -> Array:
    """σ(z) = 1 / (1 + e^−z), the seed's operations in the seed's order (so `legacy` runs
    reproduce it bit for bit), in one buffer that follows ``z``'s memory order."""
    a = np.negative(z)
    np.exp(a, out=a)
    np.add(a, 1.0, out=a)
    return np.divide(1.0, a, out=a)


def sigmoid_derivative(z: Array, a: Array) -> Array:
    # σ'(z) = σ(z)(1 − σ(z)) = a(1 − a), in one buffer
    s = np.subtract(1.0, a)
    return np.multiply(a, s, out=s)


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
    """Softmax over the units axis (axis 1), shifted by the max so exp never overflows; one
    buffer that follows ``z``'s memory order."""
    e = np.subtract(z, _max_over_units(z))
    np.exp(e, out=e)
    return np.divide(e, rsum(e, 1, keepdims=True), out=e)


def _max_over_units(z: Array) -> Array:
    """``z.max(axis=1, keepdims=True)``; over a few units as a loop of np.maximum, the same
    maximum in fewer cycles than NumPy's reduction over a short axis."""
    if z.shape[1] > 16:
        return z.max(axis=1, keepdims=True)
    m = z[:, :1].copy(order="K")  # in z's memory order, so that e is too
    for o in range(1, z.shape[1]):
        np.maximum(m, z[:, o : o + 1], out=m)
    return m


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


def delta_times_derivative(z: Array, a: Array, y: Array) -> Array:
    # Mitchell: (a − y)·σ'(z), exact for sigmoid + ½(a−y)²; the a(1−a) factor vanishes when the
    # output saturates. Bracketed as the seed brackets it, so legacy runs match it exactly.
    # Forced on a softmax it keeps only the diagonal of the softmax Jacobian: the exact
    # gradient of no loss listed here.
    return (a - y) * sigmoid_derivative(z, a)


def delta_softmax_jacobian(z: Array, a: Array, y: Array) -> Array:
    # Exact for softmax + ½Σ(a−y)²: Jacobianᵀ(a − y) = a ⊙ ((a − y) − Σⱼ(aⱼ − yⱼ)aⱼ).
    d = a - y
    return a * (d - rsum(d * a, 1, keepdims=True))


@dataclass(frozen=True)
class Delta:
    """An output-delta rule: ``fn(z, a, y)``, its formula and what it is. A rule is known by
    its name: Mitchell's formula is one rule whether it is exact (sigmoid + mse) or forced
    (softmax)."""

    name: str
    fn: Callable[[Array, Array, Array], Array]
    formula: str
    description: str


A_MINUS_Y = Delta("a_minus_y", delta_a_minus_y, "a − y", "Ng's: the output error itself")
TIMES_DERIVATIVE = Delta("times_derivative", delta_times_derivative, "(a − y)·a(1 − a)", "Mitchell's: the output error times the sigmoid's slope")
SOFTMAX_JACOBIAN = Delta("softmax_jacobian", delta_softmax_jacobian, "a ⊙ ((a − y) − Σⱼ(aⱼ − yⱼ)aⱼ)", "the output error through the softmax Jacobian")
DELTAS: dict[str, Delta] = {d.name: d for d in (A_MINUS_Y, TIMES_DERIVATIVE, SOFTMAX_JACOBIAN)}

# The true dL/dz for each (output, loss) pair: `delta: exact` looks itself up here.
EXACT_DELTAS: dict[tuple[str, str], Delta] = {
    ("sigmoid", "ce"): A_MINUS_Y,
    ("softmax", "ce"): A_MINUS_Y,
    ("sigmoid", "mse"): TIMES_DERIVATIVE,
    ("softmax", "mse"): SOFTMAX_JACOBIAN,
    ("linear", "mse"): A_MINUS_Y,
}
# The two textbook formulas, forced whatever the loss: (rule, output) -> delta.
FORCED_DELTAS: dict[tuple[str, str], Delta] = {
    ("a_minus_y", "sigmoid"): A_MINUS_Y,
    ("a_minus_y", "softmax"): A_MINUS_Y,
    ("a_minus_y", "linear"): A_MINUS_Y,
    ("times_derivative", "sigmoid"): TIMES_DERIVATIVE,
    ("times_derivative", "softmax"): TIMES_DERIVATIVE,
    ("times_derivative", "linear"): A_MINUS_Y,  # identity' = 1
}

OUTPUT_NAMES = tuple(OUTPUTS)
LOSS_NAMES = ("ce", "mse")
DELTA_RULES = ("exact", "a_minus_y", "times_derivative")


class VariantError(ValueError):
    """A variant whose output, loss and delta do not fit together."""


@dataclass(frozen=True)
class Variant:
    """An (output, loss, delta rule) triple; `delta_rule` is the formula it trains with and
    `exact` says whether that is dL/dz."""

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
    def delta_rule(self) -> Delta:
        if self.delta == "exact":
            return EXACT_DELTAS[(self.output, self.loss)]
        return FORCED_DELTAS[(self.delta, self.output)]

    @property
    def exact(self) -> bool:
        return self.delta_rule.name == EXACT_DELTAS[(self.output, self.loss)].name

    @property
    def output_fn(self) -> Callable[[Array], Array]:
        return OUTPUTS[self.output]

    @property
    def loss_fn(self) -> Callable[[Array, Array, Array], Array]:
        return LOSSES[(self.output, self.loss)]

    @property
    def delta_fn(self) -> Callable[[Array, Array, Array], Array]:
        return self.delta_rule.fn

    @property
    def loss_formula(self) -> str:
        return LOSS_FORMULAS[(self.output, self.loss)]

    @property
    def delta_formula(self) -> str:
        """The rule's formula as the variant names it (a forced rule by its textbook form)."""
        return self.delta_rule.formula if self.delta == "exact" else DELTAS[self.delta].formula

    @property
    def formula(self) -> str:
        """Output, loss and delta in one line: ``a = σ(z); L = ½Σ(a − y)²; δ = a − y``."""
        return f"{OUTPUT_FORMULAS[self.output]}; L = {self.loss_formula}; δ = {self.delta_formula}"


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
