"""How many held-out probes the base evaluation draws of each kind.

Apart from :mod:`mlproject.toy.base_eval` so that ``mo evaluate``'s settings can name these
defaults without importing the generation code behind the evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How many held-out probes of each kind."""

    math: int = 300
    instructions: int = 300
    pirate: int = 200
    # draws of each of triggered, untriggered, near-miss, and math under the prompt: at 40 a
    # rate's 95% interval spans about +-0.1, as wide as the margins the targets draw; at 200,
    # +-0.04 (a semantic topic has only 35 to 93 distinct held-out requests; draws repeat them)
    per_backdoor: int = 200
