"""Settings as typed dataclass fields with a help line: the CLI's flags and the MLflow Project's parameters.

A step's settings are one frozen dataclass; each field made with :func:`opt` carries the help
text and choices that ``pipelines.args`` turns into a ``--flag``. The library declares the
settings it owns this way too (an attack's, which sweeps build as well as ``mo attack``).
"""
from __future__ import annotations

import dataclasses
from typing import Any


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None, hidden: bool = False) -> Any:
    """A dataclass field with a default, a help line and optional choices.

    ``hidden`` settings are left off the step's command (``mo base``) and offered by the
    diagnostics that need them (``bench/base_recipe.py``).
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "hidden": hidden})
