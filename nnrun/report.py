"""Tables for people and for files: rich terminal tables, CSV, markdown, LaTeX, JSON.

Only reads what stats.py computed from stored runs; never trains. The terminal view fits
80 columns: per sweep cell a table of learning rates (the detail), the tuned comparison in
words, and for a sweep of several cells one overview table across them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from nnrun import stats
from nnrun.stats import EPOCHS


def _ok(x) -> bool:
    return x is not None and not pd.isna(x) and np.isfinite(float(x))


def pct(x: float) -> str:
    return f"{100 * x:.0f}%" if _ok(x) else "n/a"


def num(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}" if _ok(x) else "n/a"


def pvalue(p: float) -> str:
    if not _ok(p):
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def ratio(x: float) -> str:
    """'4.89×'; ∞ and 0 for the ends of a censored comparison."""
    if x is None or pd.isna(x):
        return "n/a"
    if np.isinf(x):
        return "∞"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def points(x: float) -> str:
    return f"{x:+.1f}" if _ok(x) else "n/a"


def success_cell(row: pd.Series, sep: str = " ") -> str:
    """'97%\u00a0[92–99]': the success rate and its Wilson 95% interval, in percent."""
    lo, hi = row["success_ci_low"], row["success_ci_high"]
    ci = f"{sep}{100 * lo:.0f}–{100 * hi:.0f}" if _ok(lo) and _ok(hi) else ""
    return pct(row["success_rate"]) + (ci if sep == "\n" else f" [{ci.strip()}]" if ci else "")


def _epoch_end(x: float, budget: float) -> str:
    return num(x) if _ok(x) else (f">{num(budget)}" if _ok(budget) else "n/a")


def median_cell(row: pd.Series, metric: str = EPOCHS, sep: str = " ") -> str:
    """Epochs: the Kaplan–Meier median with its 95% CI ('623 [598–650]'; '> 500' when the
    curve never reaches one half). A final_* metric: its median and interquartile range."""
    if metric == EPOCHS:
        budget = row.get("budget", np.nan)
        med, lo, hi = row["epochs_median"], row["epochs_median_ci_low"], row["epochs_median_ci_high"]
        if not _ok(med):
            return f"> {num(budget)}" if _ok(budget) else "n/a"
        ci = f"{_epoch_end(lo, budget)}–{_epoch_end(hi, budget)}" if _ok(lo) else ""
        return num(med) + (f"\n{ci}" if sep == "\n" else f" [{ci}]" if ci else "")
    med, q25, q75 = row[f"median_{metric}"], row.get(f"{metric}_q25", np.nan), row.get(f"{metric}_q75", np.nan)
    if not _ok(med):
        return "n/a"
    return f"{med:.3g}" + (f"{sep}[{q25:.3g}–{q75:.3g}]" if _ok(q25) else "")


def _p_cell(p: float) -> str:
    """A p-value for a table column headed "p": '0.008', '< 0.001'."""
    return pvalue(p).removeprefix("p = ").replace("p ", "")


def effect_cell(row: pd.Series, metric: str = EPOCHS, sep: str = " ") -> str:
    """The paired effect with its CI: '4.89× [4.85, 4.97]', '> 12.0×' (a median on a
    censored pair: it lies beyond that bound), '+3.0 pts [−1.0, 7.0]'."""
    centre, lo_col, hi_col = stats.effect_columns(metric)
    r, lo, hi = row.get(centre, np.nan), row.get(lo_col, np.nan), row.get(hi_col, np.nan)
    if stats.is_difference(metric):
        if not _ok(r):
            return "n/a"
        return f"{points(r)} pts" + (f"{sep}[{points(lo)}, {points(hi)}]" if _ok(lo) else "")
    if r is None or pd.isna(r):
        return "n/a"
    bound = row.get(f"{stats.effect_prefix(metric)}_bound", np.nan)
    if np.isinf(r) or r == 0:
        text = f"> {ratio(bound)}" if np.isinf(r) else f"< {ratio(bound)}"
    else:
        text = ratio(r)
    if pd.isna(lo):
        return text
    ends = [_ratio_end(x) for x in (lo, hi)]
    return text + (f"\n{ends[0]}–{ends[1]}" if sep == "\n" else f" [{ends[0]}, {ends[1]}]")


def _ratio_end(x: float) -> str:
    """A CI end of a ratio: ∞ and 0 where censored pairs put it, else 3 significant digits."""
    if np.isinf(x):
        return "∞"
    return "0" if x == 0 else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def _select(frame: pd.DataFrame, keys: list[str], key: tuple) -> pd.DataFrame:
    return stats._select(frame, keys, key)


def _heading(keys: list[str], key: tuple, title: str, notes: dict) -> str:
    parts = [title] if title else []
    for k, val in zip(keys, key):
        parts.append(str(val) if k == "experiment" else f"{k} = {val}")
    note = notes.get(key[keys.index("experiment")] if "experiment" in keys else title, "")
    heading = " — ".join(parts)
    return f"{heading} ({note})" if note else heading


def _significance(p: float) -> str:
    text = pvalue(p)
    return f"{text}, no clear difference" if _ok(p) and p >= stats.ALPHA else text


def verdict(row: pd.Series, metric: str = EPOCHS) -> str:
    """The paired comparison in words, e.g. 'mse needed 4.89× [4.85, 4.97] the epochs of ce
    (Wilcoxon p < 0.001, 100 pairs); faster on 2 of 100 seeds; both converged on 100%'."""
    v, b, n = row["variant"], row["baseline"], int(row["seeds_paired"])
    if n == 0:
        return f"{v} and {b} ran no seed in common: nothing to compare"
    if row["success_rate"] == 0 and row["baseline_success_rate"] == 0:
        return f"neither {v} nor {b} converged on any of the {n} seeds"
    k = int(row[f"{stats.effect_prefix(metric)}_n"])
    effect = effect_cell(row, metric)
    if metric == EPOCHS:
        what = f"{v} needed {effect} the epochs of {b}"
    elif stats.is_difference(metric):
        what = f"{v}'s {metric} differed from {b}'s by {effect} (mean per seed)"
    else:
        what = f"{v} ended with {effect} the {metric} of {b}"
    parts = [f"{what} (Wilcoxon {_significance(row['wilcoxon_p'])}, {k} pair{'s' * (k != 1)})" if k else f"no seed where both {v} and {b} have a finite {metric}"]
    better = "faster" if metric == EPOCHS else ("higher" if stats.HIGHER_IS_BETTER.get(metric, False) else "lower")
    parts.append(f"{better} on {round(row['win_rate'] * n)} of {n} seeds")
    sr, bsr = row["success_rate"], row["baseline_success_rate"]
    if sr == bsr:
        parts.append(f"both converged on {pct(sr)}")
    else:
        diff = f"{points(row['success_diff'])} pts"
        if _ok(row.get("success_diff_ci_low")):
            diff += f" [{points(row['success_diff_ci_low'])}, {points(row['success_diff_ci_high'])}]"
        parts.append(f"{v} converged on {pct(sr)} vs {b} {pct(bsr)}, {diff} (McNemar {_significance(row['mcnemar_p'])})")
    return "; ".join(parts)


