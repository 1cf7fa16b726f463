"""`nnrun compare`: read stored results directories, compute the tables, show and write them.

Reads only what is on disk (runs.csv, config.yaml, manifest.json) and never retrains.
Runs are grouped by experiment name, sweep axes (or ``--by`` keys), learning rate and
variant. Directories of one experiment whose configs differ in a key that is not a sweep
axis get that key as an extra axis, so different settings are never pooled silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from nnrun import report, stats, tuning
from nnrun import results as rs
from nnrun.config import Config, ConfigError
from nnrun.results import ResultsError

FORMATS = ("table",) + report.TEXT_FORMATS
TABLE_FILES = ("summary", "comparison", "tuned")
# Config keys that are an experiment's own axes, or bookkeeping, never a difference to split on.
NOT_AXES = ("name", "variants", "learning_rates", "seeds", "sweep", "logging", "study")


@dataclass(frozen=True)
class Results:
    """One results directory as stored."""

    path: Path
    config: Config
    manifest: dict
    runs: pd.DataFrame

    @property
    def partial(self) -> bool:
        return self.manifest.get("status") != "complete"

    def label(self) -> str:
        done, total = self.manifest.get("runs_done", len(self.runs)), self.manifest.get("runs_total", "?")
        return f"partial: {done} of {total} runs" if self.partial else "complete"


def load(directory: Path) -> Results:
    manifest = rs.read_manifest(directory)
    return Results(Path(directory), rs.read_config(directory), manifest, rs.read_runs(directory))


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _settings(r: Results) -> dict:
    return {k: v for k, v in _flat(r.config.model_dump(mode="json")).items() if k.split(".")[0] not in NOT_AXES}


def combine(found: list[Results]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """All runs in one frame with an ``experiment`` column, the axes, and notes for the user.

    Axes: every directory's sweep axes, plus any config key on which directories of the same
    experiment disagree. A directory lacking an axis column gets its config's value. Each
    run carries its ``training.epochs`` so a non-converged run counts as budget + 1.
    """
    notes = []
    axes: list[str] = []
    for r in found:
        axes += [a for a in r.config.sweep if a not in axes]
    by_name: dict[str, list[Results]] = {}
    for r in found:
        by_name.setdefault(r.config.name, []).append(r)
    extra = set()
    for same in by_name.values():
        settings = [_settings(r) for r in same]
        for key in set().union(*settings):
            if len({json.dumps(s.get(key), sort_keys=True) for s in settings}) > 1:
                extra.add(key)
    axes += sorted(extra - set(axes))
    frames = []
    for r in found:
        runs = r.runs.copy()
        runs.insert(0, "experiment", r.config.name)
        flat = _flat(r.config.model_dump(mode="json"))
        for a in axes + [stats.BUDGET_AXIS]:
            if a not in runs.columns:
                runs[a] = rs.axis_value(flat.get(a))
        frames.append(runs)
    runs = pd.concat(frames, ignore_index=True)
    identity = ["experiment"] + axes + ["variant", "learning_rate", "seed"]
    dup = runs.astype({a: str for a in axes}).duplicated(identity)
    if dup.any():
        notes.append(f"{int(dup.sum())} runs appear in more than one directory (same experiment, settings and seed); each is counted once")
        runs = runs[~dup.to_numpy()].reset_index(drop=True)
    return runs, axes, notes


def _check_options(runs: pd.DataFrame, axes: list[str], baseline: str, metric: str, by: list[str] | None) -> str:
    """The metric's canonical name, after checking every option against the results."""
    metrics = [stats.EPOCHS] + [c for c in runs.columns if c.startswith("final_")]
    if metric == "epochs_to_converge":
        metric = stats.EPOCHS
    if metric not in metrics:
        raise ConfigError(f"--metric: unknown metric {metric!r}; these results have {', '.join(metrics)}")
    variants = list(pd.unique(runs["variant"]))
    if baseline not in variants:
        raise ConfigError(f"--baseline: no variant {baseline!r} in these results; they hold {', '.join(map(str, variants))}")
    allowed = ["experiment"] + axes
    for key in by or []:
        if key not in allowed:
            raise ConfigError(
                f"--by: unknown column {key!r}; choose from {', '.join(allowed)} (the experiment name and the sweep axes; "
                "variant and learning rate are always kept apart)"
            )
    return metric


def tables(runs: pd.DataFrame, keys: list[str], pooled: list[str], baseline: str, metric: str) -> dict[str, pd.DataFrame]:
    """summary, comparison and tuned for runs grouped by ``keys``; ``pooled`` axes are merged
    into each group, so pairs are matched on seed and those axes."""
    pair_on = ["seed"] + pooled
    summary = stats.summarize(runs, keys, metric)
    return {
        "summary": summary,
        "comparison": stats.compare(runs, keys, baseline, metric, pair_on=pair_on),
        "tuned": tuning.tuned(runs, summary, keys, baseline, metric, pair_on=pair_on),
    }


def run_compare(results: list[Path], *, baseline: str | None, metric: str, by: list[str] | None, fmt: str, out: Path | None, console: Console) -> None:
    """Find, read, group, compute, show, write: the whole of `nnrun compare`."""
    if fmt not in FORMATS:  # before any reading, so a typo fails fast
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is not None:
        rs.require_new_dir(out)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    note = console if fmt == "table" else err  # text formats keep stdout parseable
    found = []
    for directory in rs.find_results(results):
        manifest = rs.read_manifest(directory)
        if manifest.get("status") != "complete" and not rs.has_runs(directory):
            note.print(f"skipped {directory}: partial, no finished runs yet", markup=False)
            continue
        found.append(load(directory))
    if not found:
        raise ResultsError(f"{', '.join(map(str, results))}: no finished runs to compare yet")
    runs, axes, notes = combine(found)
    baseline = baseline if baseline is not None else found[0].config.variant_objects()[0].name
    metric = _check_options(runs, axes, baseline, metric, by)

    names = list(pd.unique(runs["experiment"]))
    chosen = list(by) if by is not None else axes
    keys = (["experiment"] if len(names) > 1 and "experiment" not in chosen else []) + chosen
    pooled = [a for a in axes if a not in keys]
    frames = tables(runs, keys, pooled, baseline, metric)

    labels: dict[str, list[str]] = {}
    for r in found:
        labels.setdefault(r.config.name, []).append(r.label())
    partial = {name: "; ".join(x for x in ls if x != "complete") for name, ls in labels.items() if any(x != "complete" for x in ls)}
    for r in found:
        note.print(f"{r.config.name}: {len(r.runs)} runs ({r.label()}) in {r.path}", markup=False)
    for text in notes + ([f"pooled over {', '.join(pooled)}; runs paired on seed and those axes"] if pooled else []):
        note.print(f"note: {text}", markup=False)

    if fmt == "table":
        report.render(console, report.Tables(frames["summary"], frames["comparison"], frames["tuned"], keys, metric, names[0] if "experiment" not in keys else "", partial))
    else:
        console.file.write(report.as_text_tables(frames, fmt))
        console.file.flush()

    if out is None:  # reading is read-only: a results directory's own tables stay as the run wrote them
        files = [rs.table_file(name) for name in TABLE_FILES]
        note.print(f"add --out DIR to save these tables as {', '.join(files[:-1])} and {files[-1]}", markup=False)
        return
    rs.write_tables(Path(out), {name: frames[name] for name in TABLE_FILES})
    note.print(f"wrote {', '.join(rs.table_file(n) for n in TABLE_FILES)} in {out}", markup=False, soft_wrap=True)
