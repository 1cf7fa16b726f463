"""Figures across the cells of a sweep: the tuned comparison at a glance.

One sweep axis: the tuned epochs ratio (each non-baseline variant against the baseline, each
at its own tuned learning rate) and each variant's tuned success, as lines over the axis.
Two axes: heatmaps of the same numbers. More: one row of heatmaps per value of the other
axes. As in plots.py, ``overview_points`` builds the numbers from tuned.csv and summary.csv
alone, and the drawing functions only draw them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from nnrun import report, stats
from nnrun.figures import figure, suptitle, variant_style

RATIO_DECADES = 1.0  # heatmap colours saturate at 10× and 0.1×: beyond that the text says it
HEAT_CELL = (0.9, 0.55)  # inches per heatmap cell (width, height)


def overview_points(tuned: pd.DataFrame, summary: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per (cell, variant) at the variant's tuned learning rate, baseline included:
    ``success_rate`` with its Wilson interval (summary.csv), ``at_edge``, and against the
    baseline (empty for the baseline itself) the epochs ratio, its CI, its bound, the text
    shown for it (``effect``) and ``wilcoxon_p``."""
    rows = []
    for _, t in tuned.iterrows():
        cell = {a: t[a] for a in axes}
        rows.append({**cell, "variant": t["baseline"], "learning_rate": t["baseline_learning_rate"], "at_edge": bool(t["baseline_at_edge"]), "baseline": True})
        effect = {c: t[c] for c in ("epochs_ratio_median", "epochs_ratio_ci_low", "epochs_ratio_ci_high", "epochs_ratio_bound", "wilcoxon_p")}
        rows.append({**cell, "variant": t["variant"], "learning_rate": t["learning_rate"], "at_edge": bool(t["at_edge"]), "baseline": False, **effect, "effect": report.effect_cell(t)})
    columns = [*axes, "variant", "learning_rate", "at_edge", "baseline"]
    points = pd.DataFrame(rows, columns=columns + ["epochs_ratio_median", "epochs_ratio_ci_low", "epochs_ratio_ci_high", "epochs_ratio_bound", "wilcoxon_p", "effect"])
    points = points.drop_duplicates([*axes, "variant"]).reset_index(drop=True)  # the baseline once per cell
    success = summary[[*axes, "variant", "learning_rate", "success_rate", "success_ci_low", "success_ci_high"]]
    return points.merge(success, on=[*axes, "variant", "learning_rate"], how="left")


def _shown_ratio(p: pd.DataFrame) -> np.ndarray:
    """The ratio to draw: the median, or its bound where the median lies beyond one."""
    r = p["epochs_ratio_median"].to_numpy(float)
    return np.where(np.isfinite(r) & (r > 0), r, p["epochs_ratio_bound"].to_numpy(float))


def draw_lines(points: pd.DataFrame, axis: str, heading: str):
    """One axis: the tuned ratio (left) and tuned success (right) over the axis' values."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    values = list(pd.unique(points[axis]))
    x = {v: i for i, v in enumerate(values)}
    fig = figure((max(7.5, 1.2 * len(values) * 2 + 2), 4.2))
    ratio_ax, success_ax = fig.subplots(1, 2)
    for variant, p in points.groupby("variant", sort=False):
        st = variant_style(variant)
        xs = p[axis].map(x).to_numpy(float)
        success_ax.errorbar(xs, p["success_rate"], yerr=[p["success_rate"] - p["success_ci_low"], p["success_ci_high"] - p["success_rate"]], color=st.color, marker=st.marker, linestyle=st.linestyle, capsize=3, label=variant)
        if p["baseline"].all():
            continue
        y = _shown_ratio(p)
        err = np.vstack([y - p["epochs_ratio_ci_low"].fillna(pd.Series(y, index=p.index)), p["epochs_ratio_ci_high"].fillna(pd.Series(y, index=p.index)) - y])
        err = np.where(np.isfinite(err) & (err >= 0), err, 0)
        ratio_ax.errorbar(xs, y, yerr=err, color=st.color, marker=st.marker, linestyle=st.linestyle, capsize=3, label=f"{variant} / {points[points['baseline']]['variant'].iloc[0]}")
        bounded = ~np.isfinite(p["epochs_ratio_median"].to_numpy(float)) | (p["epochs_ratio_median"].to_numpy(float) == 0)
        ratio_ax.plot(xs[bounded], y[bounded], linestyle="none", marker="^", markerfacecolor="none", color=st.color, markersize=10)
    ratio_ax.axhline(1, color="0.5", linestyle=":", linewidth=1)
    ratio_ax.set_yscale("log")
    ratio_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ratio_ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}×" if f"{v:.0e}"[0] in "25" else ""))  # 0.2×, 0.5×, 2×, 5×
    ratio_ax.set_ylabel("epochs ratio at tuned rates, median per seed")
    success_ax.set_ylim(-0.04, 1.04)
    success_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    success_ax.set_ylabel("success at the tuned rate")
    for ax in (ratio_ax, success_ax):
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_xlabel(axis)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", frameon=False)
    suptitle(fig, heading)
    return fig


def _heatmap(ax, grid: pd.DataFrame, text: pd.DataFrame, cmap: str, vmin: float, vmax: float, title: str) -> None:
    """``grid``'s values as colours, ``text`` written on each cell in black or white,
    whichever stands out against the cell's colour."""
    image = ax.imshow(grid.to_numpy(float), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), label in np.ndenumerate(text.to_numpy(object)):
        value = grid.to_numpy(float)[i, j]
        r, g, b, _ = image.cmap(image.norm(value)) if np.isfinite(value) else (1, 1, 1, 1)
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(j, i, "" if label is None or (isinstance(label, float) and np.isnan(label)) else str(label), ha="center", va="center", fontsize="small", color="white" if dark else "black")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
    ax.set_title(title, fontsize="medium")


