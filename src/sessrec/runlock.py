"""One run per output folder: ``OUTPUT_DIR/.lock``, held with ``flock`` while a run writes there.

The operating system releases the lock when the process ends, however it ends (``kill -9``
included), so a stale lock never blocks a later run; the file itself stays, holding the pid, host
and start time of the last run that took it, which is what a refused run reports. ``flock``
works between processes on one machine and, on Linux, over NFS (as a POSIX lock); on other
network file systems two machines may not see each other's locks. Where ``fcntl`` does not
exist (Windows) runs are not locked.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import time
from pathlib import Path

from sessrec.errors import SessrecError
from sessrec.io import writing

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    """The lock on one output folder, taken by :meth:`acquire` and given back by :meth:`release`."""

    def __init__(self, folder: Path, fd: int | None):
        self.folder = folder
        self._fd = fd

    @classmethod
    def acquire(cls, folder: str | Path, what: str = "write into") -> RunLock:
        """Lock ``folder`` (which exists), or raise a one-line error naming the run holding it."""
        folder = Path(folder)
        if fcntl is None:
            return cls(folder, None)
        path = folder / LOCK_NAME
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(folder, what) from None
        except OSError:  # a file system without flock: go on unlocked, as where fcntl does not exist
            os.close(fd)
            return cls(folder, None)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        with writing(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (info + "\n").encode(), 0)
        return cls(folder, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_free(folder: str | Path, what: str) -> None:
    """Raise the error :meth:`RunLock.acquire` would if a run holds ``folder`` now, without taking
    the lock or creating its file (for a check before anything is written)."""
    if is_locked(folder):
        raise _in_use(Path(folder), what)


def _in_use(folder: Path, what: str) -> SessrecError:
    return SessrecError(f"cannot {what} {folder}: another run is using it ({holder(folder)}); "
                        "wait for it to end, stop it, or choose another --output-dir")


def holder(folder: str | Path) -> str:
    """``pid 123 on host h since ...`` from the lock file, as far as it can be read."""
    try:
        info = json.loads((Path(folder) / LOCK_NAME).read_text())
        return f"pid {info['pid']} on host {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def is_locked(folder: str | Path) -> bool:
    """Whether a run holds ``folder``'s lock now (without taking it, or creating the lock file)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def own_temporary(folder: Path, prefix: str) -> Path:
    """``folder/PREFIX-HOST-PID``: a temporary folder of this process, which :func:`remove_dead_temporaries`
    recognises once the process is gone."""
    return folder / f"{prefix}-{socket.gethostname()}-{os.getpid()}"


def remove_dead_temporaries(folder: Path, prefix: str) -> list[Path]:
    """Remove the :func:`own_temporary` folders ``folder/PREFIX-HOST-*`` that killed processes of this machine
    left (one may be large); a folder of a process still alive, or of another machine sharing the disk, is kept.
    Returns the removed ones."""
    start, removed = f"{prefix}-{socket.gethostname()}-", []
    for path in folder.glob(f"{glob.escape(start)}*"):
        pid = path.name[len(start):]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
