"""Tables for people and for files: rich terminal tables, CSV, markdown, LaTeX, JSON.

Only reads what stats.py computed from stored runs; never trains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


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


def epochs_cell(row: pd.Series) -> str:
    if not np.isfinite(row["epochs_median"]):
        return "n/a"
    return f"{num(row['epochs_median'])} [{num(row['epochs_q25'])}–{num(row['epochs_q75'])}]"


def _axes_title(axes: list[str], key) -> str:
    if not axes:
        return ""
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{a} = {v}" for a, v in zip(axes, key))


def verdict(row: pd.Series, lr_text: str = "") -> str:
    """One sentence a student understands, e.g. 'mse needed 3.9× [3.4, 4.5] the epochs of ce'."""
    v, b = row["variant"], row["baseline"]
    where = f" at lr {lr_text}" if lr_text else ""
    if row["seeds_paired"] == 0:
        return f"{v} vs {b}{where}: no seeds in common, nothing to compare"
    parts = []
    r = row["epochs_ratio_median"]
    if np.isfinite(r):
        ci = f" [{ratio(row['epochs_ratio_ci_low'])[:-1]}, {ratio(row['epochs_ratio_ci_high'])[:-1]}]" if np.isfinite(row["epochs_ratio_ci_low"]) else ""
        parts.append(f"{v} needed {ratio(r)}{ci} the epochs of {b} on seeds where both converged ({pvalue(row['wilcoxon_p'])}, Wilcoxon)")
    else:
        parts.append(f"{v} and {b} never both converged on one seed, so no epoch ratio")
    parts.append(f"won {pct(row['win_rate'])} of {int(row['seeds_paired'])} paired seeds")
    sr, bsr = row["success_rate"], row["baseline_success_rate"]
    if sr != bsr:
        parts.append(f"success {pct(sr)} vs {pct(bsr)} ({pvalue(row['mcnemar_p'])}, McNemar)")
    else:
        parts.append(f"same success rate {pct(sr)}")
    return f"{where.strip().capitalize() + ': ' if where else ''}" + "; ".join(parts) + "."


def summary_tables(summary: pd.DataFrame, comparison: pd.DataFrame, axes: list[str], title: str = "") -> list:
    """One rich table per sweep-axes group: a row per learning rate, the variants side by side."""
    out = []
    groups = [((), summary)] if not axes else list(summary.groupby(axes, sort=False, dropna=False))
    for key, g in groups:
        variants = list(pd.unique(g["variant"]))
        heading = " — ".join(t for t in (title, _axes_title(axes, key)) if t)
        table = Table(title=heading or None, title_justify="left", show_lines=False)
        table.add_column("lr", justify="right")
        for v in variants:
            table.add_column(f"{v}\nsuccess [95% CI]", justify="right")
            table.add_column(f"{v}\nmedian epochs [IQR]", justify="right")
        for lr, rows in g.groupby("learning_rate", sort=False):
            cells = [f"{lr:g}"]
            for v in variants:
                r = rows[rows["variant"] == v]
                cells += [success_cell(r.iloc[0]), epochs_cell(r.iloc[0])] if len(r) else ["", ""]
            table.add_row(*cells)
        out.append(table)
        if len(comparison):
            c = comparison
            for a, val in zip(axes, key if isinstance(key, tuple) else (key,)):
                c = c[c[a].astype(str) == str(val)]
            lines = [verdict(row, f"{row['learning_rate']:g}") for _, row in c.iterrows()]
            out.extend(lines)
    return out


def print_summary(console: Console, summary: pd.DataFrame, comparison: pd.DataFrame, axes: list[str], title: str = "") -> None:
    for item in summary_tables(summary, comparison, axes, title):
        console.print(item)


def print_run(console: Console, result) -> None:
    """What train and sweep print at their end: a headline, the tables, the verdicts."""
    config, m = result.config, result.manifest
    console.print(
        f"{config.name}: {m['runs_total']} runs of {', '.join(v.name for v in config.variant_objects())} "
        f"on {config.dataset.name} in {m['wall_seconds']:.1f} s",
        markup=False,
    )
    print_summary(console, result.summary, result.comparison, list(config.sweep))


def as_text(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as csv, markdown, latex or json text."""
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    if fmt == "markdown":
        cols = list(frame.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for _, row in frame.iterrows():
            lines.append("| " + " | ".join(_fmt_cell(row[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        cols = list(frame.columns)
        esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
        lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\hline", " & ".join(esc(c) for c in cols) + r" \\", r"\hline"]
        for _, row in frame.iterrows():
            lines.append(" & ".join(esc(_fmt_cell(row[c])) for c in cols) + r" \\")
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def _fmt_cell(x) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:.4g}"
    return str(x)