def draw_heatmaps(points: pd.DataFrame, rows: str, cols: str, heading: str):
    """Two axes: per non-baseline variant a heatmap of the tuned epochs ratio (blue: fewer
    epochs than the baseline), then per variant one of its tuned success; '*' marks a tuned
    rate at the edge of the rates tried."""
    variants = list(pd.unique(points["variant"]))
    others = [v for v in variants if not points[points["variant"] == v]["baseline"].all()]
    base = points[points["baseline"]]["variant"].iloc[0]
    r_vals, c_vals = list(pd.unique(points[rows])), list(pd.unique(points[cols]))
    n = len(others) + len(variants)
    fig = figure((max(7.5, n * (HEAT_CELL[0] * len(c_vals) + 1.2)), HEAT_CELL[1] * len(r_vals) + 2.0))
    axs = np.ravel(fig.subplots(1, n, squeeze=False))

    def grid(p: pd.DataFrame, col: str) -> pd.DataFrame:
        return p.pivot_table(index=rows, columns=cols, values=col, aggfunc="first", dropna=False).reindex(index=r_vals, columns=c_vals)

    for ax, v in zip(axs, others):
        p = points[points["variant"] == v].assign(_log=lambda d: np.log10(_shown_ratio(d)), _text=lambda d: d["effect"].str.split(" [", regex=False).str[0] + d["at_edge"].map({True: "*", False: ""}))
        _heatmap(ax, grid(p, "_log"), grid(p, "_text"), "RdBu_r", -RATIO_DECADES, RATIO_DECADES, f"{v} / {base} epochs")
    for ax, v in zip(axs[len(others) :], variants):
        p = points[points["variant"] == v].assign(_text=lambda d: d["success_rate"].map(report.pct) + d["at_edge"].map({True: "*", False: ""}))
        _heatmap(ax, grid(p, "success_rate"), grid(p, "_text"), "Greys", -0.3, 1.6, f"{v} success")
    for i, ax in enumerate(axs):
        ax.set_xlabel(cols)
        ax.set_ylabel(rows if i == 0 else "")
    suptitle(fig, heading)
    return fig


def overview_figures(points: pd.DataFrame, axes: list[str], what: str) -> list[tuple[str, object]]:
    """(caption, Figure) pairs for a sweep's overview: lines for one axis, a row of heatmaps
    for two, one row per value of the other axes for more; none without axes."""
    note = "each variant at its own tuned learning rate; * = that rate is at the edge of the rates tried"
    if len(axes) == 1:
        return [(f"{what}: {note}", draw_lines(points, axes[0], f"{what} across {axes[0]}"))]
    if len(axes) < 1 or points.empty:
        return []
    rows, cols, rest = axes[0], axes[1], axes[2:]
    if not rest:
        return [(f"{what}: {note}", draw_heatmaps(points, rows, cols, f"{what} across {rows} × {cols}"))]
    out = []
    for key in itertools.product(*(pd.unique(points[a]) for a in rest)):
        fixed = ", ".join(f"{a} = {v}" for a, v in zip(rest, key))
        p = stats._select(points, rest, key)
        if len(p):
            out.append((f"{what}, {fixed}: {note}", draw_heatmaps(p, rows, cols, f"{what} across {rows} × {cols} at {fixed}")))
    return out
