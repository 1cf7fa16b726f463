"""Training backends: the NumPy engine (the reference, always there) and an optional
Numba-compiled kernel (``pip install 'nnrun[numba]'``), chosen by ``training.backend``.

``auto`` means numba where it is installed, else numpy. The kernel covers full-batch and
minibatch SGD for every variant, activation and criterion; a batch it does not cover
(momentum, adam) is trained by the NumPy engine under ``auto`` and refused, before anything
runs, under an explicit ``numba``. Results differ between backends in the last bits (the
compiled ``exp``), so a results directory holds one backend's runs only.
"""

from __future__ import annotations

import importlib.util


class BackendError(ValueError):
    """A backend that cannot train this config here; the message says why and what to do."""


_threads = 1  # threads the compiled kernel may use in this process (the executor sets it)


def set_threads(n: int) -> None:
    """Let the compiled kernel use ``n`` threads in this process (runs are independent
    lanes, so no number depends on it)."""
    global _threads
    _threads = max(1, int(n))


def threads() -> int:
    return _threads


def kernel_loaded() -> bool:
    """Whether this process has loaded the compiled kernel: processes it forks then start
    with numba ready, instead of spending ~0.4 s of CPU each starting it."""
    import sys

    module = sys.modules.get("nnrun.backends.numba_train")
    return module is not None and bool(module.loaded())


def warm(dtype: str) -> None:
    """Load the compiled kernel for ``dtype`` in this process (from numba's cache, or compile
    it), so that worker processes forked later have it."""
    from nnrun import signals

    with signals.deferred():  # an import or a load cut in half leaves a broken module behind
        from nnrun.backends import numba_train

        numba_train.warm(dtype)


def numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def not_covered(optimizer: str) -> str | None:
    """Why the compiled kernel cannot train runs with this optimizer, or None if it can."""
    return None if optimizer == "sgd" else f"training.optimizer {optimizer!r} (the compiled kernel covers sgd)"


def resolve(backend: str, optimizers: list[str]) -> str:
    """The backend a run uses, ``numpy`` or ``numba``, for a config whose cells use these
    optimizers; raises BackendError where an explicit ``numba`` cannot be honoured."""
    if backend == "numpy" or (backend == "auto" and not numba_installed()):
        return "numpy"
    if backend == "numba":
        if not numba_installed():
            raise BackendError("training.backend: numba needs the numba extra: pip install 'nnrun[numba]' (or use backend auto or numpy)")
        reasons = sorted({r for r in map(not_covered, optimizers) if r})
        if reasons:
            raise BackendError(f"training.backend: numba cannot train {', '.join(reasons)}; use backend auto (numpy for those runs) or numpy")
    return "numba"


def train(backend: str, spec, X, Y, Ws, bs, lr, seeds, X_test=None, Y_test=None):
    """``engine.train``'s contract on the chosen backend (``auto`` resolved here)."""
    if resolve(backend, []) == "numba" and not_covered(spec.optimizer) is None:
        from nnrun import signals

        with signals.deferred():  # an import cut in half leaves a broken module behind
            from nnrun.backends import numba_train

        return numba_train.train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test)
    from nnrun.engine import train as numpy_train

    return numpy_train(spec, X, Y, Ws, bs, lr, seeds, X_test, Y_test)
