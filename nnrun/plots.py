"""Matplotlib figures from stored results: loss curves, success rate, epochs, ECDF.

Compute, then show: each figure is drawn from a DataFrame that a pure function builds
from the results directory (``curve_bands``, ``success_points``, ``epoch_points``,
``ecdf_points``), so tests check the numbers a figure shows, not its pixels. Nothing here
trains: runs.csv, curves.npz and config.yaml are read, and the summary is recomputed from
runs.csv by ``stats.summarize`` exactly as the sweep computed summary.csv.

matplotlib is imported inside the drawing functions (``nnrun --help`` stays fast) and only
through ``matplotlib.figure.Figure``, never pyplot, so no global backend is switched and no
display is needed (PNG is rendered by Agg).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from nnrun import stats, tuning
from nnrun.config import Config, ConfigError, cells, hint, read_config
from nnrun.results import ResultsError, find_results, read_manifest, read_runs, require_new_dir

FORMATS = ("png", "svg")
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


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Sweep:
    """One results directory as stored: its config, runs.csv and curves.npz.

    ``curves`` maps ``epoch`` (logged,) and ``ce``, ``mse``, ``accuracy`` (runs, logged),
    whose rows are in the order of ``run_id`` (runs,).
    """

    path: Path
    config: Config
    runs: pd.DataFrame
    curves: dict[str, np.ndarray] | None  # None: a partial run, whose curves come when it completes

    @property
    def axes(self) -> list[str]:
        return list(self.config.sweep)


def read_curves(directory: Path) -> dict[str, np.ndarray]:
    path = Path(directory) / "curves.npz"
    try:
        with np.load(path) as npz:
            curves = {k: npz[k] for k in ("epoch", "run_id", *METRICS, "accuracy")}
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; the loss curves are written with runs.csv (finish the run with --resume)") from None
    except KeyError as exc:
        raise ResultsError(f"{path}: no array {exc}; expected epoch, run_id, ce, mse, accuracy") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read as .npz ({exc}); the directory is damaged") from None
    shape = (len(curves["run_id"]), len(curves["epoch"]))
    for k in (*METRICS, "accuracy"):
        if curves[k].shape != shape:
            raise ResultsError(f"{path}: {k} has shape {curves[k].shape}, expected (runs, logged epochs) = {shape}")
    return curves


def read_sweep(directory: Path) -> Sweep:
    """A results directory's data; a partial one has its finished runs and no curves yet."""
    directory = Path(directory)
    partial = read_manifest(directory).get("status") != "complete"
    if partial and not (directory / "runs.csv").exists():
        raise ResultsError(f"{directory / 'runs.csv'}: no runs yet, nothing to plot (finish the run with --resume --out {directory})")
    runs = read_runs(directory)
    if runs.empty:
        raise ResultsError(f"{directory / 'runs.csv'}: no runs yet, nothing to plot (finish the run with --resume --out {directory})")
    curves = None if partial and not (directory / "curves.npz").exists() else read_curves(directory)
    return Sweep(directory, read_config(directory), runs, curves)


# ----------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class Group:
    """The runs of one figure set: one value of each ``by`` column (none: the whole sweep)."""

    key: tuple[tuple[str, object], ...]
    runs: pd.DataFrame
    summary: pd.DataFrame  # stats.summarize of ``runs``: one row per (variant, learning_rate)

    @property
    def label(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.key)

    @property
    def slug(self) -> str:
        """The file-name suffix: '' for a whole sweep, else e.g. '-model.init.scale=0.5'."""
        if not self.key:
            return ""
        return "-" + "_".join(f"{k}={re.sub(r'[^A-Za-z0-9.-]+', '_', str(v)).strip('_')}" for k, v in self.key)


def check_by(runs: pd.DataFrame, by: list[str], source: Path, axes: list[str]) -> None:
    """--by must name runs.csv columns other than the two every figure already spreads out."""
    for col in by:
        if col in ("variant", "learning_rate"):
            raise ConfigError(f"--by {col}: every figure already shows each variant and learning rate; group by a sweep axis or another runs.csv column")
        if col not in runs.columns:
            offer = f"; its sweep axes are {', '.join(axes)}" if axes else "; this sweep has no axes"
            raise ConfigError(f"--by {col}: {source / 'runs.csv'} has no such column{hint(col, runs.columns)}{offer}")
    if len(set(by)) != len(by):
        raise ConfigError(f"--by {' '.join(by)}: a column is named twice")


