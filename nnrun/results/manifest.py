"""manifest.json and config.yaml: what a results directory holds, how it was made, how far it got.

A run's manifest says its status (running, complete, partial), its counts (runs, rounds of a
learning-rate search, chunk size), its wall time and the provenance that makes it
reproducible (versions, machine, command, git state). A study's manifest has ``kind: study``
and counts problems instead. ``--resume`` reads it to refuse what would mix results.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnrun.results.files import ResultsError, write_json, write_text

if TYPE_CHECKING:
    from nnrun.config import Config
    from nnrun.executor import Plan

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
STATUSES = ("running", "complete", "partial")  # running: a live nnrun holds its lock, or it was killed


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


# ----------------------------------------------------------------------------- reading and writing


def has_manifest(directory: Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def read_manifest(directory: Path) -> dict:
    """manifest.json of a results directory; a ResultsError says why it is not one."""
    path = Path(directory) / MANIFEST
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


def is_complete(directory: Path) -> bool:
    """Does ``directory`` hold a manifest that says its run completed?"""
    return has_manifest(directory) and read_manifest(directory)["status"] == "complete"


def is_study(directory: Path) -> bool:
    """A study directory's manifest describes the study; its problems' results lie below it."""
    try:
        return json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8")).get("kind") == "study"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def write_manifest(directory: Path, manifest: dict) -> None:
    write_json(Path(directory) / MANIFEST, manifest)


def read_config(directory: Path) -> Config:
    """The resolved config.yaml of a results directory; a ResultsError says what is wrong."""
    from nnrun.config import ConfigError, read_yaml, validate

    path = Path(directory) / CONFIG
    if not path.exists():
        raise ResultsError(f"{path}: missing; every nnrun results directory holds the config it ran")
    try:
        return validate(read_yaml(path), str(path))
    except ConfigError as exc:
        raise ResultsError(f"{exc} (the results directory is damaged, or was written by another nnrun version)") from None


def write_config(directory: Path, config: Config) -> None:
    write_text(Path(directory) / CONFIG, config.dump_yaml())


def update_manifest(directory: Path, manifest: dict, status: str, wall_seconds: float, **counts) -> None:
    """Record ``status``, the wall time so far and ``counts`` (runs_done, problems_done, …);
    ``finished`` is stamped when the status is complete."""
    manifest.update(status=status, **counts, wall_seconds=wall_seconds, finished=now() if status == "complete" else None)
    write_manifest(directory, manifest)


# ----------------------------------------------------------------------------- a run's manifest


def run_opening(manifest: dict, config: Config, plan: Plan, done: set[int], command: list[str], config_path: Path | None) -> dict:
    """``manifest`` (empty for a new run, the stored one on resume) as the run (re)starts;
    ``wall_seconds`` keeps the time of earlier sessions."""
    manifest.update(
        {
            **environment(),
            **provenance(command, config_path),
            "config_sha256": config.sha256(),
            "started": manifest.get("started", now()),
            "finished": None,
            "status": "running",
            "runs_total": plan.n_runs,  # with a search: the runs of the rounds planned so far
            "rounds": plan.rounds,
            "runs_done": sum(c.size for c in plan.chunks if c.id in done),
            "chunk_runs": plan.chunk_runs,
            "wall_seconds": float(manifest.get("wall_seconds") or 0.0),
        }
    )
    return manifest


def planned(manifest: dict, plan: Plan) -> None:
    """A search planned another round: the totals grow (written with the next save)."""
    manifest.update(runs_total=plan.n_runs, rounds=plan.rounds)


def mark_resumed(directory: Path, manifest: dict, config: Config) -> None:
    manifest.setdefault("resumed", []).append(now())
    write_config(directory, config)
    write_manifest(directory, manifest)


def check_resumable(out: Path, config: Config) -> dict:
    """The stored manifest, if ``out`` may be resumed with ``config``: the same config, and
    (unless complete) the same arithmetic, so old and new rows agree to the last bit."""
    from nnrun import ARITHMETIC, __version__
    from nnrun.config import ConfigError

    manifest = read_manifest(out)
    stored = manifest.get("config_sha256")
    if stored != config.sha256():
        raise ConfigError(
            f"{out}: cannot resume: it holds a run of a different config (sha256 {str(stored)[:12]}… there, "
            f"{config.sha256()[:12]}… now). Resume with the same config and --set options, or choose a new --out"
        )
    arithmetic = manifest.get("arithmetic", 1)  # manifests before the field: revision 1
    if manifest.get("status") != "complete" and arithmetic != ARITHMETIC:
        raise ResultsError(
            f"{out}: cannot resume: it was started by nnrun {manifest.get('nnrun', '?')}, whose results differ from this "
            f"nnrun {__version__}'s in the last bits for some configs (arithmetic revision {arithmetic} there, "
            f"{ARITHMETIC} here), so its rows would not match the new ones. Finish it with nnrun "
            f"{manifest.get('nnrun', 'of that revision')}, or start again with a new --out"
        )
    return manifest


def stored_chunk_runs(out: Path, manifest: dict) -> int:
    """The chunk size a run was planned with: its chunk ids name the journal's files."""
    try:
        return int(manifest["chunk_runs"])
    except (KeyError, TypeError, ValueError):
        raise ResultsError(f"{Path(out) / MANIFEST}: has no valid 'chunk_runs'; cannot tell which runs are done. Start a new --out") from None


# ----------------------------------------------------------------------------- a study's manifest


def study_opening(manifest: dict, command: str, fingerprint: str, problems: list[str], quick: bool) -> dict:
    """``manifest`` (empty, or the stored one on resume) as a study (re)starts."""
    manifest.update(
        {
            **environment(),
            "kind": "study",
            "command": command,
            "fingerprint": fingerprint,
            "problems": problems,
            "quick": quick,
            "started": manifest.get("started", now()),
            "finished": None,
            "status": "running",  # as an experiment's: left so by a kill; --resume finishes it
            "problems_total": len(problems),
            "problems_done": 0,
            "wall_seconds": float(manifest.get("wall_seconds") or 0.0),
        }
    )
    return manifest


def check_study_resumable(out: Path, fingerprint: str) -> dict:
    from nnrun.config import ConfigError

    manifest = read_manifest(out)
    if manifest.get("kind") != "study":
        raise ResultsError(f"{out}: is not a study directory (its manifest.json has no kind: study); resume it with the command that made it")
    if manifest.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{out}: cannot resume: it holds a study of other problems or settings ({', '.join(manifest.get('problems', []))}). "
            "Resume with the same configs, --set and --quick options, or choose a new --out"
        )
    return manifest
