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
from typing import IO, Iterator

import numpy as np
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
ID_COLUMNS = ["run_id", "variant", "output", "loss", "delta", "learning_rate", "seed"]
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
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas,
        "platform": platform.platform(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; {directory} is not an nnrun results directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read as JSON ({exc}); the directory is damaged") from None
    if not isinstance(data, dict) or "status" not in data:
        raise ResultsError(f"{path}: not an nnrun manifest (no 'status' key)")
    return data


# ----------------------------------------------------------------------------- journal


def journal_write(directory: Path, chunk_id: int, arrays: dict[str, np.ndarray]) -> None:
    write_npz(Path(directory) / JOURNAL / f"chunk-{chunk_id:06d}.npz", arrays)


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


def journal_read(directory: Path, chunk_id: int) -> dict[str, np.ndarray]:
    with np.load(Path(directory) / JOURNAL / f"chunk-{chunk_id:06d}.npz") as npz:
        return {k: npz[k] for k in npz.files}


# ----------------------------------------------------------------------------- reading


def read_runs(directory: Path) -> pd.DataFrame:
    """runs.csv with its columns checked; a clear ResultsError names what is wrong."""
    path = Path(directory) / "runs.csv"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; the run wrote no rows yet (resume it with --resume --out {directory})") from None
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: empty; expected a header and one row per run") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ResultsError(f"{path}: cannot be parsed as CSV: {str(exc).strip()}") from None
    missing = [c for c in ID_COLUMNS + RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}; was it written by nnrun?")
    numeric = ["run_id", "learning_rate", "seed", "epochs_to_converge", "epochs_run"] + [c for c in frame.columns if c.startswith("final_")]
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ResultsError(f"{path}: line {row + 2}, column {col!r} must be a number, got {frame[col].iloc[row]!r}")
        frame[col] = values
    for col in ("converged", "diverged"):
        values = frame[col].map(lambda v: {True: True, False: False, "True": True, "False": False, "true": True, "false": False}.get(v))
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ResultsError(f"{path}: line {row + 2}, column {col!r} must be True or False, got {frame[col].iloc[row]!r}")
        frame[col] = values.astype(bool)
    if frame["run_id"].isna().any() or frame["run_id"].duplicated().any():
        raise ResultsError(f"{path}: run_id must be present and unique on every row")
    return frame


def find_results(paths: list[Path]) -> list[Path]:
    """Every results directory (one holding manifest.json) at or below each path."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ResultsError(f"{p}: no such file or directory")
        if p.is_file():
            p = p.parent
        hits = [p] if (p / "manifest.json").exists() else sorted(m.parent for m in p.rglob("manifest.json") if JOURNAL not in m.parts)
        if not hits:
            raise ResultsError(f"{p}: no nnrun results directory (one with a manifest.json) at or below it")
        found.extend(h for h in hits if h not in found)
    return found
