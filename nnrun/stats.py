"""Summaries and paired comparisons of runs, computed with scipy.stats.

Time to convergence is censored data. A run that reaches its epoch budget without meeting
the criterion, or that diverges, is censored at the budget: it is never dropped. Its epochs
are summarised by the Kaplan–Meier estimator (``scipy.stats.ecdf`` on ``CensoredData``):
a quantile is the smallest t with S(t) ≤ 1 − q, its 95% CI comes from the log-log
(exponential Greenwood) band, and a median that the survival curve never reaches is
empty ("> budget" on screen).

Runs are paired by seed: the same seed gives every variant and learning rate the same
initial weights, so a per-seed comparison isolates the variant. An effect and its test
use the same pairs: every seed pair counts, a censored run is slower than any converged
one (log-ratio ±∞), two censored runs tie (ratio 1, kept as a tie in Wilcoxon's
``zsplit``). Epochs and losses compare as ratios, success and accuracy as differences in
percentage points, each with a percentile bootstrap CI (fixed seed). docs/statistics.md
states every rule with its reason.

``keys`` below are the columns that split runs into independent experiments (sweep axes,
and the experiment name when several are combined); ``variant`` and ``learning_rate``
are always added to them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as st

BOOTSTRAP_SEED = 20240601  # fixed, so every table is reproducible
BOOTSTRAP_RESAMPLES = 2000  # percentile CIs stable to about ±0.5% of the interval
MIN_BOOTSTRAP = 5  # below this a percentile bootstrap has too few distinct resamples to cover 95%
# Values a bootstrap resamples at once (resamples × pairs): ~32 MB with their indices. Unbatched,
# 2,000 resamples of 100,000 seeds' pairs take 3.3 GB; batches draw the same numbers.
BOOTSTRAP_BATCH_VALUES = 2**21
ALPHA = 0.05  # the tuned rule's one-sided McNemar level, and where "no clear difference" starts
EPOCHS = "epochs"  # the default metric: epochs to converge
BUDGET_AXIS = "training.epochs"  # when swept, each run's own epoch budget
# A censored run's log-ratio is ±∞; medians and bootstraps take it as this stand-in, which
# sorts beyond any real log-ratio (|log(epochs ratio)| < 50) and maps back to ±∞.
INF_LOG = 1e6
# Differences and log-ratios are rounded to this many decimals before the test ranks them, so
# values equal but for float noise (0.9624 − 0.9610 vs 0.9638 − 0.9624, which differ by
# 1e-16) tie in the signed-rank test, whether computed in memory or read back from CSV.
TIE_DECIMALS = 9
# For final_* metrics: does a higher value mean better? Accuracy metrics compare as
# differences in points, the others (losses, max error) as ratios.
HIGHER_IS_BETTER = {"final_accuracy": True, "final_test_accuracy": True}


def is_difference(metric: str) -> bool:
    """Accuracy metrics (bounded shares) compare as differences in points, not ratios."""
    return metric in HIGHER_IS_BETTER


# ----------------------------------------------------------------------------- one sample


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a success proportion; NaN for n = 0."""
    if n == 0:
        return np.nan, np.nan
    ci = st.binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_ci(values, statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap 95% CI (fixed seed); NaN with fewer than MIN_BOOTSTRAP values.
    Resamples are drawn in batches, so memory stays bounded however many values there are."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_BOOTSTRAP:
        return np.nan, np.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    res = st.bootstrap(
        (values,),
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        batch=max(1, BOOTSTRAP_BATCH_VALUES // len(values)),
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Survival:
    """Kaplan–Meier summary of epochs to converge; NaN where the curve never gets there."""

    median: float
    ci_low: float
    ci_high: float
    q25: float
    q75: float


def _first_at_or_below(times: np.ndarray, surv: np.ndarray, level: float) -> float:
    """The smallest t with S(t) ≤ level; a hair of slack keeps 30/40 ≤ 0.75 exact."""
    hit = np.flatnonzero(surv <= level + 1e-12)
    return float(times[hit[0]]) if len(hit) else np.nan


def km_curve(epochs, converged, budget) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t, S(t), CI low, CI high) at each distinct time, from scipy.stats.ecdf.

    A run that did not converge is censored at its ``budget``. The log-log band is NaN
    where it is undefined (S = 1); where S reaches 0 it is 0, as lifelines has it. Empty
    arrays when no run converged (S = 1 throughout).
    """
    converged = np.asarray(converged, bool)
    t = np.where(converged, np.asarray(epochs, float), np.broadcast_to(np.asarray(budget, float), converged.shape))
    if not converged.any():
        empty = np.array([], float)
        return empty, empty, empty, empty
    sf = st.ecdf(st.CensoredData(uncensored=t[converged], right=t[~converged])).sf
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy notes where the band is undefined; NaN says so
        band = sf.confidence_interval(confidence_level=0.95, method="log-log")
    gone = sf.probabilities <= 0
    low = np.where(gone, 0.0, band.low.probabilities)
    high = np.where(gone, 0.0, band.high.probabilities)
    return sf.quantiles, sf.probabilities, low, high


def survival(epochs, converged, budget) -> Survival:
    """Kaplan–Meier median epochs with its 95% CI and quartiles (a CI needs two runs)."""
    t, s, low, high = km_curve(epochs, converged, budget)
    if not len(t):
        return Survival(np.nan, np.nan, np.nan, np.nan, np.nan)
    median = _first_at_or_below(t, s, 0.5)
    if len(np.asarray(converged)) < 2:  # one run: its band is 0 at its own time, a CI of width 0
        ci = (np.nan, np.nan)
    else:
        ci = (_first_at_or_below(t, low, 0.5), _first_at_or_below(t, high, 0.5))
    return Survival(median, *ci, _first_at_or_below(t, s, 0.75), _first_at_or_below(t, s, 0.25))


def _groups(runs: pd.DataFrame, keys: list[str]):
    """(key tuple, frame) in the order groups first appear (run-id order), not sorted."""
    if not keys:
        yield (), runs
        return
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


def by_rate(frame: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame``'s rows in the order of ``keys`` as they first appear in ``runs`` (sweep
    cells, variants), then by learning rate: a search's later rounds slot in between."""
    if not len(frame):
        return frame
    rank = {}
    for k in keys:
        first = {str(v): i for i, v in enumerate(pd.unique(runs[k].astype(str)))}
        rank[f"_rank_{k}"] = frame[k].astype(str).map(first)
    order = [*rank, "learning_rate"]
    return frame.assign(**rank).sort_values(order, kind="stable").drop(columns=list(rank)).reset_index(drop=True)


def budgets(runs: pd.DataFrame, budget: float | None = None) -> np.ndarray:
    """Each run's epoch budget: its swept training.epochs, the config's, or the most any ran."""
    if BUDGET_AXIS in runs.columns:
        return pd.to_numeric(runs[BUDGET_AXIS]).to_numpy(float)
    if budget is not None:
        return np.full(len(runs), float(budget))
    ran = runs[["epochs_run", "epochs_to_converge"]].to_numpy(float)
    return np.full(len(runs), np.nanmax(ran) if len(runs) and np.isfinite(ran).any() else np.nan)


def summarize(runs: pd.DataFrame, axes: list[str], metric: str = EPOCHS, budget: float | None = None) -> pd.DataFrame:
    """One row per (axes, variant, learning_rate): success with Wilson CI, Kaplan–Meier
    epochs (median, CI, quartiles; every run counts, censored at ``budget``), the median of
    converged runs alone, and medians of the final metrics over runs that did not diverge.
    With a final_* ``metric``, its quartiles are added for the terminal view."""
    rows = []
    keys = list(axes) + ["variant", "learning_rate"]
    runs = runs.assign(_budget=budgets(runs, budget))
    for key, g in _groups(runs, keys):
        conv = g["converged"].to_numpy(bool)
        epochs = g["epochs_to_converge"].to_numpy(float)
        km = survival(epochs, conv, g["_budget"].to_numpy(float))
        lo, hi = wilson(conv.sum(), len(g))
        row = dict(zip(keys, key))
        row.update(
            runs=len(g),
            converged=int(conv.sum()),
            success_rate=float(conv.mean()),
            success_ci_low=lo,
            success_ci_high=hi,
            budget=float(g["_budget"].max()),
            epochs_median=km.median,
            epochs_median_ci_low=km.ci_low,
            epochs_median_ci_high=km.ci_high,
            epochs_q25=km.q25,
            epochs_q75=km.q75,
            epochs_median_converged=float(np.median(epochs[conv])) if conv.any() else np.nan,
        )
        ok = ~g["diverged"].to_numpy(bool)
        for m in [c for c in g.columns if c.startswith("final_")]:
            vals = g.loc[ok, m].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            q25, q50, q75 = np.percentile(vals, [25, 50, 75]) if len(vals) else (np.nan,) * 3
            row[f"median_{m}"] = float(q50)
            if m == metric:
                row[f"{m}_q25"], row[f"{m}_q75"] = float(q25), float(q75)
        row["diverged"] = int((~ok).sum())
        rows.append(row)
    return by_rate(pd.DataFrame(rows), runs, list(axes) + ["variant"])


# ----------------------------------------------------------------------------- paired


@dataclass(frozen=True)
class Paired:
    """Variant against baseline on the seeds both ran (see ``paired``).

    ``effect`` is the median per-seed ratio (epochs, losses) or the mean per-seed
    difference in points (accuracy); ``bound``, when the median ratio is ±∞, is the finite
    value it is known to lie beyond (a censored run counted at its budget).
    """

    seeds_paired: int
    success_rate: float
    baseline_success_rate: float
    success_diff: float
    success_diff_ci_low: float
    success_diff_ci_high: float
    mcnemar_p: float
    effect: float
    effect_ci_low: float
    effect_ci_high: float
    bound: float
    effect_n: int  # pairs behind the effect: every pair (epochs), pairs with both values finite (final_*)
    wilcoxon_p: float
    win_rate: float
    min_attainable_p: float


NO_PAIRS = Paired(0, *[np.nan] * 10, 0, np.nan, np.nan, np.nan)


def min_attainable_p(n: int) -> float:
    """The smallest two-sided p that n pairs can give: every pair the same way (exact
    Wilcoxon, or exact McNemar with n discordant pairs), 2 · 2⁻ⁿ; 1 without pairs."""
    return float(min(1.0, 2.0 ** (1 - n))) if n > 0 else 1.0


def log_ratios(ev, cv, eb, cb) -> np.ndarray:
    """log(variant / baseline) per pair: ±∞ when only one side converged (a censored run is
    slower than any converged one), 0 when neither did (a tie) or both took 0 epochs."""
    ev, eb = np.asarray(ev, float), np.asarray(eb, float)
    cv, cb = np.asarray(cv, bool), np.asarray(cb, bool)
    with np.errstate(all="ignore"):
        d = np.log(ev / eb)  # the ratio first, so equal ratios give equal (tied) log-ratios
    d = np.where(np.isnan(d) & cv & cb, 0.0, d)  # 0 / 0: both met the criterion at their initial weights
    d = np.where(cv & ~cb, -np.inf, d)
    d = np.where(~cv & cb, np.inf, d)
    return np.where(~cv & ~cb, 0.0, d)


def _median_log(d, axis=-1):
    """Median of log-ratios that may hold ±∞ (as ±INF_LOG); a result beyond INF_LOG / 4
    is ±∞ again, and the two middle values −∞ and +∞ of an even count average to 0."""
    m = np.median(np.clip(d, -INF_LOG, INF_LOG), axis=axis)
    return np.where(np.abs(m) > INF_LOG / 4, np.copysign(np.inf, m), m)


def median_ratio(d) -> tuple[float, float, float]:
    """Median ratio exp(median log-ratio) with its percentile bootstrap CI, any end ±∞ → ∞/0."""
    d = np.asarray(d, float)
    if not len(d):
        return np.nan, np.nan, np.nan
    lo, hi = bootstrap_ci(np.clip(d, -INF_LOG, INF_LOG), lambda x, axis=-1: np.median(x, axis=axis))
    ends = [np.exp(float(_median_log(np.array([x])))) if np.isfinite(x) else np.nan for x in (lo, hi)]
    return float(np.exp(_median_log(d))), *ends


def wilcoxon(d) -> float:
    """Two-sided Wilcoxon signed-rank p on per-pair differences ``d`` (may hold ±∞: ranked
    largest). Zero differences stay in, split between the signs (``zsplit``), so ties weigh
    against a difference instead of dropping out. NaN without pairs; 1 when all tie."""
    d = np.round(np.asarray(d, float), TIE_DECIMALS)  # float noise must not break ties
    if not len(d):
        return np.nan
    if np.all(d == 0):
        return 1.0
    finite = d[np.isfinite(d)]
    top = (np.abs(finite).max() if len(finite) else 0.0) * 2 + 1
    d = np.where(np.isinf(d), np.sign(d) * top, d)  # beyond every finite |d|, tied among themselves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy notes when ties force the normal approximation
        return float(st.wilcoxon(d, zero_method="zsplit").pvalue)


def mcnemar(only_v: int, only_b: int, alternative: str = "two-sided") -> float:
    """Exact McNemar: a binomial test on the discordant pairs (only one side succeeded)."""
    if only_v + only_b == 0:
        return 1.0
    return float(st.binomtest(only_v, only_v + only_b, 0.5, alternative=alternative).pvalue)


def paired(v: pd.DataFrame, b: pd.DataFrame, metric: str = EPOCHS, on: list[str] | None = None, budget: float | None = None) -> Paired:
    """Variant runs ``v`` against baseline runs ``b``, matched on ``on`` (default: seed).

    - success: rates over the paired seeds, their difference in points with a bootstrap
      CI, exact McNemar on the discordant pairs;
    - epochs: every pair counts. Median per-seed ratio v/b with a bootstrap CI, and a
      Wilcoxon signed-rank test on the same log-ratios: a censored run is slower than any
      converged one, two censored runs tie. When the median is ±∞, ``bound`` is the
      median with each censored run counted at its budget: the true median lies beyond it.
      Win rate = share of pairs where v converged strictly sooner;
    - a final_* metric: pairs where both values are finite (a diverged run has none);
      accuracy as the mean difference in points, other metrics as the median ratio; the
      test on the same differences or log-ratios; win = strictly better, a finite value
      beating a missing one.
    """
    on = list(on or ["seed"])
    m = v.merge(b, on=on, suffixes=("_v", "_b"))
    n = len(m)
    if n == 0:
        return NO_PAIRS
    cv, cb = m["converged_v"].to_numpy(bool), m["converged_b"].to_numpy(bool)
    success = 100.0 * (cv.astype(float) - cb.astype(float))
    s_lo, s_hi = bootstrap_ci(success)
    bound = np.nan
    if metric == EPOCHS:
        ev, eb = m["epochs_to_converge_v"].to_numpy(float), m["epochs_to_converge_b"].to_numpy(float)
        d = log_ratios(ev, cv, eb, cb)
        effect, lo, hi = median_ratio(d)
        if np.isinf(effect) or effect == 0:
            at_budget = log_ratios(np.where(cv, ev, budgets(m.rename(columns=_side("v")), budget)), True, np.where(cb, eb, budgets(m.rename(columns=_side("b")), budget)), True)
            bound = float(np.exp(np.median(at_budget)))
        wins = cv & (~cb | (ev < eb))
        n_effect = n
    else:
        x, y = m[f"{metric}_v"].to_numpy(float), m[f"{metric}_b"].to_numpy(float)
        fx, fy = np.isfinite(x), np.isfinite(y)
        better = x > y if HIGHER_IS_BETTER.get(metric, False) else x < y
        wins = fx & (~fy | better)
        ok = fx & fy
        if is_difference(metric):
            d = 100.0 * (x[ok] - y[ok])
            effect = float(d.mean()) if len(d) else np.nan
            lo, hi = bootstrap_ci(d)
        else:
            d = log_ratios(x[ok], True, y[ok], True)
            effect, lo, hi = median_ratio(d)
        n_effect = int(ok.sum())
    return Paired(
        seeds_paired=n,
        success_rate=float(cv.mean()),
        baseline_success_rate=float(cb.mean()),
        success_diff=float(success.mean()),
        success_diff_ci_low=s_lo,
        success_diff_ci_high=s_hi,
        mcnemar_p=mcnemar(int((cv & ~cb).sum()), int((~cv & cb).sum())),
        effect=effect,
        effect_ci_low=lo,
        effect_ci_high=hi,
        bound=bound,
        effect_n=n_effect,
        wilcoxon_p=wilcoxon(d),
        win_rate=float(wins.mean()),
        min_attainable_p=min_attainable_p(n_effect),
    )


def _side(side: str) -> dict:
    """Columns of one side of a merged pair frame, renamed back (for ``budgets``)."""
    return {f"{c}_{side}": c for c in ("epochs_run", "epochs_to_converge", BUDGET_AXIS)}


def _memo_paired(memo: dict | None, key: tuple, compute: Callable[[], Paired]) -> Paired:
    """``compute()``, or what it gave for ``key`` before (key: axes values, variant, its
    rate, the baseline's rate); NaN axis values are keyed alike."""
    if memo is None:
        return compute()
    key = tuple("nan" if isinstance(k, float) and k != k else k for k in (*key[0], *key[1:]))
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def effect_prefix(metric: str) -> str:
    """The comparison columns' stem: epochs_ratio, final_ce_ratio, final_accuracy_diff."""
    if metric == EPOCHS:
        return "epochs_ratio"
    return f"{metric}_diff" if is_difference(metric) else f"{metric}_ratio"


def stat_row(p: Paired, metric: str = EPOCHS) -> dict:
    """A Paired as comparison.csv columns, the effect named after the metric."""
    prefix = effect_prefix(metric)
    centre = prefix if is_difference(metric) else f"{prefix}_median"
    row = {
        "seeds_paired": p.seeds_paired,
        "success_rate": p.success_rate,
        "baseline_success_rate": p.baseline_success_rate,
        "success_diff": p.success_diff,
        "success_diff_ci_low": p.success_diff_ci_low,
        "success_diff_ci_high": p.success_diff_ci_high,
        "mcnemar_p": p.mcnemar_p,
        centre: p.effect,
        f"{prefix}_ci_low": p.effect_ci_low,
        f"{prefix}_ci_high": p.effect_ci_high,
    }
    if not is_difference(metric):
        row[f"{prefix}_bound"] = p.bound
    row.update({f"{prefix}_n": p.effect_n, "wilcoxon_p": p.wilcoxon_p, "win_rate": p.win_rate, "min_attainable_p": p.min_attainable_p})
    return row


def effect_columns(metric: str) -> tuple[str, str, str]:
    """(effect, CI low, CI high) column names of ``metric`` in comparison/tuned tables."""
    prefix = effect_prefix(metric)
    return (prefix if is_difference(metric) else f"{prefix}_median"), f"{prefix}_ci_low", f"{prefix}_ci_high"


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
    any sweep axes pooled into one group). ``budget``: training.epochs, where a censored
    run is censored (default: a swept training.epochs column, else the most any run ran).
    ``memo``: shared with ``tuned`` on the same runs, so a pair both need is computed once.
    """
    rows = []
    keys = list(axes) + ["learning_rate"]
    for key, g in _groups(runs, keys):
        base = g[g["variant"] == baseline]
        if base.empty:  # a rate only the variant tried (a search's round): nothing to pair with
            continue
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            p = _memo_paired(memo, (key[:-1], variant, key[-1], key[-1]), lambda: paired(g[g["variant"] == variant], base, metric, pair_on, budget))
            rows.append({"variant": variant, "baseline": baseline, **dict(zip(keys, key)), **stat_row(p, metric)})
    return by_rate(pd.DataFrame(rows), runs, list(axes) + ["variant"])


def _select(frame: pd.DataFrame, keys: list[str], key: tuple) -> pd.DataFrame:
    """Rows of ``frame`` whose ``keys`` equal ``key`` (NaN matching NaN)."""
    for k, val in zip(keys, key):
        if len(frame) == 0 or k not in frame.columns:
            break
        col = frame[k]
        frame = frame[col.isna()] if pd.isna(val) else frame[col == val]
    return frame
