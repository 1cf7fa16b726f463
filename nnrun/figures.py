"""Drawing: matplotlib figures from the DataFrames plots.py builds, one function per figure.

Every figure shares one look: a variant keeps its colour, marker and dash everywhere
(``variant_style``), titles wrap to the figure's width, and the legend sits below the
panels. matplotlib is imported inside the functions (``nnrun --help`` stays fast) and only
through ``matplotlib.figure.Figure``, never pyplot, so no global backend is switched and no
display is needed (PNG is rendered by Agg).
"""

from __future__ import annotations

import math
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nnrun import results as rs

METRICS = {  # --metric -> what the curves' y axis says (engine.metrics: means over samples)
    "ce": "cross-entropy (nats per sample)",
    "mse": "squared error ½‖a − y‖² (per sample)",
}
DPI = 100  # PNG pixels = inches × 100, so the sizes below read directly as pixels / 100
PLOT_SIZE = (7.5, 5.0)  # success, epochs and ECDF figures: one panel with a legend above
PANEL_SIZE = (4.0, 3.0)  # each learning rate's panel in the loss-curve figure
PANEL_COLUMNS = 3  # loss-curve panels per row; five learning rates make two rows
HEADER_HEIGHT = 1.3  # inches above the loss-curve panels for the title and legend
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # a second cue besides colour
# A third cue for lines, so two variants that trained identically both stay visible.
LINESTYLES = ("solid", (0, (5, 2)), (0, (1, 1.5)), (0, (5, 2, 1, 2)), (0, (8, 3)), (0, (2, 3)))
# A variant keeps its colour, marker and dash in every figure, report and run, whatever else
# is plotted with it: cross-entropy variants in blues, squared-error ones in oranges, the two
# textbook mix-ups in green and red. (colour, MARKERS index, LINESTYLES index)
FIXED_STYLES = {
    "ce": ("#1f77b4", 0, 0),
    "ce-softmax": ("#6baed6", 2, 2),
    "mse": ("#ff7f0e", 1, 1),
    "mse-softmax": ("#a65628", 3, 3),
    "mse-linear": ("#fdae6b", 4, 4),
    "ng-on-mse": ("#2ca02c", 5, 5),
    "mitchell-on-ce": ("#d62728", 6, 1),
}
# Colours left for other names: matplotlib's tab10 (fixed here, not read from rcParams) less the blue, orange, green and red taken above.
SPARE_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FEW_RUNS = 5  # a curve's median over fewer runs still training is drawn faint and says how few
DODGE = 0.03  # variants' points shifted by this many decades in lr so error bars do not overlap


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: object


def variant_style(name: str) -> Style:
    """The colour, marker and dash of a variant name: FIXED_STYLES for the built-in names,
    else picked by a stable hash of the name (crc32, the same in every process)."""
    if name in FIXED_STYLES:
        colour, marker, dash = FIXED_STYLES[name]
        return Style(colour, MARKERS[marker], LINESTYLES[dash])
    h = zlib.crc32(name.encode("utf-8"))
    return Style(SPARE_COLOURS[h % len(SPARE_COLOURS)], MARKERS[(h >> 8) % len(MARKERS)], LINESTYLES[(h >> 16) % len(LINESTYLES)])


def variant_styles(variants: list[str]) -> dict[str, Style]:
    """Each distinct variant name's fixed style (``variant_style``), in first-appearance order."""
    return {v: variant_style(v) for v in dict.fromkeys(variants)}


# ----------------------------------------------------------------------------- shared parts


def curves_figsize(n_panels: int) -> tuple[float, float]:
    cols = min(n_panels, PANEL_COLUMNS)
    rows = math.ceil(n_panels / PANEL_COLUMNS)
    return (max(PANEL_SIZE[0] * cols, PLOT_SIZE[0]), PANEL_SIZE[1] * rows + HEADER_HEIGHT)


