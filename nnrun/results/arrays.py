"""curves.npz and weights.npz: per-run arrays, written from the journal when a run completes.

curves.npz: ``epoch`` (logged,), ``run_id`` (runs,) and ``ce``, ``mse``, ``accuracy``
(runs, logged) as float32, NaN where a run had stopped. weights.npz (``logging.save_weights``):
``r{run_id}.W{l}``, ``r{run_id}.b{l}`` and the initial ``….init`` of every run, the engine's
names under the run's id. ``read_init_weights`` reads them back for ``model.init: file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnrun.results.files import NpzStream, ResultsError, atomic_open
from nnrun.results.journal import journal_curve, journal_log_epochs, journal_weights

if TYPE_CHECKING:
    from nnrun.executor import Plan

CURVES = "curves.npz"
WEIGHTS = "weights.npz"
CURVE_METRICS = ("ce", "mse", "accuracy")


def has_curves(directory: Path) -> bool:
    return (Path(directory) / CURVES).exists()


def write_curves(directory: Path, p: Plan, done: set[int]) -> None:
    """Every finished run's curves on the union of the chunks' logged epochs."""
    chunks = [c for c in p.chunks if c.id in done]
    grid = np.unique(np.concatenate([journal_log_epochs(directory, c.id) for c in chunks]))
    n = sum(c.size for c in chunks)

    def rows(metric: str):
        for c in chunks:
            epochs, values = journal_curve(directory, c.id, metric)
            block = np.full((c.size, len(grid)), np.nan, dtype=np.float32)
            block[:, np.searchsorted(grid, epochs)] = values
            yield block

    with atomic_open(Path(directory) / CURVES) as fh:
        out = NpzStream(fh)
        out.add("epoch", grid.shape, np.int64, [grid])
        out.add("run_id", (n,), np.int64, [c.run_ids for c in chunks])
        for metric in CURVE_METRICS:
            out.add(metric, (n, len(grid)), np.float32, rows(metric))
        out.close()


def read_curves(directory: Path) -> dict[str, np.ndarray]:
    """curves.npz's arrays by name, their shapes checked; a ResultsError says what is wrong."""
    path = Path(directory) / CURVES
    try:
        with np.load(path) as npz:
            curves = {k: npz[k] for k in ("epoch", "run_id", *CURVE_METRICS)}
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; the loss curves are written with runs.csv (finish the run with --resume)") from None
    except KeyError as exc:
        raise ResultsError(f"{path}: no array {exc}; expected epoch, run_id, {', '.join(CURVE_METRICS)}") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read as .npz ({exc}); the directory is damaged") from None
    shape = (len(curves["run_id"]), len(curves["epoch"]))
    for k in CURVE_METRICS:
        if curves[k].shape != shape:
            raise ResultsError(f"{path}: {k} has shape {curves[k].shape}, expected (runs, logged epochs) = {shape}")
    return curves


# ----------------------------------------------------------------------------- weights


def write_weights(directory: Path, p: Plan, done: set[int]) -> None:
    with atomic_open(Path(directory) / WEIGHTS) as fh:
        out = NpzStream(fh)
        for c in p.chunks:
            if c.id not in done:
                continue
            for name, values in journal_weights(directory, c.id).items():
                for r, run_id in enumerate(c.run_ids):
                    out.add(f"r{run_id}.{name}", values[r].shape, np.float64, [values[r]])
        out.close()


def weights_file(path: Path) -> Path:
    """The .npz that `model.init.path` names: the file, DIR/weights.npz, or the one below DIR.

    DIR may be a results directory or its parent ``results/<name>/`` when that holds exactly
    one run with saved weights.
    """
    from nnrun.datasets import DataError
    from nnrun.results.runs import has_runs

    if not path.is_dir():
        return path
    if (path / WEIGHTS).exists():
        return path / WEIGHTS
    found = sorted(path.glob(f"*/{WEIGHTS}"))
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(p.parent.name for p in found[:5]) + (", …" if len(found) > 5 else "")
        raise DataError(f"{path}: holds several results with weights ({listed}); name one of them in model.init.path")
    hint = "; it was trained without logging.save_weights: true" if has_runs(path) else ""
    raise DataError(f"{path}: no {WEIGHTS} here (model.init.path){hint}")


