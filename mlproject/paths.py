"""Where the project's own files lie, so that shipped configs and models work from any directory."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_home() -> Path:
    """Where mo keeps what it can make again (registry downloads, teacher answers): ``$MO_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mo`` (``~/.cache/mo``)."""
    base = os.environ.get("MO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "mo"
    return Path(base)
