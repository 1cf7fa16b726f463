"""Ctrl-C and SIGTERM at any moment, and worker processes that never outlive nnrun.

A signal is only *recorded* by default, and acted on where stopping is safe: inside
``interruptible()`` (waiting for workers, training inline), at ``check()``, and when a
command ends. Raising at an arbitrary bytecode would cut an ``import pandas`` in half (a
later import then finds a partially initialised module) or fork a worker that inherits a
handler about to raise. Standard library only: ``install()`` runs before the heavy imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)
_pending: int | None = None
_armed = False
_installed = False


class Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``code`` is the exit status a shell gives it (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def code(self) -> int:
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (a plain KeyboardInterrupt too), 143 for SIGTERM."""
    return exc.code if isinstance(exc, Stop) else 128 + signal.SIGINT


def _handler(signum, frame) -> None:
    global _pending, _armed
    if _pending is None:
        _pending = signum
    if _armed:
        _armed = False  # a second signal during the clean-up is recorded, not raised
        raise Stop(signum)


def install() -> None:
    """Record SIGINT and SIGTERM from now on (main thread only; idempotent)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        signal.signal(signum, _handler)
    _installed = True


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """``install()`` for the duration, restoring the previous handlers (``nnrun.run`` in a
    notebook gets the CLI's safety without keeping nnrun's handlers afterwards)."""
    global _installed, _pending
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    install()
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _installed = False
        _pending = None


def pending() -> int | None:
    """The first signal received and not yet acted on, if any."""
    return _pending


def check() -> None:
    """Raise ``Stop`` if a signal has arrived."""
    if _pending is not None:
        raise Stop(_pending)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """A signal raises ``Stop`` here at once (and one already received raises on entry)."""
    global _armed
    outer = _armed
    check()
    _armed = True
    try:
        yield
    finally:
        _armed = outer


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals are recorded, not raised, inside (starting processes, imports, writes)."""
    global _armed
    outer = _armed
    _armed = False
    try:
        yield
    finally:
        _armed = outer
    if outer:
        check()


# ----------------------------------------------------------------------------- orphans

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a child: be killed when ``parent`` dies, however it dies (SIGKILL included).

    Linux's parent-death signal, then a look at the parent to close the race of a parent
    that died before the signal was armed. Elsewhere a daemon thread watches the parent.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent:
                    os._exit(1)
                return
    threading.Thread(target=_watch_parent, args=(parent,), name="nnrun-parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def worker_init(parent: int) -> None:
    """Pool-worker setup: die with nnrun; leave Ctrl-C to the parent (a terminal sends it to
    the whole process group), which stops the pool; SIGTERM ends the worker at once."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from nnrun import locks

    locks.forget_inherited()  # the parent's lock must end with the parent, not with us