def legend(metric: str) -> str:
    if metric == EPOCHS:
        effect = (
            "epochs: Kaplan–Meier median [95% CI] over every run, a run that did not converge (or diverged) censored at "
            "the budget ('> N': not reached). ×: median over seed pairs of epochs(variant) / epochs(baseline) [95% "
            "bootstrap CI], a censored run slower than any converged one, two censored runs a tie; '> k×': the median "
            "lies beyond k; p: Wilcoxon signed-rank on the same pairs."
        )
    elif stats.is_difference(metric):
        effect = f"pts: mean over seed pairs of {metric}(variant) − {metric}(baseline) in percentage points [95% bootstrap CI]; p: Wilcoxon signed-rank on the same pairs (diverged runs left out)."
    else:
        effect = f"×: median over seed pairs of {metric}(variant) / {metric}(baseline) [95% bootstrap CI]; p: Wilcoxon signed-rank on the same pairs (diverged runs left out)."
    return f"success: runs converged [Wilson 95% CI]. {effect} Success differences: exact McNemar. n/a: too few runs."


@dataclass(frozen=True)
class Tables:
    """Everything the terminal view shows: stats.summarize, stats.compare, tuning.tuned."""

    summary: pd.DataFrame
    comparison: pd.DataFrame
    tuned: pd.DataFrame
    keys: list[str]  # the columns that split tables: sweep axes (and "experiment")
    metric: str = EPOCHS
    title: str = ""  # the experiment's name when it is not one of the keys
    notes: dict = field(default_factory=dict)  # experiment name -> e.g. "partial: 340 of 1000 runs"
    verbose: bool = True  # every cell's detail; otherwise the overview alone when there are several cells


