"""``njit`` for the compiled backend, caching machine code where the user's cache is writable.

Compiling the kernel takes seconds; cached, loading it takes milliseconds. The cache goes to
``NUMBA_CACHE_DIR`` when the user set it, else ``$XDG_CACHE_HOME/nnrun/numba`` (default
``~/.cache/nnrun/numba``). Where that directory cannot be created or written, functions are
compiled in every process instead (slower to start, the same numbers).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def cache_dir() -> Path:
    """Where compiled kernels are cached (set before numba is imported, which reads it once)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nnrun" / "numba"


CACHE_DIR = cache_dir()
CACHING = _writable(CACHE_DIR)
if CACHING:
    os.environ["NUMBA_CACHE_DIR"] = str(CACHE_DIR)

# GNU OpenMP aborts a process that forks after using it, and nnrun's workers are forked. Set
# in the environment too: when the environment has changed since numba read it (numba was
# imported first, say), numba re-reads it before compiling, putting its default back.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import numba  # noqa: E402  (after NUMBA_CACHE_DIR and NUMBA_THREADING_LAYER are set)

numba.config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]  # where numba was imported before us

# error_model "numpy": x / 0 is inf or NaN as in NumPy, not a ZeroDivisionError, whose check
# on every division would keep the sigmoid's loops from vectorising (×15 slower).
njit = functools.partial(numba.njit, cache=CACHING, error_model="numpy")
prange = numba.prange
