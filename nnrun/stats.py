"""Summaries and paired comparisons of runs (SPEC §7), computed with scipy.stats.

Runs are paired by seed: the same seed gives every variant and learning rate the same
initial weights, so a per-seed difference isolates the variant. Every interval is 95%;
bootstraps use a fixed seed so tables are reproducible. Where too few runs or pairs
exist for a statistic, it is NaN (shown as "n/a"), never a misleading number.

``keys`` below are the columns that split runs into independent experiments (sweep axes,
and the experiment name when several are combined); ``variant`` and ``learning_rate``
are always added to them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as st

BOOTSTRAP_SEED = 20240601  # fixed, so every table is reproducible
BOOTSTRAP_RESAMPLES = 2000  # percentile CIs stable to about ±0.5% of the interval
MIN_BOOTSTRAP = 5  # below this a percentile bootstrap has too few distinct resamples to cover 95%
FINAL_METRICS = ["final_ce", "final_mse", "final_accuracy", "final_max_error"]
EPOCHS = "epochs"  # the default metric: epochs to converge
BUDGET_AXIS = "training.epochs"  # when swept, each run's own epoch budget
# For final_* metrics: does a higher value mean better?
HIGHER_IS_BETTER = {"final_accuracy": True, "final_test_accuracy": True}


# ----------------------------------------------------------------------------- one sample


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a success proportion; NaN for n = 0."""
    if n == 0:
        return np.nan, np.nan
    ci = st.binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(values, statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap 95% CI (fixed seed); NaN with fewer than MIN_BOOTSTRAP values."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_BOOTSTRAP:
        return np.nan, np.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # inf ratios (x / 0 epochs) make percentile interpolation warn
        res = st.bootstrap(
            (values,), statistic, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95, method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED)
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    if not len(values):
        return np.nan, np.nan, np.nan
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q25), float(q50), float(q75)


def _groups(runs: pd.DataFrame, keys: list[str]):
    """(key tuple, frame) in the order groups first appear (run-id order), not sorted."""
    if not keys:
        yield (), runs
        return
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