def groups(sweep: Sweep, by: list[str] | None = None) -> list[Group]:
    """One group per value of the ``by`` columns (default: the sweep axes), in run order."""
    by = list(by) if by else sweep.axes
    check_by(sweep.runs, by, sweep.path, sweep.axes)
    summary = stats.summarize(sweep.runs, by, budget=sweep.config.training.epochs)
    if not by:
        return [Group((), sweep.runs, summary)]
    out = []
    for key, g in sweep.runs.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mask = np.ones(len(summary), bool)
        for col, value in zip(by, key):
            mask &= (summary[col] == value).to_numpy() | (summary[col].isna().to_numpy() & pd.isna(value))
        out.append(Group(tuple(zip(by, key)), g, summary[mask].reset_index(drop=True)))
    return out


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


# ----------------------------------------------------------------------------- figure data


def _quantiles(values: np.ndarray) -> np.ndarray:
    """25th, 50th, 75th percentile per column of (runs, epochs), ignoring non-finite entries.

    A column with no finite value gives NaN without numpy's all-NaN warning. Returns (3, epochs).
    """
    values = np.where(np.isfinite(values), values, np.nan).astype(float)
    out = np.full((3, values.shape[1]), np.nan)
    ok = ~np.isnan(values).all(axis=0)
    if ok.any():
        out[:, ok] = np.nanpercentile(values[:, ok], [25, 50, 75], axis=0)
    return out


