"""`nnrun gradcheck`: each variant's backprop gradient against finite differences of its own loss.

The analytic side is the engine's own code path (``network.forward`` then
``network.backward``, exactly as training calls them), so a pass says that the gradient
nnrun trains with is the gradient of the loss the variant names. The numeric side
differentiates ``variant.loss_fn`` summed (or averaged) over samples by central
differences, one parameter at a time, every weight point at once along the run axis.

A variant whose delta is forced whatever the loss (``ng-on-mse``, ``mitchell-on-ce``) is
*expected* to fail; the report then says whose gradient its delta really is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnrun.config import Config, ConfigError
from nnrun.engine import init_params
from nnrun.network import backward, forward
from nnrun.variants import EXACT_DELTAS, LOSS_NAMES, Variant

TOLERANCE = 1e-6  # float64 central differences agree to ~1e-10 on these nets; a wrong delta is off by O(0.1–1)
STEP = 1e-5  # ≈ ∛ε, the central-difference optimum: truncation O(h²) and rounding O(ε/h) both ≈ 1e-10
MAX_SAMPLES = 64  # the formula is under test, not the data: caps the cost on large data sets
FORMATS = ("table", "json")
LOSS_WORDS = {"ce": "cross-entropy", "mse": "squared error"}


@dataclass(frozen=True)
class Check:
    """One variant's result: the relative error at each weight point, and what it means."""

    variant: Variant
    sizes: tuple[int, ...]
    errors: tuple[float, ...]  # per weight point

    @property
    def max_rel_error(self) -> float:
        return float(max(self.errors)) if all(np.isfinite(self.errors)) else float("nan")

    @property
    def passed(self) -> bool:
        return bool(self.max_rel_error < TOLERANCE)

    @property
    def ok(self) -> bool:
        """A forced (inexact) delta failing is the expected outcome, not a failed check."""
        return self.passed or not self.variant.exact

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        return "FAIL" if self.variant.exact else "fail (expected)"

    @property
    def explanation(self) -> str | None:
        return None if self.passed else explain(self.variant, self.max_rel_error)


def explain(v: Variant, err: float) -> str:
    """One sentence on why a variant's delta is not the gradient of its loss."""
    loss = LOSS_WORDS[v.loss]
    if v.exact:
        return (
            f"{v.name}: backprop disagrees with finite differences of its own loss, {v.loss_formula} "
            f"(rel. error {error_text(err)}); this is a bug in nnrun's engine or delta table, please report it"
        )
    # Whose gradient is the delta it uses? The loss, for this output, whose exact delta it is.
    really = [other for other in LOSS_NAMES if (v.output, other) in EXACT_DELTAS and EXACT_DELTAS[(v.output, other)].name == v.delta_rule.name]
    if really:
        return f"{v.name}: {v.delta_formula} is the gradient of {LOSS_WORDS[really[0]]}, not of {loss} (rel. error {error_text(err)})"
    return f"{v.name}: {v.delta_formula} is the gradient of no loss nnrun knows for a {v.output} output, not of {loss} (rel. error {error_text(err)})"


def error_text(err: float) -> str:
    if not np.isfinite(err):
        return "n/a"
    return f"{err:.2g}" if err >= 1e-3 else f"{err:.1e}"


# ----------------------------------------------------------------------------- the check


def loss_per_run(Ws, bs, X, Y, activation: str, variant: Variant, scale: float) -> np.ndarray:
    """The variant's own loss, summed over samples times ``scale`` (1/n for mean): (runs,)."""
    zs, acts = forward(Ws, bs, X, activation, variant)
    return variant.loss_fn(zs[-1], acts[-1], Y).sum(axis=0) * scale


def numeric_gradients(Ws, bs, X, Y, activation: str, variant: Variant, scale: float, h: float | None = None) -> list[np.ndarray]:
    """Central differences (step ``h``, default STEP) on every weight and bias, all runs at once."""
    h = STEP if h is None else h
    params = [*Ws, *(b for b in bs if b is not None)]
    grads = []
    for p in params:
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape[:-1]):  # p[idx] is this parameter in every run, (runs,)
            old = p[idx].copy()
            p[idx] = old + h
            up = loss_per_run(Ws, bs, X, Y, activation, variant, scale)
            p[idx] = old - h
            down = loss_per_run(Ws, bs, X, Y, activation, variant, scale)
            p[idx] = old
            g[idx] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def analytic_gradients(Ws, bs, X, Y, activation: str, variant: Variant, scale: float) -> list[np.ndarray]:
    """The engine's gradients, through the same calls training makes; same layout as params."""
    zs, acts = forward(Ws, bs, X, activation, variant)
    gW, gb = backward(Ws, zs, acts, Y, activation, variant, scale)
    return [*gW, *(g for g, b in zip(gb, bs) if b is not None)]


def relative_errors(analytic: list[np.ndarray], numeric: list[np.ndarray]) -> np.ndarray:
    """Per run: ‖g − ĝ‖ / max(‖g‖, ‖ĝ‖) over all weights and biases together; (runs,)."""
    R = analytic[0].shape[-1]
    g = np.concatenate([a.reshape(-1, R) for a in analytic])
    n = np.concatenate([a.reshape(-1, R) for a in numeric])
    diff = np.linalg.norm(g - n, axis=0)
    scale = np.maximum(np.linalg.norm(g, axis=0), np.linalg.norm(n, axis=0))
    return np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0)


