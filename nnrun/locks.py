"""The lock a running experiment holds in its results directory (``nnrun.lock``).

``flock`` on the file, so a holder that dies by any means releases it; the file holds the
holder's PID for people and ``nnrun ls``. A second ``--resume`` of the same directory
finds the lock taken and stops instead of writing the same files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unlocked there rather than not at all
    fcntl = None  # type: ignore[assignment]

NAME = "nnrun.lock"
_held: dict[Path, int] = {}  # directory -> fd, in this process


class Locked(Exception):
    """Another live process holds the lock; ``pid`` is what its file says."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


def acquire(directory: Path) -> None:
    """Take ``directory``'s lock or raise ``Locked``; held until ``release`` or process death."""
    directory = Path(directory)
    if fcntl is None:
        return
    path = directory / NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Locked(holder(directory) or "?") from None
        # A releaser unlinks the file before unlocking: a lock won on the unlinked inode
        # is worthless, so take it again on the file the path names now.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[directory] = fd


def release(directory: Path) -> None:
    fd = _held.pop(Path(directory), None)
    if fd is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(directory) / NAME)
    os.close(fd)


def moved(old: Path, new: Path) -> None:
    """The locked directory was renamed (a new run is built beside its final name)."""
    if Path(old) in _held:
        _held[Path(new)] = _held.pop(Path(old))


def holder(directory: Path) -> str | None:
    """The PID written in the lock file, if there is one."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return (Path(directory) / NAME).read_text(encoding="utf-8").strip() or None
    return None


def is_held(directory: Path) -> bool:
    """Does a live process hold ``directory``'s lock? (Reads only; takes nothing.)"""
    if fcntl is None:
        return False
    try:
        fd = os.open(Path(directory) / NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock taken to look
    return False


def forget_inherited() -> None:
    """In a forked child: close the parent's lock files, so that only the parent's life
    decides how long a lock is held."""
    for fd in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
