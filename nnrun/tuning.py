"""Each variant at its own best learning rate: the tuned rule, the tuned comparison, and
how much tuning each variant needs (the tuning budget).

One shared learning rate favours whichever variant's gradients happen to be larger, so
variants are compared at their own tuned rates; docs/statistics.md states the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnrun.stats import ALPHA, EPOCHS, HIGHER_IS_BETTER, _groups, _memo_paired, _select, mcnemar, paired, stat_row

TUNED_RULE = (
    "each variant at its own best learning rate: among the rates whose success is not below the most successful rate's "
    "(one-sided exact McNemar, p ≥ 0.05, paired by seed), the lowest Kaplan–Meier median epochs; if no median is reached, "
    "the highest success"
)


def _pick(cands: pd.DataFrame, metric: str) -> pd.Series:
    """Among eligible summary rows: the best median of ``metric`` (lowest KM median epochs,
    lowest loss, highest accuracy), then the higher success, then the lower rate; with no
    median at all, the highest success."""
    col = "epochs_median" if metric == EPOCHS else f"median_{metric}"
    sign = -1.0 if HIGHER_IS_BETTER.get(metric, False) else 1.0
    ranked = cands.assign(_m=(sign * cands[col]).fillna(np.inf), _s=-cands["success_rate"])
    return ranked.sort_values(["_m", "_s", "learning_rate"], kind="stable").iloc[0]


def best_rates(runs: pd.DataFrame, summary: pd.DataFrame, axes: list[str], metric: str = EPOCHS, pair_on: list[str] | None = None) -> pd.DataFrame:
    """Each variant's tuned learning rate per axes group, by TUNED_RULE: the summary row of
    that rate plus ``lr_low``/``lr_high`` (the tried rates either side, empty at an end),
    ``at_edge`` (the lowest or highest rate tried: a search that ends there was stopped by
    its limits or its rounds), ``rates_tried``, ``eligible`` (how many rates the rule kept)
    and ``rounds`` (the search rounds that tried rates for it; 1 for a plain list)."""
    on = list(pair_on or ["seed"])
    keys = list(axes) + ["variant"]
    out = []
    for key, s in _groups(summary, keys):
        top = s.sort_values(["success_rate", "learning_rate"], ascending=[False, True], kind="stable").iloc[0]
        g = _select(runs, keys, key)
        at_top = g[g["learning_rate"] == top["learning_rate"]]
        eligible = []
        for _, row in s.iterrows():
            m = g[g["learning_rate"] == row["learning_rate"]].merge(at_top, on=on, suffixes=("", "_top"))
            c, ct = m["converged"].to_numpy(bool), m["converged_top"].to_numpy(bool)
            worse = mcnemar(int((ct & ~c).sum()), int((c & ~ct).sum()), alternative="greater")
            if row["learning_rate"] == top["learning_rate"] or worse >= ALPHA:
                eligible.append(row)
        best = _pick(pd.DataFrame(eligible), metric)
        lrs = np.sort(s["learning_rate"].to_numpy(float))
        i = int(np.searchsorted(lrs, best["learning_rate"]))
        out.append(
            {
                **best.drop(["_m", "_s"]).to_dict(),
                "lr_low": lrs[i - 1] if i > 0 else np.nan,
                "lr_high": lrs[i + 1] if i + 1 < len(lrs) else np.nan,
                "at_edge": bool(i == 0 or i == len(lrs) - 1),
                "rates_tried": len(lrs),
                "eligible": len(eligible),
                "rounds": int(g["round"].nunique()) if "round" in g.columns and len(g) else 1,
            }
        )
    return pd.DataFrame(out)


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
    best: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each variant at its own tuned learning rate (``best_rates``) against the baseline at
    its own, paired by seed (the same seed starts from the same weights at every rate)."""
    best = best if best is not None else best_rates(runs, summary, axes, metric, pair_on)
    rows = []
    for key, g in _groups(runs, list(axes)):
        sel = _select(best, list(axes), key).set_index("variant")
        if baseline not in sel.index:
            continue
        b = sel.loc[baseline]
        base = g[(g["variant"] == baseline) & (g["learning_rate"] == b["learning_rate"])]
        for variant in [v for v in pd.unique(g["variant"]) if v != baseline]:
            t = sel.loc[variant]
            vv = g[(g["variant"] == variant) & (g["learning_rate"] == t["learning_rate"])]
            p = _memo_paired(memo, (key, variant, t["learning_rate"], b["learning_rate"]), lambda: paired(vv, base, metric, pair_on, budget))
            rows.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    **dict(zip(axes, key)),
                    "learning_rate": t["learning_rate"],
                    "baseline_learning_rate": b["learning_rate"],
                    "lr_low": t["lr_low"],
                    "lr_high": t["lr_high"],
                    "baseline_lr_low": b["lr_low"],
                    "baseline_lr_high": b["lr_high"],
                    "at_edge": t["at_edge"],
                    "baseline_at_edge": b["at_edge"],
                    "rounds": t["rounds"],
                    **stat_row(p, metric),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tuning budget


def rate_weights(rates) -> np.ndarray:
    """The share of the tried range (in log rate) each tried rate stands for: the interval
    between the geometric midpoints to its neighbours, the ends up to the rate itself. A
    search zooms in, so uniform weights would over-count the rates it crowded together."""
    rates = np.asarray(rates, float)
    order = np.argsort(rates)
    x = np.log(rates[order])
    if len(x) == 1:
        return np.ones(1)
    edges = np.r_[x[0], (x[1:] + x[:-1]) / 2, x[-1]]
    w = np.empty(len(x))
    w[order] = np.diff(edges) / (x[-1] - x[0])  # in the order the rates were given
    return w


def expected_best(values, weights, k: int) -> float:
    """E[min of ``values`` over k draws with replacement, drawn with ``weights``]: with the
    values sorted ascending, the j-th is the best of k draws with probability
    S_j^k − S_{j+1}^k, where S_j is the weight of the j-th and all worse ones."""
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    tail = np.r_[np.cumsum(w[::-1])[::-1], 0.0]  # S_j, S_{n+1} = 0
    p = tail[:-1] ** k - tail[1:] ** k
    return float(np.dot(p, v))


def tuning_budget(summary: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Per (axes, variant) and k = 1 … rates tried: the expected best Kaplan–Meier median
    epochs when k rates are drawn at random from the tried range, each weighted by the
    log-range it stands for (Sivaprasad et al., ICML 2020: does one variant need more
    tuning?). A median not reached counts as the budget, the least it could be."""
    rows = []
    for key, s in _groups(summary, list(axes) + ["variant"]):
        s = s.sort_values("learning_rate")
        med = s["epochs_median"].fillna(s["budget"]).to_numpy(float)
        w = rate_weights(s["learning_rate"])
        for k in range(1, len(s) + 1):
            rows.append({**dict(zip(list(axes) + ["variant"], key)), "k": k, "expected_best_epochs": expected_best(med, w, k), "rates_tried": len(s)})
    return pd.DataFrame(rows)
