"""The study's storage: Optuna's RDB storage, with queued trials taken by one worker at a time on SQLite.

A queued trial (a warm start, or the retry of an interrupted one) is taken by reading that it waits
and marking it running. PostgreSQL and MySQL lock the row between the two; SQLite ignores that lock,
so two ``--n-jobs`` workers could both take one trial: the second stopped on the first's run
folder and failed the trial, whose result the first then could not record. Here the take is done
under a lock file next to the database, which the workers of one machine share. Imported only by
``sessrec tune`` (it imports optuna).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock (one worker per study there)
    fcntl = None  # type: ignore[assignment]


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other databases or an in-memory one)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) and len(url) > len(prefix) else None


class StudyStorage(RDBStorage):
    """:class:`~optuna.storages.RDBStorage` whose taking of a queued trial is atomic across the processes of a
    machine when the database is a SQLite file."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        db = sqlite_path(url)
        self._lock_path = db.with_name(db.name + ".take-lock") if db is not None and fcntl is not None else None
        if self._lock_path is not None and not db.parent.is_dir():
            self._lock_path = None  # Optuna says the folder is missing, in its own words
        # Optuna creates the tables of a new database on opening it: two processes opening one at the same moment (two
        # workers, a dashboard) failed one of them with "UNIQUE constraint failed: alembic_version". Opened one at a
        # time on SQLite; elsewhere the second opening, which finds the tables, is tried again.
        for attempt in range(3):
            try:
                with self._taking():
                    super().__init__(url, **kwargs)
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        if state != TrialState.RUNNING or self._lock_path is None:
            return super().set_trial_state_values(trial_id, state, values)
        with self._taking():
            return super().set_trial_state_values(trial_id, state, values)

    @contextlib.contextmanager
    def _taking(self) -> Iterator[None]:
        """The machine's lock of this SQLite database (nothing for other databases)."""
        if self._lock_path is None:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
