"""Where the project's own files lie, so that shipped configs and models work from any directory."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
