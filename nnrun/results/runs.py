"""runs.csv: one row per run — who it is, its sweep cell's axis values, how it ended.

Columns: ``ID_COLUMNS``, then one per sweep axis (the dotted config key; a list or mapping
value is stored as JSON text, ``axis_value``), then the outcomes and the ``final_*``
metrics (the test ones only where some cell holds a test split). Rows are written from the
journal, chunk by chunk in run-id order, so memory holds one chunk whatever the sweep.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from nnrun.results.files import ResultsError, atomic_open
from nnrun.results.journal import SCALARS, journal_scalars

if TYPE_CHECKING:  # pandas is imported where it is used: the workers start before it loads
    import pandas as pd

    from nnrun.config import Config
    from nnrun.executor import Chunk, Plan

RUNS = "runs.csv"
ID_COLUMNS = ["run_id", "round", "variant", "output", "loss", "delta", "learning_rate", "seed"]  # round: of a learning-rate search, else 0
RESULT_COLUMNS = ["converged", "epochs_to_converge", "epochs_run", "diverged", "final_ce", "final_mse", "final_accuracy", "final_max_error"]
FINAL_ORDER = ["final_ce", "final_mse", "final_accuracy", "final_max_error", "final_test_accuracy", "final_test_ce", "final_test_mse", "final_test_max_error"]


def axis_value(value):
    """A config value as runs.csv stores it in a sweep-axis column (lists and mappings as JSON)."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)


def axis_columns(config: Config) -> list[str]:
    """The sweep axes' columns of runs.csv (and of the tables), in the config's order."""
    return list(config.sweep)


def has_runs(directory: Path) -> bool:
    """Has runs.csv been written (a partial run writes it at its first save)?"""
    return (Path(directory) / RUNS).exists()


def chunk_rows(p: Plan, chunk: Chunk, scalars: dict | None = None) -> pd.DataFrame:
    """A chunk's rows: identity columns, sweep axes, and (given its journal scalars) its outcomes."""
    import pandas as pd

    v = p.config.variant_objects()[chunk.variant]
    lrs, seeds = chunk.lrs_seeds(p.cells[chunk.cell].config)
    frame = pd.DataFrame(
        {"run_id": chunk.run_ids, "round": chunk.round, "variant": v.name, "output": v.output, "loss": v.loss, "delta": v.delta, "learning_rate": lrs, "seed": seeds}
    )
    for key, value in p.cells[chunk.cell].axes:
        frame[key] = axis_value(value)
    if scalars is not None:
        for key in [*SCALARS, *(k for k in scalars if k.startswith("final_"))]:
            frame[key] = scalars[key]
        frame["epochs_to_converge"] = frame["epochs_to_converge"].where(frame["converged"]).astype("Int64")
        frame = frame.reindex(columns=_column_order(p))
    return frame


def _column_order(p: Plan) -> list[str]:
    """runs.csv's columns; test metrics when any cell holds a test split (NaN elsewhere)."""
    finals = FINAL_ORDER if any(c.config.dataset.has_test_split() for c in p.cells) else FINAL_ORDER[:4]
    return ID_COLUMNS + axis_columns(p.config) + list(SCALARS) + finals


def write_runs(directory: Path, p: Plan, done: set[int]) -> None:
    """runs.csv from the journal's finished chunks, streamed chunk by chunk in run-id order."""
    import pandas as pd

    with atomic_open(Path(directory) / RUNS, "w") as fh:
        first = True
        for chunk in p.chunks:
            if chunk.id in done:
                chunk_rows(p, chunk, journal_scalars(directory, chunk.id)).to_csv(fh, index=False, header=first, lineterminator="\n")
                first = False
        if first:
            pd.DataFrame(columns=_column_order(p)).to_csv(fh, index=False, lineterminator="\n")


def cell_runs(directory: Path, p: Plan, done: set[int]) -> Iterator[tuple[Config, pd.DataFrame]]:
    """(cell config, its rows) for each sweep cell with finished chunks, from the journal:
    statistics never span cells, so memory is bounded by the largest cell, not the sweep."""
    import pandas as pd

    for cell in p.cells:
        chunks = [c for c in p.chunks if c.cell == cell.index and c.id in done]
        if chunks:
            yield cell.config, pd.concat([chunk_rows(p, c, journal_scalars(directory, c.id)) for c in chunks], ignore_index=True)