def summarize(runs: pd.DataFrame, axes: list[str], metric: str = EPOCHS) -> pd.DataFrame:
    """One row per (axes, variant, learning_rate): success with Wilson CI, epochs, medians.

    Epoch statistics are over converged runs; final-metric medians over runs that did not
    diverge. With a final_* ``metric``, its quartiles are added for the terminal view.
    """
    rows = []
    keys = list(axes) + ["variant", "learning_rate"]
    for key, g in _groups(runs, keys):
        conv = g["converged"].to_numpy(bool)
        epochs = g.loc[conv, "epochs_to_converge"].to_numpy(float)
        lo, hi = wilson(conv.sum(), len(g))
        q25, q50, q75 = _quantiles(epochs)
        mlo, mhi = bootstrap_ci(epochs)
        row = dict(zip(keys, key))
        row.update(
            runs=len(g),
            converged=int(conv.sum()),
            success_rate=float(conv.mean()),
            success_ci_low=lo,
            success_ci_high=hi,
            epochs_median=q50,
            epochs_q25=q25,
            epochs_q75=q75,
            epochs_mean=float(epochs.mean()) if len(epochs) else np.nan,
            epochs_mean_ci_low=mlo,
            epochs_mean_ci_high=mhi,
        )
        ok = ~g["diverged"].to_numpy(bool)
        for m in [c for c in g.columns if c.startswith("final_")]:
            vals = g.loc[ok, m].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            q25, q50, q75 = _quantiles(vals)
            row[f"median_{m}"] = q50
            if m == metric:
                row[f"{m}_q25"], row[f"{m}_q75"] = q25, q75
        row["diverged"] = int((~ok).sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- paired


@dataclass(frozen=True)
class Paired:
    """Variant against baseline on the seeds both ran (see ``paired``)."""

    seeds_paired: int
    success_rate: float
    baseline_success_rate: float
    mcnemar_p: float
    ratio_median: float
    ratio_ci_low: float
    ratio_ci_high: float
    ratio_n: int  # pairs behind the ratio: seeds where both converged (epochs) or both finite
    wilcoxon_p: float
    win_rate: float


NO_PAIRS = Paired(0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0, np.nan, np.nan)


def _budget(m: pd.DataFrame, side: str, budget: float | None) -> np.ndarray:
    """Each run's epoch budget: its swept training.epochs, the config's, or the most any ran."""
    if f"{BUDGET_AXIS}_{side}" in m.columns:
        return pd.to_numeric(m[f"{BUDGET_AXIS}_{side}"]).to_numpy(float)
    if BUDGET_AXIS in m.columns:
        return pd.to_numeric(m[BUDGET_AXIS]).to_numpy(float)
    if budget is not None:
        return np.full(len(m), float(budget))
    most = np.nanmax(m[["epochs_run_v", "epochs_run_b", "epochs_to_converge_v", "epochs_to_converge_b"]].to_numpy(float))
    return np.full(len(m), most)


def effective_epochs(epochs: np.ndarray, converged: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Epochs to converge, a non-converged run counted as ``budget + 1`` (slowest)."""
    return np.where(converged, np.asarray(epochs, float), np.asarray(budget, float) + 1)


def paired(v: pd.DataFrame, b: pd.DataFrame, metric: str = EPOCHS, on: list[str] | None = None, budget: float | None = None) -> Paired:
    """Variant runs ``v`` against baseline runs ``b``, matched on ``on`` (default: seed).

    - success: rates over the paired seeds, exact McNemar = two-sided binomial test on
      the discordant pairs (only one of the two converged);
    - epochs: median per-seed ratio v/b over seeds where both converged, with a bootstrap
      CI; Wilcoxon signed-rank (scipy defaults, so zero differences drop out) with a
      non-converged run counted as budget + 1, hence pairs where neither converged tie;
      win rate = share of paired seeds where v converged strictly sooner (a run that did
      not converge never wins);
    - a final_* metric: the same on its values, over pairs where both are finite (a
      diverged run has none); win = strictly better, a finite value beating a missing one.
    """
    on = list(on or ["seed"])
    m = v.merge(b, on=on, suffixes=("_v", "_b"))
    n = len(m)
    if n == 0:
        return NO_PAIRS
    cv, cb = m["converged_v"].to_numpy(bool), m["converged_b"].to_numpy(bool)
    only_v, only_b = int((cv & ~cb).sum()), int((~cv & cb).sum())
    mcnemar = float(st.binomtest(only_v, only_v + only_b, 0.5).pvalue) if only_v + only_b else 1.0
    if metric == EPOCHS:
        ev = effective_epochs(m["epochs_to_converge_v"], cv, _budget(m, "v", budget))
        eb = effective_epochs(m["epochs_to_converge_b"], cb, _budget(m, "b", budget))
        both = cv & cb
        ratios = _ratio(ev[both], eb[both])
        wins = cv & (ev < eb)
        x, y = ev, eb
    else:
        x, y = m[f"{metric}_v"].to_numpy(float), m[f"{metric}_b"].to_numpy(float)
        fx, fy = np.isfinite(x), np.isfinite(y)
        better = x > y if HIGHER_IS_BETTER.get(metric, False) else x < y
        wins = fx & (~fy | better)
        ok = fx & fy
        ratios = _ratio(x[ok], y[ok])
        x, y = x[ok], y[ok]
    lo, hi = bootstrap_ci(ratios, np.median)
    return Paired(
        seeds_paired=n,
        success_rate=float(cv.mean()),
        baseline_success_rate=float(cb.mean()),
        mcnemar_p=mcnemar,
        ratio_median=float(np.median(ratios)) if len(ratios) else np.nan,
        ratio_ci_low=lo,
        ratio_ci_high=hi,
        ratio_n=len(ratios),
        wilcoxon_p=wilcoxon(x, y),
        win_rate=float(wins.mean()),
    )


def _memo_paired(memo: dict | None, key: tuple, compute: Callable[[], Paired]) -> Paired:
    """``compute()``, or what it gave for ``key`` before (key: axes values, variant, its
    rate, the baseline's rate); NaN axis values are keyed alike."""
    if memo is None:
        return compute()
    key = tuple("nan" if isinstance(k, float) and k != k else k for k in (*key[0], *key[1:]))
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b per pair; 0 / 0 (both met the criterion at their initial weights) is 1."""
    with np.errstate(all="ignore"):
        r = np.where((a == 0) & (b == 0), 1.0, a / b)
    return r[~np.isnan(r)]


def wilcoxon(x, y) -> float:
    """Two-sided Wilcoxon signed-rank p (scipy defaults) on the non-zero differences x − y.

    Zero differences (ties, and pairs where neither converged) drop out before the test,
    as Wilcoxon's own zero rule says, so every scipy version picks the exact test for a
    small tie-free sample. NaN when no difference is left.
    """
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[d != 0]
    if len(d) == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy notes when ties force the normal approximation
        return float(st.wilcoxon(d).pvalue)


def ratio_prefix(metric: str) -> str:
    return "epochs_ratio" if metric == EPOCHS else f"{metric}_ratio"


def stat_row(p: Paired, metric: str = EPOCHS) -> dict:
    """A Paired as comparison.csv columns (SPEC §5), the ratio named after the metric."""
    prefix = ratio_prefix(metric)
    row = {}
    for f in fields(Paired):
        col = f.name.replace("ratio", prefix) if f.name.startswith("ratio") else f.name
        row[col] = getattr(p, f.name)
    return row


def compare(
    runs: pd.DataFrame,
    axes: list[str],
    baseline: str,
    metric: str = EPOCHS,
    *,
    pair_on: list[str] | None = None,
    budget: float | None = None,
    memo: dict | None = None,
) -> pd.DataFrame:
    """Per (axes, learning_rate) and variant ≠ baseline: paired statistics against it.

    ``pair_on``: the columns that identify the same initial weights (default: seed; add
    any sweep axes pooled into one group). ``budget``: training.epochs, so a run that did
    not converge counts as budget + 1; by default the most epochs any paired run ran.
    ``memo``: shared with ``tuned`` on the same runs, so a pair both need (each variant's
    best rate is the same one) is computed once.
    """
    rows = []
    keys = list(axes) + ["learning_rate"]
    for key, g in _groups(runs, keys):
        base = g[g["variant"] == baseline]
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            p = _memo_paired(memo, (key[:-1], variant, key[-1], key[-1]), lambda: paired(g[g["variant"] == variant], base, metric, pair_on, budget))
            rows.append({"variant": variant, "baseline": baseline, **dict(zip(keys, key)), **stat_row(p, metric)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tuned


def best_learning_rates(summary: pd.DataFrame, axes: list[str], metric: str = EPOCHS) -> pd.DataFrame:
    """Each variant's best learning rate per axes group: the summary row with the highest
    success rate, then the lowest median epochs (or best median ``metric``), then lowest lr."""
    if metric == EPOCHS:
        second = summary["epochs_median"].fillna(np.inf)
    else:
        sign = -1.0 if HIGHER_IS_BETTER.get(metric, False) else 1.0
        second = (sign * summary[f"median_{metric}"]).fillna(np.inf)
    s = summary.assign(_second=second).sort_values(["success_rate", "_second", "learning_rate"], ascending=[False, True, True], kind="stable")
    keys = list(axes) + ["variant"]
    best = s.groupby(keys, sort=False, dropna=False).head(1).drop(columns="_second")
    order = summary[keys].drop_duplicates()
    return order.merge(best, on=keys, how="left")


def tuned(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    axes: list[str],
    baseline: str,
    metric: str = EPOCHS,
    *,
    pair_on: list[str] | None = None,
    budget: float | None = None,
    memo: dict | None = None,
) -> pd.DataFrame:
    """Each variant at its own best learning rate against the baseline at its own, paired
    by seed (the same seed starts from the same weights at every learning rate)."""
    best = best_learning_rates(summary, axes, metric)
    rows = []
    for key, g in _groups(runs, list(axes)):
        sel = best
        for a, val in zip(axes, key):
            sel = sel[(sel[a] == val) | (sel[a].isna() & pd.isna(val))]
        lr = dict(zip(sel["variant"], sel["learning_rate"]))
        if baseline not in lr:
            continue
        base = g[(g["variant"] == baseline) & (g["learning_rate"] == lr[baseline])]
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            vv = g[(g["variant"] == variant) & (g["learning_rate"] == lr[variant])]
            p = _memo_paired(memo, (key, variant, lr[variant], lr[baseline]), lambda: paired(vv, base, metric, pair_on, budget))
            rows.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    **dict(zip(axes, key)),
                    "learning_rate": lr[variant],
                    "baseline_learning_rate": lr[baseline],
                    **stat_row(p, metric),
                }
            )
    return pd.DataFrame(rows)