def figure(size: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def suptitle(fig, heading: str) -> None:
    """The title, each line wrapped to the figure's width (about 9.5 px per character)."""
    width = int(fig.get_figwidth() * DPI / 9.5)
    fig.suptitle("\n".join(w for line in heading.split("\n") for w in _wrap(line, width)))


def _wrap(line: str, width: int) -> list[str]:
    """Break at ' · ' between the parts of a description first, then at spaces."""
    out: list[str] = []
    for part in line.split(" · "):
        if out and len(out[-1]) + 3 + len(part) <= width:
            out[-1] += " · " + part
        else:
            out.extend(textwrap.wrap(part, width) or [""])
    return out


def _legend(fig, styles: dict, variants: list[str], labels: dict[str, str] | None = None, markers: bool = True) -> None:
    """Below the panels, outside them: it never covers data (the title holds the top)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=styles[v].color, marker=styles[v].marker if markers else None, linestyle=styles[v].linestyle, label=(labels or {}).get(v, v))
        for v in variants
    ]
    per_column = 7 * max((len(h.get_label()) for h in handles), default=1) + 50  # px: text, handle, gap
    ncols = max(1, min(len(handles), int(fig.get_figwidth() * DPI) // per_column))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def _plain_log_labels(axis) -> None:
    """Tick labels as 0.05, 0.1, 0.2 rather than 5×10⁻²; minor ticks labelled at 2 and 5 only."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if f"{x:.0e}"[0] in "25" else ""))


def _lr(lr: float) -> str:
    return f"{lr:.4g}"


MAX_RATE_TICKS = 7  # beyond this many rates (a search's lattice), ordinary log ticks


def _rate_ticks(ax, rates) -> None:
    """The tried rates as the ticks, or plain log ticks when a search tried too many to label."""
    from matplotlib.ticker import NullLocator

    rates = sorted(set(rates))
    if len(rates) <= MAX_RATE_TICKS:
        ax.set_xticks(rates, [_lr(x) for x in rates])
        ax.xaxis.set_minor_locator(NullLocator())  # the learning rates themselves are the ticks
    else:
        _plain_log_labels(ax.xaxis)


def draw_curves(bands: pd.DataFrame, metric: str, styles: dict, heading: str, budget: int, every: int, ylim=None):
    from matplotlib.ticker import FuncFormatter

    lrs = list(dict.fromkeys(bands["learning_rate"])) if len(bands) else []
    n = max(len(lrs), 1)
    cols, rows = min(n, PANEL_COLUMNS), math.ceil(n / PANEL_COLUMNS)
    fig = figure(curves_figsize(n))
    axs = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, lr in zip(axs, lrs):
        for variant, b in bands[bands["learning_rate"] == lr].groupby("variant", sort=False):
            st = styles[variant]
            many = (b["runs"] >= FEW_RUNS).to_numpy()
            ax.fill_between(b["epoch"], b["q25"], b["q75"], where=many, color=st.color, alpha=0.18, linewidth=0)
            ax.plot(b["epoch"], b["median"].where(many), color=st.color, linestyle=st.linestyle, linewidth=1.6)
            ax.plot(b["epoch"], b["median"], color=st.color, linestyle=st.linestyle, linewidth=0.8, alpha=0.45)
            last = b[b["median"].notna()].tail(1)
            if len(last) and int(last["runs"].iloc[0]) < FEW_RUNS:  # the tail says how few runs it rests on
                ax.annotate(f"n={int(last['runs'].iloc[0])}", (last["epoch"].iloc[0], last["median"].iloc[0]), fontsize="x-small", color=st.color, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"lr = {_lr(lr)}")
        ax.set_yscale("log")
        # Most runs converge, and stop, early: linear up to the first logged epoch, then log.
        ax.set_xscale("symlog", linthresh=every, linscale=0.4)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlim(0, budget)
        if ylim:
            ax.set_ylim(*ylim)
        _plain_log_labels(ax.yaxis)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    for ax in axs[len(lrs) :]:
        ax.set_visible(False)
    for i, ax in enumerate(axs[: len(lrs)]):
        if i + cols >= len(lrs):  # the lowest panel in its column, even above an empty slot
            ax.set_xlabel(f"epoch (linear to {every}, log beyond)")
            ax.tick_params(labelbottom=True)
        if i % cols == 0:
            ax.set_ylabel(METRICS[metric])
    suptitle(fig, heading)
    drawn = bands.groupby("variant", sort=False)["median"].apply(lambda m: bool(m.notna().any())) if len(bands) else pd.Series(dtype=bool)
    _legend(fig, styles, list(drawn.index), {v: f"{v} (no {metric} curve)" for v, ok in drawn.items() if not ok}, markers=False)
    return fig


def _dodge(i: int, n: int) -> float:
    return 10 ** ((i - (n - 1) / 2) * DODGE)


def _errorbars(ax, points: pd.DataFrame, styles: dict, y_col: str, low_col: str, high_col: str) -> list[str]:
    """One line with error bars per variant against learning rate, dodged sideways so the
    bars do not overlap; returns the variants in the order drawn."""
    variants = list(dict.fromkeys(points["variant"]))
    for i, v in enumerate(variants):
        p = points[points["variant"] == v]
        x = p["learning_rate"].to_numpy(float) * _dodge(i, len(variants))
        y = p[y_col].to_numpy(float)
        err = np.vstack([y - p[low_col].to_numpy(float), p[high_col].to_numpy(float) - y])
        st = styles[v]
        ax.errorbar(x, y, yerr=err, color=st.color, marker=st.marker, linestyle=st.linestyle, capsize=3, linewidth=1.6)
    return variants


def draw_success(points: pd.DataFrame, styles: dict, heading: str):
    from matplotlib.ticker import PercentFormatter

    fig = figure(PLOT_SIZE)
    ax = fig.subplots()
    variants = _errorbars(ax, points, styles, "success_rate", "success_ci_low", "success_ci_high")
    ax.set_xscale("log")
    _rate_ticks(ax, points["learning_rate"])
    ax.set_ylim(-0.04, 1.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("runs converged (% of seeds)")
    ax.grid(True, alpha=0.3)
    suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_epochs(points: pd.DataFrame, all_lrs: list[float], styles: dict, heading: str, budget: int, ylim=None):
    fig = figure(PLOT_SIZE)
    ax = fig.subplots()
    reached = points[points["reached"]]
    lo = reached["epochs_median_ci_low"].fillna(reached["epochs_median"])
    hi = reached["epochs_median_ci_high"].fillna(budget)  # an upper end beyond the budget
    variants = _errorbars(ax, reached.assign(_lo=lo, _hi=hi), styles, "epochs_median", "_lo", "_hi")
    order = list(dict.fromkeys(points["variant"]))
    for i, v in enumerate(order):
        p = points[points["variant"] == v]
        x = p["learning_rate"].to_numpy(float) * _dodge(i, len(order))
        y = np.where(p["reached"], p["epochs_median"], budget)
        for xi, yi, (_, row) in zip(x, y, p.iterrows()):  # n behind every point (a dense search: where some failed)
            if len(p) > MAX_RATE_TICKS and row["converged"] == row["runs"]:
                continue
            ax.annotate(f"{int(row['converged'])}/{int(row['runs'])}", (xi, yi), fontsize="xx-small", color=styles[v].color, xytext=(3, -8), textcoords="offset points")
        gone = p[~p["reached"]]
        if len(gone):  # not reached: the median lies above the budget
            ax.plot(gone["learning_rate"].to_numpy(float) * _dodge(i, len(order)), np.full(len(gone), budget), linestyle="none", marker="^", markerfacecolor="none", color=styles[v].color, markersize=9)
    variants += [v for v in order if v not in variants]
    ax.set_xscale("log")
    ax.set_yscale("log")
    lrs = sorted(set(all_lrs))
    _rate_ticks(ax, lrs)
    ax.set_xlim(min(lrs) / 10 ** (3 * DODGE + 0.1), max(lrs) * 10 ** (3 * DODGE + 0.1))
    ax.axhline(budget, color="0.5", linestyle=":", linewidth=1)
    ax.annotate(f"epoch budget {budget:,}", (0.01, budget), xycoords=("axes fraction", "data"), va="bottom", fontsize="small", color="0.4")
    ax.set_xlabel("learning rate (log scale)")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel("median epochs to converge (log scale)")
    _plain_log_labels(ax.yaxis)
    ax.grid(True, which="major", alpha=0.3)
    suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_ecdf(points: pd.DataFrame, best: pd.DataFrame, styles: dict, heading: str, budget: int, xlim=None):
    from matplotlib.ticker import PercentFormatter

    fig = figure(PLOT_SIZE)
    ax = fig.subplots()
    variants = list(best["variant"])
    labels = {}
    for _, b in best.iterrows():
        v = b["variant"]
        p = points[points["variant"] == v]
        labels[v] = f"{v} at lr {_lr(b['learning_rate'])} (n = {int(b['runs'])}, {int(b['converged'])} converged)"
        if p.empty:
            continue
        x = np.r_[p["epochs"].to_numpy(float), budget]
        y = np.r_[p["fraction"].to_numpy(float), p["fraction"].iloc[-1]]
        ax.step(np.r_[x[0], x], np.r_[0.0, y], where="post", color=styles[v].color, linestyle=styles[v].linestyle, linewidth=1.8)
        low, high = p["low"].to_numpy(float), p["high"].to_numpy(float)
        ax.fill_between(x, np.r_[low, low[-1]], np.r_[high, high[-1]], step="post", color=styles[v].color, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    _plain_log_labels(ax.xaxis)
    ax.axvline(budget, color="0.5", linestyle=":", linewidth=1)
    ax.annotate(f"budget {budget:,}", (budget, 0.02), ha="right", va="bottom", fontsize="small", color="0.4", xytext=(-3, 0), textcoords="offset points")
    if xlim:
        ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("epochs to converge (log scale)")
    ax.set_ylabel("converged by that epoch (Kaplan–Meier, % of runs)")
    ax.grid(True, which="major", alpha=0.3)
    suptitle(fig, heading)
    _legend(fig, styles, variants, labels, markers=False)
    return fig


def draw_sensitivity(summary: pd.DataFrame, best: pd.DataFrame, styles: dict, heading: str, budget: int):
    """Success (top) and Kaplan–Meier median epochs (bottom) against every tried learning
    rate, each variant's tuned rate ringed: how sharply each variant depends on its rate."""
    from matplotlib.ticker import PercentFormatter

    fig = figure((PLOT_SIZE[0], PLOT_SIZE[1] * 1.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    variants = list(dict.fromkeys(summary["variant"]))
    for v in variants:
        s = summary[summary["variant"] == v].sort_values("learning_rate")
        st = styles[v]
        lo, hi = s["success_rate"] - s["success_ci_low"], s["success_ci_high"] - s["success_rate"]
        top.errorbar(s["learning_rate"], s["success_rate"], yerr=[lo, hi], color=st.color, marker=st.marker, linestyle=st.linestyle, capsize=2, markersize=4)
        med = s["epochs_median"].fillna(budget)
        bottom.plot(s["learning_rate"], med, color=st.color, marker=st.marker, linestyle=st.linestyle, markersize=4)
        gone = s[s["epochs_median"].isna()]
        bottom.plot(gone["learning_rate"], np.full(len(gone), budget), linestyle="none", marker="^", markerfacecolor="none", color=st.color, markersize=9)
        for _, b in best[best["variant"] == v].iterrows():
            row = s[s["learning_rate"] == b["learning_rate"]].iloc[0]
            top.plot([b["learning_rate"]], [row["success_rate"]], marker="o", markersize=14, markerfacecolor="none", color=st.color)
            bottom.plot([b["learning_rate"]], [med[s["learning_rate"] == b["learning_rate"]].iloc[0]], marker="o", markersize=14, markerfacecolor="none", color=st.color)
    top.set_xscale("log")
    top.set_ylim(-0.04, 1.04)
    top.yaxis.set_major_formatter(PercentFormatter(1.0))
    top.set_ylabel("runs converged")
    bottom.set_yscale("log")
    bottom.axhline(budget, color="0.5", linestyle=":", linewidth=1)
    bottom.set_ylabel("median epochs (Kaplan–Meier)")
    bottom.set_xlabel("learning rate (log scale); ring: the tuned rate; ▵: median beyond the budget")
    for ax in (top, bottom):
        ax.grid(True, which="major", alpha=0.3)
    _plain_log_labels(bottom.xaxis)
    _plain_log_labels(bottom.yaxis)
    suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_tuning_budget(budget_rows: pd.DataFrame, styles: dict, heading: str):
    """Expected best median epochs against the number of rates drawn at random."""
    fig = figure(PLOT_SIZE)
    ax = fig.subplots()
    variants = list(dict.fromkeys(budget_rows["variant"]))
    for v in variants:
        b = budget_rows[budget_rows["variant"] == v]
        st = styles[v]
        ax.plot(b["k"], b["expected_best_epochs"], color=st.color, marker=st.marker, linestyle=st.linestyle)
    ax.set_yscale("log")
    _plain_log_labels(ax.yaxis)
    ax.set_xlabel("learning rates tried at random (k)")
    ax.set_ylabel("expected best median epochs")
    ax.grid(True, which="major", alpha=0.3)
    suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def save(fig, path: Path, fmt: str) -> Path:
    """``fig`` as a PNG or SVG file, written atomically; its metadata names nnrun only."""
    with rs.atomic_open(path) as fh:
        fig.savefig(fh, format=fmt, dpi=DPI, metadata={"Software": "nnrun"} if fmt == "png" else {"Creator": "nnrun"})
    return path
