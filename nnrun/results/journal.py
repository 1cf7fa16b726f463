"""The journal: each finished chunk's arrays in ``journal/chunk-NNNNNN.npz``, written as the
chunk arrives so that ``--resume`` can skip it; deleted once the results files hold it all.

Keys: ``run_id``, the per-run outcomes (``converged``, ``epochs_to_converge``,
``epochs_run``, ``diverged``, ``final_<metric>``), ``log_epochs`` (the chunk's logged
epochs), ``curve_<metric>`` (runs, logged) and ``weights_<name>`` (runs, …).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from nnrun.results.files import remove_temporaries, write_npz

if TYPE_CHECKING:
    from nnrun.engine import TrainResult

JOURNAL = "journal"
SCALARS = ("converged", "epochs_to_converge", "epochs_run", "diverged")  # then final_*: one value per run


def journal_entry(run_ids: np.ndarray, res: TrainResult) -> dict[str, np.ndarray]:
    """A trained chunk's arrays under their journal keys."""
    out = {"run_id": run_ids, **{k: getattr(res, k) for k in SCALARS}, "log_epochs": res.log_epochs}
    out.update({f"final_{k}": v for k, v in res.final.items()})
    with np.errstate(over="ignore"):  # a blown-up loss is stored as inf, silently
        out.update({f"curve_{k}": v.astype(np.float32) for k, v in res.curves.items()})
    out.update({f"weights_{k}": v for k, v in res.weights.items()})
    return out


def _path(directory: Path, chunk_id: int) -> Path:
    return Path(directory) / JOURNAL / f"chunk-{chunk_id:06d}.npz"


def journal_write(directory: Path, chunk_id: int, arrays: dict[str, np.ndarray]) -> None:
    write_npz(_path(directory, chunk_id), arrays)


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
    shutil.rmtree(Path(directory) / JOURNAL, ignore_errors=True)


def remove_cut_writes(directory: Path) -> None:
    """Delete the temporary files of writes that a kill cut off, in the directory and its journal."""
    remove_temporaries(Path(directory), Path(directory) / JOURNAL)


def _read(directory: Path, chunk_id: int, keys: Callable[[str], bool]) -> dict[str, np.ndarray]:
    with np.load(_path(directory, chunk_id)) as npz:
        return {k: npz[k] for k in npz.files if keys(k)}


def journal_scalars(directory: Path, chunk_id: int) -> dict[str, np.ndarray]:
    """A finished chunk's one-value-per-run arrays: ``run_id``, the outcomes, ``final_*``."""
    return _read(directory, chunk_id, lambda k: not k.startswith(("curve_", "weights_", "log_epochs")))


def journal_log_epochs(directory: Path, chunk_id: int) -> np.ndarray:
    return _read(directory, chunk_id, lambda k: k == "log_epochs")["log_epochs"]


def journal_curve(directory: Path, chunk_id: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(logged epochs, ``metric`` per run and logged epoch) of a finished chunk."""
    j = _read(directory, chunk_id, lambda k: k in ("log_epochs", f"curve_{metric}"))
    return j["log_epochs"], j[f"curve_{metric}"]


def journal_weights(directory: Path, chunk_id: int) -> dict[str, np.ndarray]:
    """A finished chunk's weights by the engine's names ("W1", "b1", "W1.init", …), sorted."""
    j = _read(directory, chunk_id, lambda k: k.startswith("weights_"))
    return {key.removeprefix("weights_"): j[key] for key in sorted(j)}