def curve_bands(runs: pd.DataFrame, curves: dict[str, np.ndarray], metric: str) -> pd.DataFrame:
    """Median and interquartile band of ``metric`` per (learning_rate, variant, epoch).

    Diverged runs are left out, as summary.csv's median_final_* leave them out. A run's
    curve ends where it stopped (curves.npz holds NaN after its last update), so each
    median is over the runs still training, and ``runs`` counts them.
    """
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    row_of = pd.Index(curves["run_id"])
    epoch = np.asarray(curves["epoch"])
    parts = []
    for (lr, variant), g in runs[~runs["diverged"]].groupby(["learning_rate", "variant"], sort=False):
        rows = row_of.get_indexer(g["run_id"].to_numpy())
        if (rows < 0).any():
            missing = g["run_id"].to_numpy()[rows < 0][0]
            raise ResultsError(f"curves.npz has no curve for run_id {missing}, which runs.csv lists; the directory is damaged")
        values = curves[metric][rows]
        q25, q50, q75 = _quantiles(values)
        parts.append(
            pd.DataFrame(
                {"learning_rate": lr, "variant": variant, "epoch": epoch, "median": q50, "q25": q25, "q75": q75, "runs": np.isfinite(values).sum(axis=0)}
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CURVE_COLUMNS)


CURVE_COLUMNS = ["learning_rate", "variant", "epoch", "median", "q25", "q75", "runs"]


def success_points(summary: pd.DataFrame) -> pd.DataFrame:
    """Success rate per (variant, learning_rate) with its Wilson 95% interval."""
    cols = ["variant", "learning_rate", "runs", "converged", "success_rate", "success_ci_low", "success_ci_high"]
    return summary[cols].sort_values(["learning_rate"], kind="stable").reset_index(drop=True)


def epoch_points(summary: pd.DataFrame) -> pd.DataFrame:
    """Kaplan–Meier median epochs with its 95% CI per (variant, learning_rate), as
    summary.csv has it, with ``runs`` and ``converged``; ``reached`` is False where the
    median was not reached within the budget (drawn at the budget as a bound)."""
    cols = ["variant", "learning_rate", "runs", "converged", "budget", "epochs_median", "epochs_median_ci_low", "epochs_median_ci_high"]
    s = summary[cols].assign(reached=summary["epochs_median"].notna())
    return s.sort_values(["learning_rate"], kind="stable").reset_index(drop=True)


def ecdf_points(runs: pd.DataFrame, summary: pd.DataFrame, best: pd.DataFrame | None = None, budget: float | None = None) -> pd.DataFrame:
    """Per variant at its tuned learning rate: the Kaplan–Meier share of runs converged by
    each epoch, 1 − S(t), with its 95% log-log band (``low``, ``high``), from the same
    estimator as summary.csv. A censored run counts until the budget, so each curve ends
    at the estimated success rate rather than at 1."""
    best = best if best is not None else tuning.best_rates(runs, summary, [])
    parts = []
    for _, b in best.iterrows():
        g = runs[(runs["variant"] == b["variant"]) & (runs["learning_rate"] == b["learning_rate"])]
        t, s, low, high = stats.km_curve(g["epochs_to_converge"].to_numpy(float), g["converged"].to_numpy(bool), stats.budgets(g, budget))
        parts.append(pd.DataFrame({"variant": b["variant"], "learning_rate": b["learning_rate"], "epochs": t, "fraction": 1 - s, "low": 1 - high, "high": 1 - low, "runs": len(g)}))
    columns = ["variant", "learning_rate", "epochs", "fraction", "low", "high", "runs"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


# ----------------------------------------------------------------------------- titles


def describe(config: Config) -> str:
    """What was trained, for a title: 'xor · 3-4-1 sigmoid · sgd, full batch, summed gradients'."""
    from nnrun.datasets import DataError
    from nnrun.executor import layer_sizes, load_data

    d = config.dataset
    params = d.params()
    data_text = d.name + (f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
    try:
        data = load_data(config)
        sizes = {v.name: "-".join(map(str, layer_sizes(config, data, v.output))) for v in config.variant_objects()}
        shape = max(sorted(set(sizes.values())), key=list(sizes.values()).count)  # the usual one
        other = [f"{v}: {s}" for v, s in sizes.items() if s != shape]  # e.g. a softmax's two outputs
    except (DataError, OSError, ValueError):  # an input file moved since: say what is known
        shape, other = "-".join(["?", *map(str, config.model.hidden), "?"]), []
    net = f"{shape} {config.model.activation}" + (" + bias" if config.model.bias else "") + (f" ({', '.join(other)})" if other else "")
    t = config.training
    batch = "full batch" if t.batch_size == "full" else f"batch {t.batch_size}"
    opt = f"{t.optimizer.name}, {batch}, {'summed' if t.reduction == 'sum' else 'mean'} gradients"
    return f"{data_text} · {net} · {opt}"


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def group_config(config: Config, key: tuple[tuple[str, object], ...]) -> list[Config]:
    """The configs of the sweep cells a group's runs came from (axes fixed by ``key``)."""
    fixed = dict(key)
    out = []
    for cell in cells(config):
        values = {k: v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v) for k, v in cell.axes}  # as runs.csv stores them
        if all(_same(values[k], v) for k, v in fixed.items() if k in values):
            out.append(cell.config)
    return out or [config]


def title(sweep: Sweep, group: Group, what: str) -> str:
    """``what``, then what was trained and on how many runs, then the group's axis values."""
    configs = group_config(sweep.config, group.key)
    trained = " | ".join(dict.fromkeys(describe(c) for c in configs))
    runs = group.runs.groupby(["variant", "learning_rate"]).size()  # seeds, or more when --by pools cells
    n = f"{runs.min()} runs" if runs.min() == runs.max() else f"{runs.min()}–{runs.max()} runs"
    lines = [what, f"{trained} · {n} each"]
    if group.key:
        lines.append(group.label)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- drawing


def curves_figsize(n_panels: int) -> tuple[float, float]:
    cols = min(n_panels, PANEL_COLUMNS)
    rows = math.ceil(n_panels / PANEL_COLUMNS)
    return (max(PANEL_SIZE[0] * cols, PLOT_SIZE[0]), PANEL_SIZE[1] * rows + HEADER_HEIGHT)


def _figure(size: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _suptitle(fig, heading: str) -> None:
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
    fig = _figure(curves_figsize(n))
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
    _suptitle(fig, heading)
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

    fig = _figure(PLOT_SIZE)
    ax = fig.subplots()
    variants = _errorbars(ax, points, styles, "success_rate", "success_ci_low", "success_ci_high")
    ax.set_xscale("log")
    _rate_ticks(ax, points["learning_rate"])
    ax.set_ylim(-0.04, 1.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("runs converged (% of seeds)")
    ax.grid(True, alpha=0.3)
    _suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_epochs(points: pd.DataFrame, all_lrs: list[float], styles: dict, heading: str, budget: int, ylim=None):
    fig = _figure(PLOT_SIZE)
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
    _suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_ecdf(points: pd.DataFrame, best: pd.DataFrame, styles: dict, heading: str, budget: int, xlim=None):
    from matplotlib.ticker import PercentFormatter

    fig = _figure(PLOT_SIZE)
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
    _suptitle(fig, heading)
    _legend(fig, styles, variants, labels, markers=False)
    return fig


def draw_sensitivity(summary: pd.DataFrame, best: pd.DataFrame, styles: dict, heading: str, budget: int):
    """Success (top) and Kaplan–Meier median epochs (bottom) against every tried learning
    rate, each variant's tuned rate ringed: how sharply each variant depends on its rate."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure((PLOT_SIZE[0], PLOT_SIZE[1] * 1.5))
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
    _suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


def draw_tuning_budget(budget_rows: pd.DataFrame, styles: dict, heading: str):
    """Expected best median epochs against the number of rates drawn at random."""
    fig = _figure(PLOT_SIZE)
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
    _suptitle(fig, heading)
    _legend(fig, styles, variants)
    return fig


# ----------------------------------------------------------------------------- the command


def _save(fig, path: Path, fmt: str) -> Path:
    from nnrun.results import atomic_open

    with atomic_open(path) as fh:
        fig.savefig(fh, format=fmt, dpi=DPI, metadata={"Software": "nnrun"} if fmt == "png" else {"Creator": "nnrun"})
    return path


@dataclass(frozen=True)
class FigureSet:
    """The data of one group's four figures, exactly as drawn."""

    group: Group
    curves: pd.DataFrame  # curve_bands
    success: pd.DataFrame  # success_points
    epochs: pd.DataFrame  # epoch_points
    ecdf: pd.DataFrame  # ecdf_points
    best: pd.DataFrame  # tuning.best_rates: the tuned rate each survival curve is taken at


def figure_data(sweep: Sweep, metric: str = "ce", by: list[str] | None = None) -> list[FigureSet]:
    """Everything the figures show, per group, computed from the stored results only."""
    out = []
    for g in groups(sweep, by):
        best = tuning.best_rates(g.runs, g.summary, [], pair_on=["seed", *[a for a in sweep.axes if a not in dict(g.key)]])
        budget = sweep.config.training.epochs
        bands = curve_bands(g.runs, sweep.curves, metric) if sweep.curves is not None else pd.DataFrame(columns=CURVE_COLUMNS)
        out.append(FigureSet(g, bands, success_points(g.summary), epoch_points(g.summary), ecdf_points(g.runs, g.summary, best, budget), best))
    return out


def log_limits(values, top: float | None = None) -> tuple[float, float] | None:
    """Limits a little outside the positive finite ``values`` (and ``top``) on a log axis."""
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=float)) if np.isfinite(x) and x > 0] + ([top] if top else []))
    if not len(v):
        return None
    return float(v.min()) / 1.25, float(v.max()) * 1.25


