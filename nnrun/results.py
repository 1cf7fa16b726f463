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

from nnrun.errors import NnrunError

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
ID_COLUMNS = ["run_id", "round", "variant", "output", "loss", "delta", "learning_rate", "seed"]  # round: of a learning-rate search, else 0
JOURNAL = "journal"
UMASK = os.umask(0)  # files and folders get the user's usual permissions
os.umask(UMASK)
STATUSES = ("running", "complete", "partial")  # running: a live nnrun holds nnrun.lock, or it was killed


class ResultsError(NnrunError):
    """A results directory that cannot be read or written as asked."""


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``; fsync and rename over it on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; results are ordinary files
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
        "machine": machine(),
    }


def machine() -> dict:
    """The CPU model, its logical cores, and the memory in GiB (None where unknown)."""
    cpu = platform.processor() or platform.machine() or None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory}


def provenance(command: list[str], config_path: Path | None) -> dict:
    """The command line as typed, where it ran, and the git state of the code it ran on.

    Git is asked about the repository holding the config file (the experiment's own
    definition), or the working directory when there is no file (the built-in sweep, a
    dict from Python); both are null outside a repository or without git.
    """
    import shlex
    import subprocess

    where = Path(config_path).resolve().parent if config_path is not None else Path.cwd()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {
        "command": shlex.join(command),
        "cwd": str(Path.cwd()),
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(status.strip()) if status is not None else None,
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
    if data["status"] not in STATUSES:
        raise ResultsError(f"{path}: status must be running, complete or partial, got {data['status']!r}")
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


def read_table(path: Path) -> pd.DataFrame:
    """summary.csv, comparison.csv or tuned.csv as written; empty if not written (yet)."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ResultsError(f"{path}: cannot be read as CSV ({exc}); the directory is damaged") from None


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


def _is_study(directory: Path) -> bool:
    """A study directory's manifest describes the study; its problems' results lie below it."""
    try:
        return json.loads((directory / "manifest.json").read_text(encoding="utf-8")).get("kind") == "study"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def _hidden_or_journal(parts: tuple[str, ...]) -> bool:
    """A journal, or a results directory still being built under a hidden name."""
    return JOURNAL in parts or any(part.startswith(".") for part in parts)


def is_empty_dir(directory: Path) -> bool:
    """Missing, or holding nothing but the temporary files of writes a kill cut off."""
    directory = Path(directory)
    return not directory.exists() or (directory.is_dir() and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in directory.iterdir()))


def require_new_dir(directory: Path, hint: str = "") -> None:
    """--out must name a new or empty directory: nnrun never overwrites what is there."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ResultsError(f"{directory}: exists and is not a directory; --out must name a new or empty directory")
    if not is_empty_dir(directory):
        raise ResultsError(f"{directory}: already exists and is not empty; nnrun never overwrites results{hint}. Choose another --out")


def results_below(path: Path) -> list[Path]:
    """The results directories (those holding manifest.json) at or below ``path``."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if (path / "manifest.json").is_file() and not _is_study(path):
        return [path]
    return sorted(
        m.parent for m in path.rglob("manifest.json") if m.is_file() and not _hidden_or_journal(m.relative_to(path).parts[:-1]) and not _is_study(m.parent)
    )


def listing(path: Path) -> list[dict]:
    """``nnrun ls``: one entry per experiment at or below ``path``, newest first, read only.

    ``status`` is the manifest's, except that a ``running`` one whose lock no live process
    holds is ``interrupted`` (killed, or its machine went down); ``--resume`` finishes it.
    """
    from nnrun import locks

    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    entries = []
    for directory in results_below(path):
        try:
            m = read_manifest(directory)
        except ResultsError as exc:
            entries.append({"path": directory, "status": "damaged", "problem": str(exc), "started": ""})
            continue
        status = m["status"]
        wall = m.get("wall_seconds")
        if status == "running":
            if locks.is_held(directory):
                since = (m.get("resumed") or [m.get("started")])[-1]
                with contextlib.suppress(TypeError, ValueError):
                    wall = (datetime.now(timezone.utc) - datetime.fromisoformat(since)).total_seconds()
            else:
                status = "interrupted"
        entries.append(
            {
                "path": directory,
                "status": status,
                "runs_done": m.get("runs_done"),
                "runs_total": m.get("runs_total"),
                "rounds": m.get("rounds", 1),  # a learning-rate search's total grows round by round
                "started": str(m.get("started") or ""),
                "wall_seconds": wall,
                "command": m.get("command", ""),
                "pid": locks.holder(directory) if status == "running" else None,
            }
        )
    return sorted(entries, key=lambda e: e["started"], reverse=True)


def find_results(paths: list[Path]) -> list[Path]:
    """Every results directory (one holding manifest.json) at or below each path, each once."""
    if not paths:
        raise ResultsError("no results directories given; name one or more, e.g. results/")
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ResultsError(f"{p}: no such file or directory")
        hits = results_below(p)
        if not hits:
            raise ResultsError(f"{p}: no nnrun results directory (one with a manifest.json) at or below it; run `nnrun train CONFIG` first")
        found.extend(h for h in hits if h not in found)
    return found
