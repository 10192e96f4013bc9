"""Registry references of organisms: ``models:/<name>/<version>``, ``.../latest``, ``models:/<name>@<alias>``.

Their form is checked here, without MLflow, so that ``mo attack`` and ``mo sweep`` report a
malformed reference (or a folder that holds no organism) before they import torch and
MLflow; :mod:`registry.store` looks the reference up.
"""
from __future__ import annotations

import re

from mlproject.errors import UserError
from mlproject.organism import read_card

PATTERN = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")
FORMS = "models:/<name>/<version|latest> or models:/<name>@<alias>"


def parse(ref: str, field: str = "organism") -> re.Match | None:
    """The parts of a registry reference (``name``, and ``version`` or ``alias``); None for a path.

    A string that starts with ``models:`` in neither form is a UserError, not a path.
    """
    m = PATTERN.match(ref)
    if m is None and ref.startswith("models:"):
        raise UserError(field, ref, f"expected {FORMS}")
    return m


def check_organism(ref: str, field: str = "organism") -> None:
    """Fail unless ``ref`` is a well-formed registry reference or a folder holding an organism's card."""
    if parse(ref, field) is None:
        read_card(ref)
