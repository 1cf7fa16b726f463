"""`nnrun plot`: the data behind each figure, computed from stored results, and the command.

Compute, then show: each figure is drawn (by figures.py) from a DataFrame that a pure
function here builds from the results directory (``curve_bands``, ``success_points``,
``epoch_points``, ``ecdf_points``), so tests check the numbers a figure shows, not its
pixels. Nothing here trains: runs.csv, curves.npz and config.yaml are read, and the
summary is recomputed from runs.csv by ``stats.summarize`` exactly as the sweep computed
summary.csv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from nnrun import results as rs
from nnrun import stats, tuning
from nnrun.config import Config, ConfigError, cells, hint
from nnrun.figures import FEW_RUNS, METRICS, draw_curves, draw_ecdf, draw_epochs, draw_sensitivity, draw_success, draw_tuning_budget, save, variant_style, variant_styles
from nnrun.results import ResultsError

FORMATS = ("png", "svg")

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


def read_sweep(directory: Path) -> Sweep:
    """A results directory's data; a partial one has its finished runs and no curves yet."""
    directory = Path(directory)
    partial = rs.read_manifest(directory).get("status") != "complete"
    if (partial and not rs.has_runs(directory)) or (runs := rs.read_runs(directory)).empty:
        raise ResultsError(f"{directory / rs.RUNS}: no runs yet, nothing to plot (finish the run with --resume --out {directory})")
    curves = None if partial and not rs.has_curves(directory) else rs.read_curves(directory)
    return Sweep(directory, rs.read_config(directory), runs, curves)


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
        values = {k: rs.axis_value(v) for k, v in cell.axes}  # as runs.csv stores them
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


# ----------------------------------------------------------------------------- the command


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
        written.extend(save(fig, out / f"{stem}{f.group.slug}.{fmt}", fmt) for stem, fig in figures.items())
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
        rs.require_new_dir(out)
    directories = rs.find_results(list(results))
    for d in directories:
        rs.read_manifest(d)  # a damaged directory is reported, not plotted
    sweeps = [read_sweep(d) for d in directories]
    for sweep in sweeps:
        if sweep.curves is None and notes is not None:
            m = rs.read_manifest(sweep.path)
            notes.append(
                f"{sweep.path}: partial ({m.get('runs_done', len(sweep.runs))} of {m.get('runs_total', '?')} runs): plotted the finished runs; "
                f"the loss curves ({rs.CURVES}) come when the run completes: nnrun sweep CONFIG --out {sweep.path} --resume"
            )
    styles = variant_styles([v for s in sweeps for v in s.config.variant_objects() for v in [v.name]])
    written: list[Path] = []
    names: set[str] = set()
    for sweep in sweeps:
        if out is None:
            target = sweep.path / rs.PLOTS
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