def weight_points(config: Config, sizes: list[int], points: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """``points`` weight points, uniform in [−1, 1] (the seed's draw for seeds 0..points−1).

    Biases are drawn too, never zero, so no ReLU pre-activation sits on its kink.
    """
    return init_params("legacy", sizes, np.arange(points), bias=config.model.bias, dtype="float64")


def check_variant(config: Config, variant: Variant, points: int) -> Check:
    from nnrun.executor import layer_sizes, load_data

    data = load_data(config)
    sizes = layer_sizes(config, data, variant.output)
    X = data.X[:MAX_SAMPLES].astype(np.float64)
    Y = data.targets(variant.output)[:MAX_SAMPLES].astype(np.float64)[..., None]  # (n, k, 1): broadcasts over runs
    scale = 1.0 / len(X) if config.training.reduction == "mean" else 1.0
    Ws, bs = weight_points(config, sizes, points)
    act = config.model.activation
    with np.errstate(over="ignore"):  # exp saturating to 0 or 1 is harmless (see variants.py)
        analytic = analytic_gradients(Ws, bs, X, Y, act, variant, scale)
        numeric = numeric_gradients(Ws, bs, X, Y, act, variant, scale)
    return Check(variant, tuple(sizes), tuple(float(e) for e in relative_errors(analytic, numeric)))


def check(config: Config, points: int = 3, variants: list[Variant] | None = None) -> list[Check]:
    """Every variant of ``config`` (or ``variants``) on the base config's network."""
    return [check_variant(config, v, points) for v in (variants or config.variant_objects())]


# ----------------------------------------------------------------------------- output


def describe(config: Config, points: int, n_total: int) -> str:
    m, t = config.model, config.training
    hidden = "-".join(str(h) for h in m.hidden) or "none"
    n = min(MAX_SAMPLES, n_total)
    samples = f", all {n} samples" if n == n_total else f", the first {n} of {n_total} samples"
    return (
        f"{config.dataset.name}, hidden {hidden} ({m.activation}), bias vectors {'on' if m.bias else 'off'}, "
        f"reduction {t.reduction}; {points} weight points in float64{samples}; central differences h = {STEP:g}; pass below {TOLERANCE:g}"
    )


def records(checks: list[Check]) -> list[dict]:
    """Plain dicts, one per variant, for JSON and markdown."""
    out = []
    for c in checks:
        v = c.variant
        out.append(
            {
                "variant": v.name,
                "output": v.output,
                "loss": v.loss,
                "loss_formula": v.loss_formula,
                "delta": v.delta,
                "delta_formula": v.delta_formula,
                "exact": v.exact,
                "sizes": list(c.sizes),
                "max_rel_error": _finite_or_none(c.max_rel_error),
                "rel_errors": [_finite_or_none(e) for e in c.errors],
                "passed": c.passed,
                "verdict": c.verdict,
                "explanation": c.explanation,
            }
        )
    return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def to_json(config: Config, checks: list[Check], points: int) -> str:
    payload = {
        "ok": all(c.ok for c in checks),
        "network": {
            "dataset": config.dataset.name,
            "hidden": list(config.model.hidden),
            "activation": config.model.activation,
            "bias": config.model.bias,
            "reduction": config.training.reduction,
        },
        "points": points,
        "step": STEP,
        "tolerance": TOLERANCE,
        "variants": records(checks),
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def markdown(checks: list[Check], *, error_floor: float | None = None) -> str:
    """The table as markdown; errors below ``error_floor`` print as "< floor" (stable text)."""
    lines = ["| variant | output | loss | delta | max relative error | verdict |", "|---|---|---|---|---|---|"]
    for c in checks:
        v = c.variant
        err = c.max_rel_error
        text = f"< {error_floor:g}" if error_floor is not None and err < error_floor else error_text(err)
        lines.append(f"| `{v.name}` | {v.output} | {LOSS_WORDS[v.loss]} | {v.delta}: {v.delta_formula} | {text} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def render(console, config: Config, checks: list[Check], points: int, note: str = "") -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"gradcheck: {describe(config, points, len(_data(config).X))}", markup=False, soft_wrap=True)
    table = Table()
    for col, justify in (("variant", "left"), ("output", "left"), ("loss", "left"), ("delta rule", "left"), ("max relative error", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify)
    for c in checks:
        v = c.variant
        style = "green" if c.passed else ("bold red" if v.exact else "yellow")
        table.add_row(escape(v.name), v.output, escape(f"{v.loss}: {v.loss_formula}"), escape(f"{v.delta}: {v.delta_formula}"), error_text(c.max_rel_error), f"[{style}]{c.verdict}[/]")
    console.print(table)
    if note:
        console.print(note, markup=False)
    for c in checks:
        if c.explanation:
            console.print(c.explanation, markup=False, soft_wrap=True)
    bad = [c.variant.name for c in checks if not c.ok]
    if bad:
        console.print(f"exact variants that FAILED: {', '.join(bad)}", markup=False)
    else:
        console.print("every exact variant's backprop gradient matches its own loss.", markup=False)


def _data(config: Config):
    from nnrun.executor import load_data

    return load_data(config)


def run_gradcheck(config: Path | None, *, sets: list[str], fmt: str, points: int, console) -> bool:
    """Load the config (default: the default sweep's), check, print; True when every exact variant passes."""
    from nnrun import api
    from nnrun.config import load

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if points < 1:
        raise ConfigError(f"--points must be at least 1, got {points}")
    cfg = load(config, sets, default=api.default_config() if config is None else None)
    checks = check(cfg, points)
    if fmt == "json":
        console.out(to_json(cfg, checks, points), highlight=False)
    else:
        note = f"(sweep axes {', '.join(cfg.sweep)} are not checked: this is the base config's network)" if cfg.sweep else ""
        render(console, cfg, checks, points, note)
    return all(c.ok for c in checks)