def trained_dataset(weights: Path) -> dict | None:
    """The ``dataset`` section of the config stored beside a weights.npz (None: not in a
    readable results directory), to check a warm start's data split against."""
    from nnrun.config import ConfigError, read_yaml
    from nnrun.results.manifest import CONFIG

    config = Path(weights).parent / CONFIG
    try:
        return read_yaml(config).get("dataset") if config.is_file() else None
    except ConfigError:
        return None  # not a readable results directory: nothing to compare with


def read_init_weights(path: Path, run_id: int | None, sizes: list[int], bias: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """For `model.init: file`: (W, b or None) per layer of a ``sizes`` network, from a plain
    .npz of W1, b1, … or run ``run_id``'s final ``r{run_id}.W{l}``/``r{run_id}.b{l}`` in a
    weights.npz; a DataError names what is missing, misshapen or not finite."""
    from nnrun.datasets import DataError, id_ranges

    prefix = f"r{run_id}." if run_id is not None else ""
    try:
        with np.load(path) as npz:
            names = set(npz.files)
            keys = [f"{prefix}{p}{l}" for l in range(1, len(sizes)) for p in "Wb"]
            stored = {k: np.asarray(npz[k]) for k in keys if k in names}
    except FileNotFoundError:
        raise DataError(f"{path}: no such weights file (model.init.path)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise DataError(f"{path}: cannot be read as an .npz of weights ({exc}) (model.init.path)") from None
    runs = sorted({int(k[1:].split(".")[0]) for k in names if k.startswith("r") and k[1:].split(".")[0].isdigit()})
    if run_id is None and runs and "W1" not in names:
        raise DataError(f"{path}: holds the weights of {len(runs)} runs (ids {id_ranges(runs)}); choose one with model.init.run_id")
    if run_id is not None and f"{prefix}W1" not in names:
        have = f"it holds runs {id_ranges(runs)}" if runs else "it holds no per-run weights (r<id>.W1, …)"
        raise DataError(f"{path}: no weights for run {run_id} (model.init.run_id); {have}")
    out = [_layer(path, stored, names, prefix, sizes, l, bias) for l in range(1, len(sizes))]
    if f"{prefix}W{len(sizes)}" in names:
        raise DataError(f"{path}: holds more layers than the network's {len(sizes) - 1}; check model.hidden")
    return out


def _layer(path: Path, stored: dict, names: set[str], prefix: str, sizes: list[int], l: int, bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Layer ``l``'s stored (W, b), checked against the network's shapes."""
    from nnrun.datasets import DataError

    i, o = sizes[l - 1], sizes[l]
    key = f"{prefix}W{l}"
    if key not in stored:
        have = ", ".join(sorted(names)[:6]) + (", …" if len(names) > 6 else "")
        raise DataError(f"{path}: no array {key!r} for layer {l} of {len(sizes) - 1} (model.hidden, model.init); it holds {have}")
    W = stored[key]
    if W.shape != (i, o):
        raise DataError(
            f"{path}: {key} has shape {W.shape}, but layer {l} of this network ({' → '.join(map(str, sizes))}) needs ({i}, {o}); "
            "model.hidden, dataset.bias_column and the data's features and classes must match the stored run's"
        )
    b = stored.get(f"{prefix}b{l}")
    if b is not None and b.shape != (o,):
        raise DataError(f"{path}: {prefix}b{l} has shape {b.shape}, but layer {l} needs ({o},)")
    if b is not None and not bias:
        raise DataError(f"{path}: {prefix}b{l} holds bias vectors, which model.bias: false would drop; set model.bias: true")
    if not (np.all(np.isfinite(W)) and (b is None or np.all(np.isfinite(b)))):
        raise DataError(f"{path}: {key} holds NaN or infinite weights (a diverged run?); choose another model.init.run_id")
    return W, b
