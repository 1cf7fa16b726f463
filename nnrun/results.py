"""The results directory: atomic writes, the manifest, the chunk journal, CSV/NPZ in and out.

Every file is written to a temporary name beside its target, flushed to disk and renamed
over it, so a kill at any moment leaves each file either complete or absent. Finished
chunks are journaled as they arrive (``journal/chunk-NNNNNN.npz``) so ``--resume`` can skip
them; the results files are assembled from the journal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterator

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: the workers start before it loads
    import pandas as pd

RESULT_COLUMNS = [
    "converged",
    "epochs_to_converge",
    "epochs_run",
    "diverged",
    "final_ce",
    "final_mse",
    "final_accuracy",
    "final_max_error",
]
TEST_COLUMNS = ["final_test_accuracy", "final_test_ce", "final_test_mse"]
ID_COLUMNS = ["run_id", "round", "variant", "output", "loss", "delta", "learning_rate", "seed"]  # round: of a learning-rate search, else 0
JOURNAL = "journal"
_UMASK = os.umask(0)
os.umask(_UMASK)


class ResultsError(ValueError):
    """A results directory that cannot be read or written as asked."""


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``; fsync and rename over it on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_open(path, "w") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)


class NpzStream:
    """Writes a .npz member by member, each array's rows appended in pieces (bounded memory)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, shape: tuple[int, ...], dtype: np.dtype, pieces) -> None:
        with self.zip.open(name + ".npy", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
            member.write(header.getvalue())
            for piece in pieces:
                member.write(np.ascontiguousarray(piece, dtype=dtype).tobytes())

    def close(self) -> None:
        self.zip.close()


# ----------------------------------------------------------------------------- manifest


def environment() -> dict:
    """Versions that make a result reproducible: nnrun, Python, NumPy, BLAS, platform."""
    import nnrun

    blas = "unknown"
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info() if i.get("user_api") == "blas"]
        blas = "; ".join(libs) or blas
    return {
        "nnrun": nnrun.__version__,
        "arithmetic": nnrun.ARITHMETIC,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas,
        "platform": platform.platform(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(directory: Path) -> dict:
    """manifest.json of a results directory; a ResultsError says why it is not one."""
    path = Path(directory) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; {directory} is not an nnrun results directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read as JSON ({exc}); the directory is damaged") from None
    if not isinstance(data, dict) or "status" not in data:
        raise ResultsError(f"{path}: not an nnrun manifest (expected a JSON object with a 'status' key)")
    if data["status"] not in ("complete", "partial"):
        raise ResultsError(f"{path}: status must be complete or partial, got {data['status']!r}")
    return data


# ----------------------------------------------------------------------------- journal


def journal_write(directory: Path, chunk_id: int, arrays: dict[str, np.ndarray]) -> None:
    write_npz(Path(directory) / JOURNAL / f"chunk-{chunk_id:06d}.npz", arrays)


def remove_temporaries(directory: Path) -> None:
    """Delete the hidden temporary files of writes that a kill cut off."""
    for path in list(Path(directory).glob(".*.tmp")) + list((Path(directory) / JOURNAL).glob(".*.tmp")):
        path.unlink(missing_ok=True)


def journal_done(directory: Path) -> set[int]:
    """Ids of the chunks whose journal file is complete (a damaged one is redone)."""
    done = set()
    for path in sorted((Path(directory) / JOURNAL).glob("chunk-*.npz")):
        try:
            with np.load(path) as npz:
                npz["run_id"]
            done.add(int(path.stem.split("-")[1]))
        except Exception:  # noqa: BLE001 - unreadable journal entries are simply rerun
            path.unlink(missing_ok=True)
    return done


def journal_clear(directory: Path) -> None:
    import shutil

    shutil.rmtree(Path(directory) / JOURNAL, ignore_errors=True)


def journal_read(directory: Path, chunk_id: int, keys: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """A finished chunk's arrays; with ``keys``, only the names it accepts are read."""
    with np.load(Path(directory) / JOURNAL / f"chunk-{chunk_id:06d}.npz") as npz:
        return {k: npz[k] for k in npz.files if keys is None or keys(k)}


def per_run_scalars(name: str) -> bool:
    """The journal's one-value-per-run arrays (everything but curves and weights)."""
    return not name.startswith(("curve_", "weights_", "log_epochs"))


# ----------------------------------------------------------------------------- reading


def read_runs(directory: Path) -> pd.DataFrame:
    """runs.csv with its columns checked; a ResultsError names the line, column and value.

    Rows are checked as written by nnrun: every row has as many fields as the header (a
    truncated or hand-edited file does not), ids and counts are whole numbers ≥ 0, learning
    rates are finite and > 0, flags are True/False, and run ids are unique. Final metrics may
    be empty (a diverged run has none).
    """
    import pandas as pd

    path = Path(directory) / "runs.csv"
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
    return frame


def _plain_number(value):
    return int(value) if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()) else value


def _check_fields(path: Path, text: str) -> None:
    """Every row has the header's number of fields: a cut or hand-edited row is named, not padded."""
    import csv

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


def find_results(paths: list[Path]) -> list[Path]:
    """Every results directory (one holding manifest.json) at or below each path, each once."""
    if not paths:
        raise ResultsError("no results directories given; name one or more, e.g. results/")
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ResultsError(f"{p}: no such file or directory")
        if p.is_file():
            p = p.parent
        if (p / "manifest.json").is_file():
            hits = [p]
        else:
            hits = sorted(m.parent for m in p.rglob("manifest.json") if m.is_file() and JOURNAL not in m.relative_to(p).parts)
        if not hits:
            raise ResultsError(f"{p}: no nnrun results directory (one with a manifest.json) at or below it; run `nnrun train CONFIG` first")
        found.extend(h for h in hits if h not in found)
    return found