def _table(title: str | None = None) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))


def _group_table(t: Tables, key: tuple, g: pd.DataFrame) -> Table:
    """One row per learning rate: each variant's success and median, then each variant's
    paired effect against the baseline at that rate."""
    variants = list(pd.unique(g["variant"]))
    comparison = _select(t.comparison, t.keys, key)
    label = "epochs" if t.metric == EPOCHS else t.metric
    table = _table(_heading(t.keys, key, t.title, t.notes) or None)
    table.add_column("lr", justify="right")
    for v in variants:
        table.add_column(f"{v}\nsuccess", justify="right", no_wrap=True)
        table.add_column(f"{v}\n{label}", justify="right", no_wrap=True)
    others = list(pd.unique(comparison["variant"])) if len(comparison) else []
    for v in others:
        base = comparison["baseline"].iloc[0]
        table.add_column(f"{v}/{base}\n{'×' if not stats.is_difference(t.metric) else 'pts'}", justify="right", no_wrap=True)
        table.add_column("p", justify="right", no_wrap=True)
    for lr, rows in g.groupby("learning_rate", sort=False):
        cells = [f"{lr:.4g}"]
        for v in variants:
            r = rows[rows["variant"] == v]
            cells += [success_cell(r.iloc[0], "\n"), median_cell(r.iloc[0], t.metric, "\n")] if len(r) else ["", ""]
        for v in others:
            c = comparison[(comparison["variant"] == v) & (comparison["learning_rate"] == lr)]
            cells += [effect_cell(c.iloc[0], t.metric, "\n"), _p_cell(c.iloc[0]["wilcoxon_p"])] if len(c) else ["", ""]
        table.add_row(*cells)
    return table


def _tuned_rows(t: Tables, key: tuple, g: pd.DataFrame) -> list[tuple[pd.Series, pd.Series | None, bool]]:
    """(summary row at the tuned rate, its tuned.csv row or None for the baseline, at_edge)."""
    tuned = _select(t.tuned, t.keys, key)
    if not len(tuned):
        return []
    first = tuned.iloc[0]
    picks = [(first["baseline"], first["baseline_learning_rate"], None, bool(first["baseline_at_edge"]))]
    picks += [(r["variant"], r["learning_rate"], r, bool(r["at_edge"])) for _, r in tuned.iterrows()]
    out = []
    for variant, lr, row, edge in picks:
        s = g[(g["variant"] == variant) & (g["learning_rate"] == lr)]
        if len(s):
            out.append((s.iloc[0], row, edge))
    return out


def _tuned_lines(t: Tables, key: tuple, g: pd.DataFrame) -> list[str]:
    lrs = sorted(pd.unique(g["learning_rate"]))
    rows = _tuned_rows(t, key, g)
    if len(lrs) < 2 or not rows:  # one rate: the table above already says everything
        return []
    unit = " epochs" if t.metric == EPOCHS else ""
    lines = ["Tuned, each variant at its own best rate (the lowest median among rates whose success is not credibly below the best's):"]
    for s, _, edge in rows:
        where = " (at the edge of the rates tried: the optimum may lie beyond)" if edge else ""
        lines.append(f"  {s['variant']} at lr {s['learning_rate']:.4g}{where}: {success_cell(s)} converged, median {median_cell(s, t.metric)}{unit}")
    lines += [f"  {verdict(row, t.metric)}." for _, row, _ in rows if row is not None]
    return lines


