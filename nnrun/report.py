"""Tables for people and for files: rich terminal tables, CSV, markdown, LaTeX, JSON.

Only reads what stats.py computed from stored runs; never trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from nnrun import stats
from nnrun.stats import EPOCHS


def pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def num(x: float, digits: int = 0) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:,.{digits}f}"


def pvalue(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def ratio(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def success_cell(row: pd.Series) -> str:
    return f"{pct(row['success_rate'])} [{pct(row['success_ci_low'])}, {pct(row['success_ci_high'])}]"


def metric_value(x: float, metric: str) -> str:
    if metric == EPOCHS:
        return num(x)
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def median_cell(row: pd.Series, metric: str = EPOCHS) -> str:
    """'1,268 [1,068–1,396]': the median and interquartile range of the metric."""
    if metric == EPOCHS:
        med, q25, q75 = row["epochs_median"], row["epochs_q25"], row["epochs_q75"]
    else:
        med, q25, q75 = row[f"median_{metric}"], row.get(f"{metric}_q25", np.nan), row.get(f"{metric}_q75", np.nan)
    if not np.isfinite(med):
        return "n/a"
    iqr = f" [{metric_value(q25, metric)}–{metric_value(q75, metric)}]" if np.isfinite(q25) else ""
    return metric_value(med, metric) + iqr


epochs_cell = median_cell


def _select(frame: pd.DataFrame, keys: list[str], key: tuple) -> pd.DataFrame:
    """Rows of ``frame`` whose ``keys`` equal ``key`` (NaN matching NaN)."""
    for k, val in zip(keys, key):
        if len(frame) == 0 or k not in frame.columns:
            break
        col = frame[k]
        frame = frame[col.isna()] if pd.isna(val) else frame[col == val]
    return frame


def _heading(keys: list[str], key: tuple, title: str, notes: dict) -> str:
    parts = [title] if title else []
    for k, val in zip(keys, key):
        parts.append(str(val) if k == "experiment" else f"{k} = {val}")
    note = notes.get(key[keys.index("experiment")] if "experiment" in keys else title, "")
    heading = " — ".join(parts)
    return f"{heading} ({note})" if note else heading


def _significance(p: float) -> str:
    text = pvalue(p)
    return f"{text}, no clear difference" if np.isfinite(p) and p >= 0.05 else text


def verdict(row: pd.Series, metric: str = EPOCHS) -> str:
    """The paired comparison in words, e.g. 'mse needed 3.9× [3.4, 4.5] the epochs of ce (p < 0.001); …'."""
    v, b, n = row["variant"], row["baseline"], int(row["seeds_paired"])
    if n == 0:
        return f"{v} and {b} ran no seed in common: nothing to compare"
    if row["success_rate"] == 0 and row["baseline_success_rate"] == 0:
        return f"neither {v} nor {b} converged on any of the {n} seeds"
    prefix = stats.ratio_prefix(metric)
    r, lo, hi, k = row[f"{prefix}_median"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"], int(row[f"{prefix}_n"])
    what = "the epochs" if metric == EPOCHS else f"the {metric}"
    verb = "needed" if metric == EPOCHS else "ended with"
    if np.isfinite(r):
        both = "both converged" if metric == EPOCHS else f"both have a finite {metric}"
        ci = f" [{ratio(lo)[:-1]}, {ratio(hi)[:-1]}]" if np.isfinite(lo) else f" (CI n/a: only {k} seed{'s' * (k != 1)} where {both})"
        parts = [f"{v} {verb} {ratio(r)}{ci} {what} of {b} ({_significance(row['wilcoxon_p'])})"]
    elif metric == EPOCHS:
        parts = [f"no seed where both {v} and {b} converged, so no epoch ratio (counting non-converged as slowest: {_significance(row['wilcoxon_p'])})"]
    else:
        parts = [f"no seed where both {v} and {b} have a finite {metric}"]
    better = "faster" if metric == EPOCHS else ("higher" if stats.HIGHER_IS_BETTER.get(metric, False) else "lower")
    parts.append(f"{better} on {round(row['win_rate'] * n)} of {n} seeds")
    sr, bsr = row["success_rate"], row["baseline_success_rate"]
    if sr == bsr:
        parts.append(f"both converged on {pct(sr)}")
    else:
        parts.append(f"{v} converged on {pct(sr)} vs {b} {pct(bsr)} ({_significance(row['mcnemar_p'])})")
    return "; ".join(parts)


LEGEND = {
    EPOCHS: "× = median over seeds where both converged of epochs(variant) / epochs(baseline), [95% bootstrap CI]; "
    "its p: Wilcoxon signed-rank, a run that did not converge counted slowest; converged p: exact McNemar. "
    "n/a = too few seeds.",
    "final": "× = median over seeds of {metric}(variant) / {metric}(baseline), [95% bootstrap CI]; its p: Wilcoxon "
    "signed-rank on the values (diverged runs left out); converged p: exact McNemar. n/a = too few seeds.",
}


@dataclass(frozen=True)
class Tables:
    """Everything the terminal view shows: stats.summarize, stats.compare, stats.tuned."""

    summary: pd.DataFrame
    comparison: pd.DataFrame
    tuned: pd.DataFrame
    keys: list[str]  # the columns that split tables: sweep axes (and "experiment")
    metric: str = EPOCHS
    title: str = ""  # the experiment's name when it is not one of the keys
    notes: dict = field(default_factory=dict)  # experiment name -> e.g. "partial: 340 of 1000 runs"


def _group_table(t: Tables, key: tuple, g: pd.DataFrame) -> Table:
    variants = list(pd.unique(g["variant"]))
    label = "median epochs [IQR]" if t.metric == EPOCHS else f"median {t.metric} [IQR]"
    table = Table(title=_heading(t.keys, key, t.title, t.notes) or None, title_justify="left")
    table.add_column("lr", justify="right")
    for v in variants:
        table.add_column(f"{v}\nsuccess [95% CI]", justify="right")
        table.add_column(f"{v}\n{label}", justify="right")
    for lr, rows in g.groupby("learning_rate", sort=False):
        cells = [f"{lr:g}"]
        for v in variants:
            r = rows[rows["variant"] == v]
            cells += [success_cell(r.iloc[0]), median_cell(r.iloc[0], t.metric)] if len(r) else ["", ""]
        table.add_row(*cells)
    return table


def _tuned_lines(t: Tables, key: tuple, g: pd.DataFrame) -> list[str]:
    tuned = _select(t.tuned, t.keys, key)
    if not len(tuned):
        return []
    best = stats.best_learning_rates(g, [], t.metric)
    unit = " epochs" if t.metric == EPOCHS else ""
    rule = "fewest epochs" if t.metric == EPOCHS else f"best median {t.metric}"
    lines = [f"Tuned: each variant at its own best learning rate (highest success, then {rule}):"]
    for _, r in best.iterrows():
        median = median_cell(r, t.metric)
        median = f", median {median}{unit}" if median != "n/a" else ""
        lines.append(f"  {r['variant']} at lr {r['learning_rate']:g}: {success_cell(r)} converged{median}")
    lines += [f"  {verdict(row, t.metric)}." for _, row in tuned.iterrows()]
    return lines


def render(console: Console, t: Tables) -> None:
    """The terminal view shared by train, sweep and compare: per group of the keys, a table
    (a row per learning rate, the variants side by side), the paired verdict per learning
    rate in words, and the tuned comparison."""
    groups = [((), t.summary)] if not t.keys else list(stats._groups(t.summary, t.keys))
    for key, g in groups:
        console.print(_group_table(t, key, g))
        comparison = _select(t.comparison, t.keys, key)
        for _, row in comparison.iterrows():
            console.print(f"lr {row['learning_rate']:g}: {verdict(row, t.metric)}.", markup=False, highlight=False)
        for line in _tuned_lines(t, key, g):
            console.print(line, markup=False, highlight=False)
        console.print()
    if len(t.comparison):
        legend = LEGEND[EPOCHS] if t.metric == EPOCHS else LEGEND["final"].format(metric=t.metric)
        console.print(legend, markup=False, highlight=False, style="dim")


def print_summary(console: Console, summary: pd.DataFrame, comparison: pd.DataFrame, axes: list[str], title: str = "", tuned: pd.DataFrame | None = None) -> None:
    render(console, Tables(summary, comparison, tuned if tuned is not None else pd.DataFrame(), list(axes), title=title))


def print_run(console: Console, result) -> None:
    """What train and sweep print at their end: a headline, then the same view as compare."""
    config, m = result.config, result.manifest
    console.print(
        f"{config.name}: {m['runs_total']} runs of {', '.join(v.name for v in config.variant_objects())} "
        f"on {config.dataset.name} in {m['wall_seconds']:.1f} s",
        markup=False,
    )
    render(console, Tables(result.summary, result.comparison, result.tuned, list(config.sweep), title=config.name))


TEXT_FORMATS = ("csv", "markdown", "latex", "json")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def as_text(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as csv, markdown, latex or json text (numbers in full for csv and json,
    to 4 significant digits in markdown and LaTeX; missing values are empty / null / n/a)."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return json.dumps(_records(frame), indent=2) + "\n"
    cols = list(frame.columns)
    cells = [[_fmt_cell(row[c]) for c in cols] for _, row in frame.iterrows()]
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\hline", " & ".join(_latex(c) for c in cols) + r" \\", r"\hline"]
        lines += [" & ".join(_latex(c) for c in row) + r" \\" for row in cells]
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(TEXT_FORMATS)}")


def as_text_tables(frames: dict[str, pd.DataFrame], fmt: str) -> str:
    """Several named tables in one text: json, an object of lists of records; otherwise each
    table after a line naming it (``# name`` in csv, a heading in markdown, a comment in
    LaTeX), separated by blank lines."""
    if fmt == "json":
        return json.dumps({name: _records(f) for name, f in frames.items()}, indent=2) + "\n"
    head = {"csv": "# {}", "markdown": "### {}", "latex": "% {}"}.get(fmt)
    if head is None:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(TEXT_FORMATS)}")
    sep = "\n" if fmt == "csv" else "\n\n"
    return "\n".join(head.format(name) + sep + as_text(f, fmt) for name, f in frames.items())


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain-Python dicts: NaN, NA and ±inf become null."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(x):
    if x is None or x is pd.NA:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _fmt_cell(x) -> str:
    x = _plain(x)
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)
