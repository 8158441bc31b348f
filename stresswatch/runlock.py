"""The state directory's lock as `measure` needs it: held while a service runs, looked at without taking it.

A stand-in with the interface and file of `sinks.store.StateLock` / `lock_holder` on main (fix/mqtt,
merged after this branch began: `<state.directory>/stresswatch.lock`, flock(2), the holder's PID
in it); at the merge this module goes and its two users import those instead. The kernel drops a
flock when its process ends however it ends, so a killed service never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

LOCK_NAME = "stresswatch.lock"


class StateDirectoryBusy(OSError):
    """Another process holds the state directory's lock; the message names its PID."""


class StateLock:
    """An exclusive flock on `<directory>/stresswatch.lock` (0600) holding this process's PID."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StateDirectoryBusy(f"another stresswatch (PID {pid or 'not known'}) is already running on the "
                                     f"state directory {self.directory}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def lock_holder(directory: str | Path) -> int | None:
    """The PID of the process holding `directory`'s lock, or None; never takes the lock (a service
    starting at that moment must not find it taken): the kernel's table of locks says whether the
    file is locked."""
    path = Path(directory).expanduser() / LOCK_NAME
    try:
        text = path.read_text(errors="replace").strip()
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    if not text.isdigit():
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return int(text) if any("FLOCK" in line and inode in line.split() for line in table.splitlines()) else None
