"""The code passes the linter configured in pyproject.toml (ruff: pycodestyle, pyflakes, import order,
pyupgrade, bugbear, comprehensions; lines of at most 120 characters)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")  # installed with the dev extra, beside this interpreter
    result = subprocess.run([str(ruff), "check", "--no-cache", str(REPO)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-5000:]