def sweep_figures(sweep: Sweep, metric: str, by: list[str] | None, styles: dict) -> Iterator[tuple[FigureSet, dict]]:
    """Each group's figures, drawn one group at a time: (its data, {file stem: Figure}).

    Groups share each figure's value axis so that they can be compared side by side. The
    loss-curve figure is left out where there are no curves (a partial run).
    """
    sets = figure_data(sweep, metric, by)
    budget, every = sweep.config.training.epochs, sweep.config.logging.every
    curve_y = log_limits(pd.concat([f.curves[["q25", "q75"]] for f in sets]).to_numpy()) if sweep.curves is not None else None
    epochs_y = log_limits(pd.concat([f.epochs[["epochs_median_ci_low", "epochs_median_ci_high"]] for f in sets]).to_numpy(), budget)
    ecdf_x = log_limits(pd.concat([f.ecdf["epochs"] for f in sets]).to_numpy(), budget)
    name = METRICS[metric].split(" (")[0]
    for f in sets:
        g = f.group
        for v in g.runs["variant"]:
            styles.setdefault(v, variant_style(v))
        figures = {}
        if sweep.curves is not None:
            figures[f"curves-{metric}"] = draw_curves(
                f.curves, metric, styles, title(sweep, g, f"Training {name} per learning rate: median over runs still training, band 25–75%; faint: fewer than {FEW_RUNS} runs (diverged left out)"), budget, every, curve_y
            )
        figures |= {
            "success": draw_success(f.success, styles, title(sweep, g, "Success rate vs learning rate; bars: Wilson 95% interval")),
            "epochs": draw_epochs(
                f.epochs, list(g.summary["learning_rate"]), styles, title(sweep, g, "Epochs to converge vs learning rate: Kaplan–Meier median, bars 95% CI; ▵ not reached; converged/runs"), budget, epochs_y
            ),
            "ecdf": draw_ecdf(f.ecdf, f.best, styles, title(sweep, g, "Converged by each epoch at each variant's tuned learning rate (Kaplan–Meier, band 95% CI)"), budget, ecdf_x),
        }
        if sweep.config.search:  # a search: how each variant depends on its rate, and how much tuning it needs
            figures["sensitivity"] = draw_sensitivity(g.summary, f.best, styles, title(sweep, g, "Sensitivity to the learning rate: every rate the search tried"), budget)
            figures["tuning-budget"] = draw_tuning_budget(
                tuning.tuning_budget(g.summary, []), styles, title(sweep, g, "Tuning budget: expected best median epochs from k random rates (weighted by log-range)")
            )
        yield f, figures


