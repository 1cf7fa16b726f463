"""nnrun's listings as rich tables: what is built in, read from the registries (variants and
their building blocks, data sets, optimisers, executors), and the experiments below a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.table import Table
from rich.text import Text

from nnrun.registry import described


def _table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # text, not markup: a formula may hold [brackets]
    return table


def _entries(title: str, entries, params_header: str) -> Table:
    """A registry as a table: each entry's name, description and parameters with defaults."""
    return _table(title, ("name", "description", params_header), ((e.name, e.description, described(e.params) or "—") for e in entries))


def variants() -> list[Table]:
    """The built-in variants, then what a config may combine: hidden activations and the
    outputs, losses and delta rules of an inline variant ``{name, output, loss, delta}``."""
    from nnrun.variants import ACTIVATION_FORMULAS, DELTA_RULES, LOSS_FORMULAS, OUTPUT_FORMULAS, VARIANTS, Variant

    built_in = _table(
        "variants: (output, loss, delta); exact = the true gradient of the loss",
        ("name", "output", "loss", "delta", "exact", "description"),
        ((v.name, v.output, f"{v.loss}: {v.loss_formula}", f"{v.delta}: {v.delta_formula}", "yes" if v.exact else "no", v.description) for v in VARIANTS.values()),
    )
    forced = {rule: Variant(rule, "sigmoid", "ce", rule).delta_formula for rule in DELTA_RULES if rule != "exact"}
    blocks = [
        *(("model.activation", name, formula) for name, formula in ACTIVATION_FORMULAS.items()),
        *(("output", name, formula) for name, formula in OUTPUT_FORMULAS.items()),
        *(("loss", f"{loss} (with {output})", formula) for (output, loss), formula in LOSS_FORMULAS.items()),
        ("delta", "exact", "dL/dz of the loss, as the built-in variant with that output and loss"),
        *(("delta", rule, f"{formula}, whatever the loss") for rule, formula in forced.items()),
    ]
    return [built_in, _table("building blocks of a config: model.activation, and inline variants {name, output, loss, delta}", ("key", "value", "formula"), blocks)]


def datasets() -> list[Table]:
    from nnrun.config import DatasetConfig
    from nnrun.config.schema import DATASET_PARAMS
    from nnrun.datasets import DATASETS

    # task is shared too, but only data read from a file use it (the csv entry says so)
    shared = [k for k in DatasetConfig.model_fields if k not in DATASET_PARAMS and k not in ("name", "task")]
    return [_entries(f"datasets (every one also takes {', '.join(shared)})", DATASETS.values(), "parameters (dataset.*)")]


def optimizers() -> list[Table]:
    from nnrun.optim import OPTIMIZERS

    return [_entries("optimizers (training.optimizer.name), with PyTorch's update formulas", OPTIMIZERS.values(), "arguments (training.optimizer.*)")]


def executors() -> list[Table]:
    from nnrun.executor import EXECUTORS

    return [_entries("executors (--executor): where the runs train; every one gives the same rows", EXECUTORS.values(), "options")]


def experiments(folder: Path) -> Table | None:
    """The experiments below ``folder``, newest first (None when there are none): status, runs
    done, start, wall time, command."""
    from nnrun.results import listing

    entries = listing(folder)
    if not entries:
        return None
    table = Table(title=f"experiments below {folder} (newest first)")
    for col in ("status", "runs", "started", "wall", "command", "directory"):
        table.add_column(col, justify="right" if col in ("runs", "wall") else "left", overflow="fold")
    for e in entries:
        if e["status"] == "damaged":
            table.add_row("damaged", "", "", "", e["problem"], str(e["path"]))
            continue
        status = f"running (PID {e['pid']})" if e["status"] == "running" else e["status"]
        table.add_row(status, _runs_text(e), e["started"], _duration(e["wall_seconds"]), e["command"], str(e["path"]))
    return table


def _runs_text(e: dict) -> str:
    """'340/1000'; a search: '1800 in 4 rounds' when complete, else 'round 2: 650 runs so far'."""
    if not e["rounds"] or e["rounds"] <= 1:
        return f"{e['runs_done']}/{e['runs_total']}"
    if e["status"] == "complete":
        return f"{e['runs_done']} in {e['rounds']} rounds"
    return f"round {e['rounds'] - 1}: {e['runs_done']} runs so far"


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {s:02d}s"