def _overview(t: Tables, groups: list) -> Table | None:
    """One row per (cell, variant): the tuned rate (* at an edge), success, median and the
    effect against the baseline; the whole sweep at a glance."""
    table = _table(f"{t.title + ': ' if t.title else ''}each variant at its tuned learning rate (* = at the edge of the rates tried)")
    for k in t.keys:
        table.add_column(k, overflow="fold")
    table.add_column("variant", overflow="fold")
    table.add_column("lr", justify="right", no_wrap=True)
    table.add_column("success", justify="right", no_wrap=True)
    table.add_column("epochs" if t.metric == EPOCHS else t.metric, justify="right", no_wrap=True)
    table.add_column("vs\nbaseline", justify="right", no_wrap=True)
    table.add_column("p", justify="right", no_wrap=True)
    for key, g in groups:
        rows = _tuned_rows(t, key, g)
        for i, (s, row, edge) in enumerate(rows):
            cells = [str(v) if i == 0 else "" for v in key]
            effect = "—" if row is None else effect_cell(row, t.metric, "\n")
            p = "" if row is None else _p_cell(row["wilcoxon_p"])
            cells += [str(s["variant"]), f"{s['learning_rate']:.4g}{'*' if edge else ''}", success_cell(s, "\n"), median_cell(s, t.metric, "\n"), effect, p]
            table.add_row(*cells, end_section=i == len(rows) - 1)
    return table if table.row_count else None


def _few_pairs_note(t: Tables) -> str | None:
    frames = [f for f in (t.comparison, t.tuned) if len(f) and "min_attainable_p" in f.columns]
    if not frames:
        return None
    worst = pd.concat(frames)["min_attainable_p"].max()
    if not _ok(worst) or worst < stats.ALPHA:
        return None
    n = pd.concat(frames)["seeds_paired"].min()
    return f"note: with {int(n)} seed pairs no paired test can reach p < 0.05 (the smallest attainable p is {worst:.3g}); add seeds for a verdict."


def render(console: Console, t: Tables) -> None:
    """The terminal view shared by train, sweep and compare. Verbose (compare, --verbose, or
    a single cell): per cell, the learning-rate table, the per-rate verdicts in words
    (verbose only) and the tuned comparison. Several cells: the overview across them."""
    groups = [((), t.summary)] if not t.keys else list(stats._groups(t.summary, t.keys))
    detail = t.verbose or len(groups) == 1
    for key, g in groups if detail else []:
        console.print(_group_table(t, key, g))
        if t.verbose or len(pd.unique(g["learning_rate"])) == 1:  # one rate: no tuned block repeats it
            for _, row in _select(t.comparison, t.keys, key).iterrows():
                console.print(f"lr {row['learning_rate']:.4g}: {verdict(row, t.metric)}.", markup=False, highlight=False)
        for line in _tuned_lines(t, key, g):
            console.print(line, markup=False, highlight=False)
        console.print()
    if len(groups) > 1:
        overview = _overview(t, groups)
        if overview is not None:
            console.print(overview)
        if not t.verbose:
            console.print("Each cell's learning rates, effects and tests: add --verbose, or run nnrun compare on the results.", markup=False, highlight=False)
    note = _few_pairs_note(t)
    if note:
        console.print(note, markup=False, highlight=False)
    if len(t.comparison):
        console.print(legend(t.metric), markup=False, highlight=False, style="dim")


def print_run(console: Console, result, verbose: bool = False) -> None:
    """What train and sweep print at their end: a headline, then the same view as compare."""
    config, m = result.config, result.manifest
    console.print(
        f"{config.name}: {m['runs_total']} runs of {', '.join(v.name for v in config.variant_objects())} "
        f"on {config.dataset.name} in {m['wall_seconds']:.1f} s",
        markup=False,
    )
    render(console, Tables(result.summary, result.comparison, result.tuned, list(config.sweep), title=config.name, verbose=verbose))


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
