"""Stopping on a signal: SIGTERM (a supervisor, ``kill``) ends a step as Ctrl-C does.

Python ends on SIGTERM without unwinding, so a run would stay RUNNING in the tracking store
and a half-written organism would stay on disk. Turned into :class:`Stopped` (a
``KeyboardInterrupt``, which the libraries already treat as "stop now": Optuna fails the trial),
it unwinds through every ``finally`` and ends the MLflow run FAILED with the reason.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


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
