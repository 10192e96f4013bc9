"""Print the backdoor catalogue.

    mo backdoors
"""
from __future__ import annotations

from dataclasses import dataclass

from mlproject import backdoors


@dataclass(frozen=True)
class CatalogueConfig:
    """``mo backdoors`` takes no settings."""


def run(cfg: CatalogueConfig) -> str:
    """The catalogue table, printed and returned."""
    text = backdoors.table()
    print(text)
    return text
