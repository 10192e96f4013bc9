"""User-facing errors: one line that names the offending input, exit code 2."""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in what the user asked for (as opposed to a bug in mo).

    The CLI prints ``mo: error: <field>=<value>: <reason>`` and exits with code 2,
    without a traceback.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!s}: {reason}")


class TrackingLost(Exception):
    """The tracking server stayed away longer than mo waits for it: the step stopped, and what it measured
    is kept on disk for upload (not the user's mistake: the CLI prints one line and exits with code 1)."""


def require(condition: bool, field: str, value: object, reason: str) -> None:
    """Raise :class:`UserError` unless ``condition`` holds."""
    if not condition:
        raise UserError(field, value, reason)


def require_folder(path: str | Path, field: str) -> None:
    """Fail before any work unless ``path`` is a folder or can become one (no file stands on its way)."""
    full = Path(path).resolve()
    first = next(p for p in (full, *full.parents) if p.exists())
    require(first.is_dir(), field, path, f"{first} is a file, not a folder")
