"""Summaries and paired comparisons of runs (SPEC §7), computed with scipy.stats.

Runs are paired by seed: the same seed gives every variant and learning rate the same
initial weights, so a per-seed difference isolates the variant. Every interval is 95%;
bootstraps use a fixed seed so tables are reproducible. Where too few runs or pairs
exist for a statistic, it is NaN (shown as "n/a"), never a misleading number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

BOOTSTRAP_SEED = 20240601  # fixed, so every table is reproducible
BOOTSTRAP_RESAMPLES = 2000  # percentile CIs stable to about ±0.5% of the interval
FINAL_METRICS = ["final_ce", "final_mse", "final_accuracy", "final_max_error"]
# For final_* metrics: does a higher value mean better?
HIGHER_IS_BETTER = {"final_accuracy": True, "final_test_accuracy": True}


def wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    ci = st.binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(values: np.ndarray, statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap 95% CI; NaN with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.nan, np.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = st.bootstrap(
            (values,), statistic, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95, method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED)
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _groups(runs: pd.DataFrame, keys: list[str]):
    """Groups in the order they first appear (run-id order), not sorted."""
    if not keys:
        yield (), runs
        return
    yield from runs.groupby(keys, sort=False, dropna=False)


def summarize(runs: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per (axes, variant, learning_rate): success with Wilson CI, epochs, medians."""
    rows = []
    keys = list(axes) + ["variant", "learning_rate"]
    for key, g in _groups(runs, keys):
        key = key if isinstance(key, tuple) else (key,)
        conv = g["converged"].to_numpy(bool)
        epochs = g.loc[conv, "epochs_to_converge"].to_numpy(float)
        lo, hi = wilson(conv.sum(), len(g))
        mlo, mhi = bootstrap_ci(epochs)
        row = dict(zip(keys, key))
        row.update(
            runs=len(g),
            converged=int(conv.sum()),
            success_rate=conv.mean() if len(g) else np.nan,
            success_ci_low=lo,
            success_ci_high=hi,
            epochs_median=np.median(epochs) if len(epochs) else np.nan,
            epochs_q25=np.percentile(epochs, 25) if len(epochs) else np.nan,
            epochs_q75=np.percentile(epochs, 75) if len(epochs) else np.nan,
            epochs_mean=epochs.mean() if len(epochs) else np.nan,
            epochs_mean_ci_low=mlo,
            epochs_mean_ci_high=mhi,
        )
        ok = ~g["diverged"].to_numpy(bool)
        for m in [c for c in g.columns if c.startswith("final_")]:
            vals = g.loc[ok, m].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            row[f"median_{m}"] = np.median(vals) if len(vals) else np.nan
        row["diverged"] = int((~ok).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def effective_epochs(g: pd.DataFrame, budget: float) -> np.ndarray:
    """Epochs to converge, a non-converged run counted as ``budget + 1`` (slowest)."""
    e = g["epochs_to_converge"].to_numpy(float)
    return np.where(g["converged"].to_numpy(bool), e, budget + 1)


@dataclass(frozen=True)
class Paired:
    seeds_paired: int
    success_rate: float
    baseline_success_rate: float
    mcnemar_p: float
    ratio_median: float
    ratio_ci_low: float
    ratio_ci_high: float
    ratios_n: int
    wilcoxon_p: float
    win_rate: float


def paired(v: pd.DataFrame, b: pd.DataFrame, metric: str = "epochs") -> Paired:
    """Variant ``v`` against baseline ``b`` on the seeds both ran."""
    m = v.merge(b, on="seed", suffixes=("_v", "_b"))
    n = len(m)
    if n == 0:
        return Paired(0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0, np.nan, np.nan)
    cv, cb = m["converged_v"].to_numpy(bool), m["converged_b"].to_numpy(bool)
    # Exact McNemar: a binomial test on the discordant pairs.
    only_v, only_b = int((cv & ~cb).sum()), int((~cv & cb).sum())
    mcnemar = float(st.binomtest(only_v, only_v + only_b, 0.5).pvalue) if only_v + only_b else 1.0
    if metric == "epochs":
        budget = float(np.nanmax(np.r_[m["epochs_run_v"], m["epochs_run_b"], m["epochs_to_converge_v"], m["epochs_to_converge_b"]]))
        ev = np.where(cv, m["epochs_to_converge_v"].to_numpy(float), budget + 1)
        eb = np.where(cb, m["epochs_to_converge_b"].to_numpy(float), budget + 1)
        both = cv & cb
        ratios = _ratio(ev[both], eb[both])
        wins = cv & (~cb | (ev < eb))
        x, y = ev, eb
    else:
        x, y = m[f"{metric}_v"].to_numpy(float), m[f"{metric}_b"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        ratios = _ratio(x[ok], y[ok])
        better = x > y if HIGHER_IS_BETTER.get(metric, False) else x < y
        wins = ok & better
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
        ratios_n=len(ratios),
        wilcoxon_p=wilcoxon(x, y),
        win_rate=float(wins.mean()),
    )


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        r = np.where((a == 0) & (b == 0), 1.0, a / b)
    return r[~np.isnan(r)]


def wilcoxon(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (scipy defaults); zero differences drop out."""
    d = np.asarray(x, float) - np.asarray(y, float)
    if np.count_nonzero(d) == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(st.wilcoxon(x, y).pvalue)


COMPARISON_STATS = {
    "seeds_paired": "seeds_paired",
    "success_rate": "success_rate",
    "baseline_success_rate": "baseline_success_rate",
    "mcnemar_p": "mcnemar_p",
    "ratio_median": "epochs_ratio_median",
    "ratio_ci_low": "epochs_ratio_ci_low",
    "ratio_ci_high": "epochs_ratio_ci_high",
    "wilcoxon_p": "wilcoxon_p",
    "win_rate": "win_rate",
}


def _stat_row(p: Paired, metric: str) -> dict:
    row = {}
    for attr, col in COMPARISON_STATS.items():
        if metric != "epochs" and col.startswith("epochs_ratio"):
            col = col.replace("epochs_ratio", "ratio")
        row[col] = getattr(p, attr)
    if metric != "epochs":
        row["metric"] = metric
    return row


def compare(runs: pd.DataFrame, axes: list[str], baseline: str, metric: str = "epochs") -> pd.DataFrame:
    """Per (axes, learning_rate) and variant ≠ baseline: paired statistics against it."""
    rows = []
    keys = list(axes) + ["learning_rate"]
    for key, g in _groups(runs, keys):
        key = key if isinstance(key, tuple) else (key,)
        base = g[g["variant"] == baseline]
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            p = paired(g[g["variant"] == variant], base, metric)
            rows.append({"variant": variant, "baseline": baseline, **dict(zip(keys, key)), **_stat_row(p, metric)})
    return pd.DataFrame(rows)


def best_learning_rates(summary: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Each variant's best learning rate per axes group: highest success, then fewest epochs."""
    s = summary.assign(_e=summary["epochs_median"].fillna(np.inf))
    s = s.sort_values(["success_rate", "_e", "learning_rate"], ascending=[False, True, True], kind="stable")
    keys = list(axes) + ["variant"]
    best = s.groupby(keys, sort=False, dropna=False).head(1).drop(columns="_e")
    order = summary[keys].drop_duplicates()
    return order.merge(best, on=keys, how="left")


def tuned(runs: pd.DataFrame, summary: pd.DataFrame, axes: list[str], baseline: str, metric: str = "epochs") -> pd.DataFrame:
    """Each variant at its own best learning rate against the baseline at its own."""
    best = best_learning_rates(summary, axes)
    rows = []
    for key, g in _groups(runs, list(axes)):
        key = key if isinstance(key, tuple) else (key,)
        bsel = best
        for a, val in zip(axes, key):
            bsel = bsel[bsel[a] == val]
        lr = dict(zip(bsel["variant"], bsel["learning_rate"]))
        if baseline not in lr:
            continue
        base = g[(g["variant"] == baseline) & (g["learning_rate"] == lr[baseline])]
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            vv = g[(g["variant"] == variant) & (g["learning_rate"] == lr[variant])]
            p = paired(vv, base, metric)
            rows.append(
                {"variant": variant, "baseline": baseline, **dict(zip(axes, key)), "learning_rate": lr[variant], "baseline_learning_rate": lr[baseline], **_stat_row(p, metric)}
            )
    return pd.DataFrame(rows)