def plot_sweep(sweep: Sweep, out: Path, fmt: str, metric: str, by: list[str] | None, styles: dict) -> list[Path]:
    """Every figure for one results directory, one set per group; returns the files written."""
    written = []
    for f, figures in sweep_figures(sweep, metric, by, styles):
        written.extend(_save(fig, out / f"{stem}{f.group.slug}.{fmt}", fmt) for stem, fig in figures.items())
    return written


def run_plots(results: list[Path], *, out: Path | None, fmt: str, metric: str, by: list[str] | None, notes: list[str] | None = None) -> list[Path]:
    """`nnrun plot`: figures for each results directory, in ``<dir>/plots/`` unless ``out``.

    With several directories and ``out``, each gets its own subfolder named after it. A
    partial run is plotted from the runs it finished; ``notes`` gets what could not be drawn.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if out is not None:
        require_new_dir(out)
    directories = find_results(list(results))
    for d in directories:
        read_manifest(d)  # a damaged directory is reported, not plotted
    sweeps = [read_sweep(d) for d in directories]
    for sweep in sweeps:
        if sweep.curves is None and notes is not None:
            m = read_manifest(sweep.path)
            notes.append(
                f"{sweep.path}: partial ({m.get('runs_done', len(sweep.runs))} of {m.get('runs_total', '?')} runs): plotted the finished runs; "
                f"the loss curves (curves.npz) come when the run completes: nnrun sweep CONFIG --out {sweep.path} --resume"
            )
    styles = variant_styles([v for s in sweeps for v in s.config.variant_objects() for v in [v.name]])
    written: list[Path] = []
    names: set[str] = set()
    for sweep in sweeps:
        if out is None:
            target = sweep.path / "plots"
        elif len(sweeps) == 1:
            target = Path(out)
        else:
            name, n = sweep.path.name, 1
            while name in names:
                n += 1
                name = f"{sweep.path.name}-{n}"
            names.add(name)
            target = Path(out) / name
        written.extend(plot_sweep(sweep, target, fmt, metric, by, styles))
    return written
