"""Built-in data sets, the CSV loader and the scikit-learn loaders; the DATASETS registry.

Each entry of ``DATASETS`` carries its parameters, their defaults and a description; the
config schema and ``nnrun datasets`` are derived from it, so a new data set is one entry.
Every generator is deterministic given its parameters: randomness comes only from
``np.random.default_rng(shuffle_seed)``. A data set is returned as class labels (or
regression targets); how they are encoded depends on the variant's output and lives in
``Data.targets``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nnrun.errors import NnrunError, hint
from nnrun.registry import REQUIRED, Param, resolve


class DataError(NnrunError):
    """Bad input data: the message names the file or parameter and what was expected."""


@dataclass(frozen=True)
class Data:
    """Features ``X`` (samples, features) and targets; ``classes`` is None for regression.

    ``labels`` holds class numbers 0..C−1 (classification) or the float targets
    (regression, shape (samples, outputs)).
    """

    X: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] | None
    X_test: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    feature_names: tuple[str, ...] = field(default=())

    @property
    def task(self) -> str:
        if self.classes is None:
            return "regression"
        return "binary" if len(self.classes) <= 2 else "multiclass"

    def n_outputs(self, output: str) -> int:
        """Units in the output layer: one for a binary target unless the output is softmax."""
        if self.classes is None:
            return self.labels.shape[1]
        if self.task == "binary" and output != "softmax":
            return 1
        return max(len(self.classes), 2)

    def targets(self, output: str, test: bool = False) -> np.ndarray:
        """Targets as (samples, units): one 0/1 column for binary sigmoid/linear, else one-hot."""
        labels = self.labels_test if test else self.labels
        if self.classes is None:
            return labels.astype(float)
        k = self.n_outputs(output)
        if k == 1:
            return labels.astype(float)[:, None]
        return np.eye(k)[labels]


# ----------------------------------------------------------------------------- generators


def xor(**_: object) -> tuple[np.ndarray, np.ndarray]:
    """The seed's data, rows (0,0), (0,1), (1,0), (1,1) with targets 0, 1, 1, 0."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    return X, np.array([0, 1, 1, 0])


def _truth_table(fn: Callable[[np.ndarray], np.ndarray], n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.array(list(itertools.product([0, 1], repeat=n_bits)), dtype=float)
    return X, fn(X).astype(int)


def parity(n_bits: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n_bits bit strings in counting order; target 1 when the number of ones is odd."""
    return _truth_table(lambda X: X.sum(axis=1) % 2, n_bits)


def and_(n_bits: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    return _truth_table(lambda X: X.min(axis=1), n_bits)


def or_(n_bits: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    return _truth_table(lambda X: X.max(axis=1), n_bits)


def moons(n_samples: int, noise: float, shuffle_seed: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise added."""
    rng = np.random.default_rng(shuffle_seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack(
        [
            np.column_stack([np.cos(t_out), np.sin(t_out)]),
            np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]),
        ]
    )
    y = np.r_[np.zeros(n_out, int), np.ones(n_in, int)]
    return X + rng.normal(scale=noise, size=X.shape), y


def circles(n_samples: int, noise: float, factor: float, shuffle_seed: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """A small circle (class 1) inside a large one (class 0)."""
    rng = np.random.default_rng(shuffle_seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]), factor * np.column_stack([np.cos(t_in), np.sin(t_in)])])
    y = np.r_[np.zeros(n_out, int), np.ones(n_in, int)]
    return X + rng.normal(scale=noise, size=X.shape), y


