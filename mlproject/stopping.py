"""Stopping on a signal: SIGTERM (a supervisor, ``kill``) ends a step as Ctrl-C does.

Python ends on SIGTERM without unwinding, so a run would stay RUNNING in the tracking store
and a half-written organism would stay on disk. Turned into :class:`Stopped` (a
``KeyboardInterrupt``, which the libraries already treat as "stop now": Optuna fails the trial),
it unwinds through every ``finally`` and ends the MLflow run FAILED with the reason.
"""
from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


_asked: list[int] = []  # the signals received: once stopping, libraries' own reports of it are noise


def _raise(signum: int, frame: object) -> None:
    _asked.append(signum)
    raise Stopped(signum)


def asked() -> bool:
    """Whether this process was asked to stop."""
    return bool(_asked)


class QuietWhileStopping(logging.Filter):
    """Drops a library's log records once the process is stopping (Optuna's "Trial 0 failed" with a traceback, when
    the trial's run already ends FAILED with the reason and mo says it in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not asked()


def quiet_while_stopping(logger: str) -> None:
    """Give every handler of ``logger`` a :class:`QuietWhileStopping` filter."""
    for handler in logging.getLogger(logger).handlers:
        handler.addFilter(QuietWhileStopping())


@contextmanager
def on_signals() -> Iterator[None]:
    """Within the block, SIGTERM (and SIGINT) raise :class:`Stopped` in the main thread; the handlers
    before it are put back after (a program that calls ``mo`` in-process keeps its own)."""
    before = {signum: signal.signal(signum, _raise) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's code for a process ended by the signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(stop, "signum", signal.SIGINT)
