"""One worker at a time between counting a study's trials and starting the next one.

Workers check "does the study still need a trial?" and then start one; two workers doing that
at once both see the last free place and the study ends with a trial more than asked (what
Optuna's own ``MaxTrialsCallback`` does too). The count and the start are made one step under a
lock that the trial's first line releases:

- a file storage (SQLite, journal): a file lock beside the storage file;
- PostgreSQL: a session advisory lock keyed by the study's name. PostgreSQL lets it go when the
  holder's connection closes, so a worker killed while holding it holds no one back; the lock's
  connection asks the server for TCP keepalives of about a minute, so a holder whose machine or
  network died is let go in that time too (not after the system's two hours), and a wait longer
  than ``WAIT`` seconds is an error. The lock lives on one server session: a pooling proxy in
  transaction mode (PgBouncer's default) cannot carry it, so workers connect to PostgreSQL itself;
- any other server: no lock (each worker may then start one trial more than asked).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time

import sqlalchemy
import sqlalchemy.exc
from filelock import FileLock
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

WAIT = 600.0  # seconds a worker waits for the trial lock: a holder only samples and creates one trial
KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}


class AdvisoryLock:
    """A PostgreSQL session advisory lock, with :class:`filelock.FileLock`'s acquire/release/is_locked."""

    def __init__(self, url: str, name: str) -> None:
        # the key: 64 bits of the name's hash (advisory locks take one bigint)
        self.key = int.from_bytes(hashlib.sha256(f"mo-trials:{name}".encode()).digest()[:8], "big", signed=True)
        self._engine = sqlalchemy.create_engine(url, poolclass=NullPool)  # its own connection, closed on release
        self._conn: sqlalchemy.Connection | None = None

    @property
    def is_locked(self) -> bool:
        return self._conn is not None

    def acquire(self) -> None:
        if self._conn is not None:
            return
        conn = self._engine.connect()
        try:
            for setting, seconds in KEEPALIVES.items():  # the server's side of this connection: a dead peer found
                conn.execute(sqlalchemy.text(f"SET {setting} = {int(seconds)}"))
            deadline = time.monotonic() + WAIT
            # polled rather than waited for in one statement: a wait has a bound, and a stop (SIGTERM) is seen
            while not conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another sweep worker held the study's trial lock for {WAIT:.0f} s "
                                       f"(advisory lock {self.key}); is a worker stuck?")
                time.sleep(0.2)
            conn.commit()
        except BaseException:
            conn.close()
            self._engine.dispose()
            raise
        self._conn = conn

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            # a failed unlock (the connection dropped) is no failure: closing the connection releases it anyway
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        finally:
            conn.close()
            self._engine.dispose()

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class NoLock:
    """For a server storage with no lock mo knows how to take."""

    is_locked = False

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc) -> None:
        pass


def file_of(url: str) -> str | None:
    """The local file behind a journal or SQLite URL (any driver, any query); None for a server."""
    if url.startswith("journal:"):
        return os.path.realpath(url.removeprefix("journal:"))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return os.path.realpath(parsed.database)
    return None


def for_storage(url: str, study_name: str) -> FileLock | AdvisoryLock | NoLock:
    """The lock that serialises starting trials of ``study_name`` in the storage at ``url``."""
    path = file_of(url)
    if path is not None:
        # beside the storage file, as SQLite's own journal files are (the journal backend takes
        # `<file>.lock` for itself); kept after release, since deleting a lock file races its waiters.
        # No soft-lock fallback: a killed worker's soft lock would hold every other one back forever
        return FileLock(f"{path}.queue.lock", fallback_to_soft=False)
    if make_url(url).get_backend_name() == "postgresql":
        return AdvisoryLock(url, study_name)
    return NoLock()