def spirals(n_samples: int, noise: float, classes: int, shuffle_seed: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms, each one and a half turns."""
    rng = np.random.default_rng(shuffle_seed)
    y = np.arange(n_samples) % classes
    t = np.linspace(0.1, 1.0, n_samples)
    angle = 3 * np.pi * t + 2 * np.pi * y / classes
    X = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    return X + rng.normal(scale=noise * 0.1, size=X.shape), y


def blobs(n_samples: int, noise: float, classes: int, n_features: int, shuffle_seed: int, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs (std `noise`) around centres drawn in [−5, 5]^n_features."""
    rng = np.random.default_rng(shuffle_seed)
    centres = rng.uniform(-5, 5, size=(classes, n_features))
    y = np.arange(n_samples) % classes
    return centres[y] + rng.normal(scale=noise, size=(n_samples, n_features)), y


def _sklearn(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def load(**_: object) -> tuple[np.ndarray, np.ndarray]:
        try:
            import sklearn.datasets as skd
        except ImportError:
            raise DataError(
                f"dataset {name!r} needs scikit-learn, which comes with the 'datasets' extra: pip install 'nnrun[datasets]'"
            ) from None
        bunch = getattr(skd, f"load_{name}")()
        X = bunch.data.astype(float)
        if name == "digits":
            X = X / 16.0  # pixels are 0..16; scale to [0, 1]
        return X, bunch.target.astype(int)

    load.__doc__ = f"scikit-learn's bundled {name} data set."
    return load


def cache_dir() -> Path:
    """Where generated data sets are kept: $XDG_CACHE_HOME/nnrun, else ~/.cache/nnrun."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "nnrun"


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D as its package generates it with default arguments: (X, y, X_test, y_test),
    4,000 + 1,000 samples × 40 features, 10 classes, the package's own split.

    Generated by ``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads by
    default), then cached as .npz keyed by the package version and its arguments. The
    package seeds NumPy's and Python's global generators; both are restored afterwards.
    """
    try:
        import mnist1d
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError("dataset 'mnist1d' needs the mnist1d package, which comes with the 'datasets' extra: pip install 'nnrun[datasets]'") from None
    args = get_dataset_args(as_dict=True)
    version = getattr(mnist1d, "__version__", None) or _dist_version("mnist1d")
    key = hashlib.sha256(json.dumps([version, args], sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    try:
        with np.load(path) as f:
            return f["x"], f["y"], f["x_test"], f["y_test"]
    except (OSError, KeyError, ValueError):  # absent, unreadable or damaged: generate afresh
        pass
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = {"x": d["x"].astype(float), "y": d["y"].astype(int), "x_test": d["x_test"].astype(float), "y_test": d["y_test"].astype(int)}
    try:
        from nnrun.results.files import atomic_open

        with atomic_open(path) as fh:
            np.savez(fh, **arrays)
    except OSError:  # a read-only or full cache only costs the next run a few seconds
        pass
    return arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- csv


def read_csv(path: Path | str, target: str, task: str = "auto") -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None, tuple[str, ...]]:
    """Features (other columns, file order), labels and class names from a CSV file."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (dataset.path)") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as CSV: {str(exc).strip()}") from None
    if target not in frame.columns:
        raise DataError(f"{path}: no column {target!r} (dataset.target); the columns are {', '.join(map(str, frame.columns))}")
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{path}: has no feature columns besides the target {target!r}")
    for col in features.columns:
        values = pd.to_numeric(features[col], errors="coerce")
        bad = values.isna() & features[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = features[col].iloc[row]
            what = "must hold finite numbers" if _overflows(value) else "must be numeric"  # pandas ≥ 2.3 coerces 1e400 to NaN
            raise DataError(f"{path}: column {col!r} {what}, but line {row + 2} holds {value!r}")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{path}: column {col!r} has a missing value on line {row + 2}; fill or drop it")
        infinite = ~np.isfinite(values.to_numpy(dtype=float))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise DataError(f"{path}: column {col!r} must hold finite numbers, but line {row + 2} holds {features[col].iloc[row]!r}")
        features[col] = values
    y = frame[target]
    if y.isna().any():
        row = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(f"{path}: the target {target!r} is missing on line {row + 2}")
    X = features.to_numpy(dtype=float)
    names = tuple(map(str, features.columns))
    if task == "regression" or (task == "auto" and pd.api.types.is_float_dtype(y) and not set(y.unique()) <= {0.0, 1.0}):
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            raise DataError(f"{path}: a regression target {target!r} must be numeric")
        infinite = ~np.isfinite(values.to_numpy(dtype=float))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise DataError(f"{path}: the regression target {target!r} must hold finite numbers, but line {row + 2} holds {y.iloc[row]!r}")
        return X, values.to_numpy(dtype=float)[:, None], None, names
    classes = sorted(y.unique(), key=lambda v: (str(type(v)), v))
    if task == "auto" and len(classes) < 2:
        raise DataError(
            f"{path}: the target {target!r} holds a single class ({classes[0]!r}); "
            "nothing to learn. Set dataset.task: binary to train on it anyway"
        )
    if task == "binary":
        if len(classes) > 2:
            raise DataError(f"{path}: task binary needs at most two classes in {target!r}, found {len(classes)}")
        if len(classes) == 1 and classes[0] in (0, 1):
            classes = [0, 1]
    index = {c: i for i, c in enumerate(classes)}
    return X, y.map(index).to_numpy(dtype=int), tuple(map(str, classes)), names


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Dataset:
    """A data set nnrun knows by name: how to make it, what it is, the parameters it takes.

    ``make(shuffle_seed=…, **params)`` returns (X, labels); with ``own_split`` it takes no
    arguments and returns (X, labels, X_test, labels_test), the data set's own split.
    With ``from_file``, ``make(task=…, **params)`` reads the user's file and returns (X,
    labels, class names, feature names). ``standardised``: its features are standardised
    unless the config says otherwise.
    """

    name: str
    description: str
    make: Callable[..., tuple]
    params: tuple[Param, ...] = ()
    own_split: bool = False
    from_file: bool = False
    standardised: bool = False


def _n_bits(default: int) -> Param:
    return Param("n_bits", int, default, "input bits", ge=1, le=16)


def _noise(default: float) -> Param:
    return Param("noise", float, default, "standard deviation of the Gaussian noise", ge=0)


N_SAMPLES = Param("n_samples", int, 200, "samples generated", ge=2, le=1_000_000)
CLASSES = Param("classes", int, 2, "classes", ge=2, le=100)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("xor", "the seed's XOR: 4 × 2, binary", xor),
        Dataset("parity", "n_bits-bit parity: 2^n_bits × n_bits, binary", parity, (_n_bits(3),)),
        Dataset("and", "n_bits-input AND: 2^n_bits × n_bits, binary", and_, (_n_bits(2),)),
        Dataset("or", "n_bits-input OR: 2^n_bits × n_bits, binary", or_, (_n_bits(2),)),
        Dataset("moons", "two half moons: n_samples × 2, binary", moons, (N_SAMPLES, _noise(0.1))),
        Dataset(
            "circles", "two concentric circles: n_samples × 2, binary", circles,
            (N_SAMPLES, _noise(0.1), Param("factor", float, 0.5, "the inner circle's radius (the outer's is 1)", gt=0, lt=1)),
        ),
        Dataset("spirals", "interleaved spirals: n_samples × 2, `classes` classes", spirals, (N_SAMPLES, _noise(0.1), CLASSES)),
        Dataset(
            "blobs", "Gaussian blobs: n_samples × n_features, `classes` classes", blobs,
            (N_SAMPLES, _noise(1.0), CLASSES, Param("n_features", int, 2, "features (dimensions)", ge=1, le=1000)),
        ),
        Dataset("digits", "8×8 digits (scikit-learn): 1797 × 64, 10 classes, pixels in [0, 1]", _sklearn("digits")),
        Dataset("iris", "iris (scikit-learn): 150 × 4, 3 classes, standardised", _sklearn("iris"), standardised=True),
        Dataset("breast_cancer", "breast cancer (scikit-learn): 569 × 30, binary, standardised", _sklearn("breast_cancer"), standardised=True),
        Dataset("wine", "wine (scikit-learn): 178 × 13, 3 classes, standardised", _sklearn("wine"), standardised=True),
        Dataset(
            "mnist1d", "MNIST-1D (mnist1d package, generated offline): 4000 train + 1000 test × 40, 10 classes, its own split",
            mnist1d_arrays, own_split=True,
        ),
        Dataset(
            "csv", "your CSV file: features = all columns but `target`; dataset.task says how to read the target", read_csv,
            (Param("path", str, REQUIRED, "the CSV file"), Param("target", str, REQUIRED, "the label column")), from_file=True, standardised=True,
        ),
    )
}  # fmt: skip


# ----------------------------------------------------------------------------- assembly


def stratified_split(labels: np.ndarray, fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: `fraction` of each class (rounded) held out, drawn with `seed`.

    Classes are visited in sorted order with one generator, so the split depends on the
    labels, `fraction` and `seed` only. A class keeps at least one training sample.
    """
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(len(labels))]
    test = []
    for idx in groups:
        k = min(int(round(fraction * len(idx))), len(idx) - 1)
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test)).astype(int)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def load(
    name: str,
    *,
    bias_column: bool = True,
    test_fraction: float = 0.0,
    shuffle_seed: int = 0,
    standardize: bool | None = None,
    task: str = "auto",
    **params: object,
) -> Data:
    """Build the data set ``DATASETS[name]`` with ``params`` over its defaults (None: not
    given); the test split, standardisation and bias column are applied here."""
    if name not in DATASETS:
        raise DataError(f"no dataset {name!r}{hint(name, DATASETS)}; `nnrun datasets` lists them")
    entry = DATASETS[name]
    values = resolve(entry.params, params, f"dataset {name!r}", DataError)
    if entry.from_file:
        X, labels, classes, names = entry.make(task=task, **values)
        X_test = labels_test = None
    else:
        if entry.own_split:
            if test_fraction > 0:
                raise DataError(f"dataset.test_fraction: {name!r} comes with its own train/test split; remove test_fraction (got {test_fraction})")
            X, labels, X_test, labels_test = entry.make()
        else:
            X, labels = entry.make(shuffle_seed=shuffle_seed, **values)
            X_test = labels_test = None
        classes = tuple(str(c) for c in range(int(labels.max()) + 1))
        if len(classes) == 1:
            classes = ("0", "1")
        names = tuple(f"x{i}" for i in range(X.shape[1]))
    if test_fraction > 0:
        train_idx, test_idx = stratified_split(labels if classes is not None else np.zeros(len(X)), test_fraction, shuffle_seed, classes is not None)
        if len(train_idx) == 0 or len(test_idx) == 0:
            raise DataError(
                f"dataset.test_fraction: {test_fraction} of {name!r}'s {len(X)} samples leaves an empty train or test set; "
                "use a larger fraction or more samples, or 0 for no test split"
            )
        X, X_test, labels, labels_test = X[train_idx], X[test_idx], labels[train_idx], labels[test_idx]
    if entry.standardised if standardize is None else standardize:
        mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1.0
        X = (X - mean) / std
        if X_test is not None:
            X_test = (X_test - mean) / std
    if bias_column:
        X = np.column_stack([X, np.ones(len(X))])
        if X_test is not None:
            X_test = np.column_stack([X_test, np.ones(len(X_test))])
        names = names + ("bias",)
    return Data(X=X, labels=labels, classes=classes, X_test=X_test, labels_test=labels_test, feature_names=names)


def id_ranges(ids: list[int]) -> str:
    """Sorted ids as ranges: [0, 1, 2, 5] -> '0–2, 5'."""
    runs: list[list[int]] = []
    for v in ids:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(lo) if lo == hi else f"{lo}–{hi}" for lo, hi in runs)


def _overflows(value) -> bool:
    """A number too large for a float ('1e400'), as opposed to text that is no number."""
    try:
        return not np.isfinite(float(value))
    except (TypeError, ValueError):
        return False