# ----------------------------------------------------------------------------- reading


def read_runs(directory: Path) -> pd.DataFrame:
    """runs.csv with its columns checked; a ResultsError names the line, column and value.

    Rows are checked as written by nnrun: every row has as many fields as the header (a
    truncated or hand-edited file does not), ids and counts are whole numbers ≥ 0, learning
    rates are finite and > 0, flags are True/False, and run ids are unique. Final metrics may
    be empty (a diverged run has none).
    """
    import pandas as pd

    path = Path(directory) / RUNS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; the run wrote no rows yet (resume it with --resume --out {directory})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: cannot be read as text (UTF-8); the file is damaged — rerun or resume the experiment") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty; expected a header and one row per run")
    _check_fields(path, text)
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be parsed as CSV: {str(exc).strip()}") from None
    if "round" not in frame.columns:  # written before searches existed: one round
        frame.insert(1, "round", 0)
    missing = [c for c in ID_COLUMNS + RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}; was it written by nnrun?")
    _check_values(path, frame)
    return frame


def _check_values(path: Path, frame: pd.DataFrame) -> None:
    """Numbers where numbers belong, True/False flags, unique run ids; converts in place."""
    import pandas as pd

    def fail(row: int, col: str, expected: str) -> None:
        value = frame[col].iloc[row]
        got = "nothing" if pd.isna(value) else repr(value if isinstance(value, str) else _plain_number(value))
        raise ResultsError(f"{path}: line {row + 2}, column {col!r} must be {expected}, got {got}")

    finals = [c for c in frame.columns if c.startswith("final_")]
    # (column, may be empty, check, what it must be)
    rules = [("run_id", False, "whole", "a whole number >= 0"), ("seed", False, "whole", "a whole number >= 0"),
             ("learning_rate", False, "positive", "a finite number > 0"), ("epochs_run", False, "whole", "a whole number >= 0"),
             ("epochs_to_converge", True, "whole", "a whole number >= 0 or empty")]
    rules += [(c, True, "number", "a number or empty") for c in finals]
    for col, may_be_empty, kind, expected in rules:
        values = pd.to_numeric(frame[col], errors="coerce").astype(float)
        v = values.to_numpy()
        bad = np.isnan(v) & frame[col].notna().to_numpy()  # text where a number belongs
        if not may_be_empty:
            bad |= np.isnan(v)
        with np.errstate(invalid="ignore"):
            if kind == "whole":
                bad |= ~np.isnan(v) & ((v < 0) | (v != np.round(v)) | ~np.isfinite(v))
            elif kind == "positive":
                bad |= ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))
        if bad.any():
            fail(int(np.flatnonzero(bad)[0]), col, expected)
        frame[col] = values.astype("int64") if kind == "whole" and not may_be_empty else values  # epochs_to_converge stays float: NaN = not converged
    flags = {True: True, False: False, "True": True, "False": False, "true": True, "false": False}
    for col in ("converged", "diverged"):
        values = frame[col].map(lambda x: flags.get(x) if isinstance(x, (bool, str, np.bool_)) else None)
        if values.isna().any():
            fail(int(np.flatnonzero(values.isna().to_numpy())[0]), col, "True or False")
        frame[col] = values.astype(bool)
    dup = frame["run_id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((frame["run_id"] == frame["run_id"].iloc[row]).to_numpy())[0])
        raise ResultsError(f"{path}: line {row + 2} repeats run_id {frame['run_id'].iloc[row]} of line {first + 2}; every run_id must be unique")


def _plain_number(value):
    return int(value) if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()) else value


def _check_fields(path: Path, text: str) -> None:
    """Every row has the header's number of fields: a cut or hand-edited row is named, not padded."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        for row in reader:
            if row and len(row) != len(header):
                raise ResultsError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, the header {len(header)}; "
                    "the file is truncated or was edited — rerun or resume the experiment"
                )
    except csv.Error as exc:
        raise ResultsError(f"{path}: line {reader.line_num}: cannot be parsed as CSV ({exc})") from None
