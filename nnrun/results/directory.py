"""Results directories as wholes: where a new one goes, how it appears, the tables it holds,
and finding and listing those at or below a path (``nnrun ls``, compare, plot, report)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from nnrun import locks
from nnrun.results.files import ResultsError, require_new_dir, temporary_dir, write_csv
from nnrun.results.journal import JOURNAL, remove_cut_writes
from nnrun.results.manifest import has_manifest, is_study, read_manifest, write_config, write_manifest

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config import Config

TABLES = ("summary", "comparison", "tuned", "tuning_budget")  # <name>.csv, written when a run completes
STUDY_TABLE = "study.csv"
PLOTS = "plots"  # `nnrun plot` writes here unless --out says otherwise
REPORT_HTML, REPORT_MD = "report.html", "report.md"  # `nnrun report`'s page, likewise


def new_dir(root: Path, name: str, digest: str) -> Path:
    """root/<name>/<UTC timestamp>-<digest's first 8>, numbered when that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = root / name / f"{stamp}-{digest[:8]}"
    n = 1
    while path.exists():
        n += 1
        path = root / name / f"{stamp}-{digest[:8]}-{n}"
    return path


def create(out: Path, config: Config, manifest: dict) -> None:
    """The results directory appears whole (config, manifest, lock) or not at all: it is built
    under a hidden name beside ``out`` and renamed, so a kill at any moment strands nothing."""
    if out.exists():  # an empty directory the user made: fill it in place, manifest first
        try:
            locks.acquire(out)
        except locks.Locked as exc:
            raise ResultsError(f"{out}: another nnrun (PID {exc.pid}) is starting a run there; choose another --out") from None
        if has_manifest(out):  # it won the race before we took the lock
            locks.release(out)
            require_new_dir(out)
        remove_cut_writes(out)
        write_manifest(out, manifest)
        write_config(out, config)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_dir(out)
    try:
        locks.acquire(tmp)
        write_manifest(tmp, manifest)
        write_config(tmp, config)
        os.rename(tmp, out)
        locks.moved(tmp, out)
    except BaseException:
        locks.release(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def lock_for_resume(out: Path) -> None:
    """Take ``out``'s lock before resuming it; another live nnrun there is an error."""
    if not has_manifest(out):  # nothing to lock: the resume check says why
        return
    try:
        locks.acquire(out)
    except locks.Locked as exc:
        raise ResultsError(
            f"{out}: another nnrun (PID {exc.pid}) is running this experiment now; wait for it to finish (see `nnrun ls`) or stop it before resuming"
        ) from None


@contextlib.contextmanager
def holding(out: Path, resume: bool) -> Iterator[None]:
    """While a run works on ``out``: a resume takes the lock first (a new run's directory is
    created with it, by ``create``); released however the run ends."""
    if resume:
        lock_for_resume(out)
    try:
        yield
    finally:
        locks.release(out)


def require_new_run_dir(out: Path) -> None:
    """``require_new_dir``, saying how to finish a run that is there."""
    require_new_dir(out, " (add --resume to finish it)" if has_manifest(out) else "")


# ----------------------------------------------------------------------------- tables


def table_file(name: str) -> str:
    """The file a table is stored in: summary -> summary.csv."""
    return f"{name}.csv"


def write_tables(directory: Path, tables: dict[str, pd.DataFrame]) -> None:
    """``tables`` by name (summary, comparison, tuned, tuning_budget) as <name>.csv."""
    for name, frame in tables.items():
        write_csv(Path(directory) / table_file(name), frame)


def read_table(directory: Path, name: str) -> pd.DataFrame:
    """summary.csv, comparison.csv, tuned.csv or tuning_budget.csv as written; empty if not written (yet)."""
    import pandas as pd

    path = Path(directory) / table_file(name)
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ResultsError(f"{path}: cannot be read as CSV ({exc}); the directory is damaged") from None


def write_study_table(directory: Path, table: pd.DataFrame) -> None:
    write_csv(Path(directory) / STUDY_TABLE, table)


# ----------------------------------------------------------------------------- finding


def _hidden_or_journal(parts: tuple[str, ...]) -> bool:
    """A journal, or a results directory still being built under a hidden name."""
    return JOURNAL in parts or any(part.startswith(".") for part in parts)


def results_below(path: Path) -> list[Path]:
    """The results directories (those holding manifest.json) at or below ``path``; a study's
    own directory is not one, the problems' directories in it are."""
    from nnrun.results.manifest import MANIFEST

    path = Path(path)
    if path.is_file():
        path = path.parent
    if has_manifest(path) and not is_study(path):
        return [path]
    return sorted(m.parent for m in path.rglob(MANIFEST) if m.is_file() and not _hidden_or_journal(m.relative_to(path).parts[:-1]) and not is_study(m.parent))


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


def listing(path: Path) -> list[dict]:
    """``nnrun ls``: one entry per experiment at or below ``path``, newest first, read only.

    ``status`` is the manifest's, except that a ``running`` one whose lock no live process
    holds is ``interrupted`` (killed, or its machine went down); ``--resume`` finishes it.
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    entries = []
    for directory in results_below(path):
        try:
            entries.append(_entry(directory, read_manifest(directory)))
        except ResultsError as exc:
            entries.append({"path": directory, "status": "damaged", "problem": str(exc), "started": ""})
    return sorted(entries, key=lambda e: e["started"], reverse=True)


def _entry(directory: Path, m: dict) -> dict:
    status = m["status"]
    wall = m.get("wall_seconds")
    if status == "running":
        if locks.is_held(directory):
            since = (m.get("resumed") or [m.get("started")])[-1]
            with contextlib.suppress(TypeError, ValueError):
                wall = (datetime.now(timezone.utc) - datetime.fromisoformat(since)).total_seconds()
        else:
            status = "interrupted"
    return {
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
