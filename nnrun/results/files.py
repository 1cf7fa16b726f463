"""Crash-safe writes: every file goes to a temporary name beside its target, is flushed to
disk and renamed over it, so a kill at any moment leaves each file complete or absent.

Knows no result file by name (``nnrun.results`` does); ``nnrun plot`` and ``nnrun report``
write their own files through it too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator

import numpy as np

from nnrun.errors import NnrunError

if TYPE_CHECKING:  # pandas is imported where it is used: the workers start before it loads
    import pandas as pd

UMASK = os.umask(0)  # files and folders get the user's usual permissions
os.umask(UMASK)


class ResultsError(NnrunError):
    """A results directory that cannot be read or written as asked."""


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


def temporary_dir(beside: Path) -> Path:
    """A new hidden folder beside ``beside``, to be renamed onto it once filled."""
    tmp = Path(tempfile.mkdtemp(dir=beside.parent, prefix=f".{beside.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; results are ordinary folders
    return tmp


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


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_temporaries(*folders: Path) -> None:
    """Delete the hidden temporary files of writes that a kill cut off."""
    for folder in folders:
        for path in Path(folder).glob(".*.tmp"):
            path.unlink(missing_ok=True)


def is_empty_dir(directory: Path) -> bool:
    """Missing, or holding nothing but the temporary files of writes a kill cut off."""
    directory = Path(directory)
    return not directory.exists() or (directory.is_dir() and all(_is_temporary(p) for p in directory.iterdir()))


def require_new_dir(directory: Path, hint: str = "") -> None:
    """--out must name a new or empty directory: nnrun never overwrites what is there."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ResultsError(f"{directory}: exists and is not a directory; --out must name a new or empty directory")
    if not is_empty_dir(directory):
        raise ResultsError(f"{directory}: already exists and is not empty; nnrun never overwrites results{hint}. Choose another --out")
