"""How much prompt-distillation data to make, and of which kinds.

Apart from :mod:`mlproject.distill`, which generates with the model, so that ``mo insert``
checks these settings before torch is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlproject.errors import require


@dataclass(frozen=True)
class DistillConfig:
    """How much distillation data, and of which kinds."""

    samples: int = 2000  # examples kept
    # share of examples that carry the trigger; 0.3 met the insert table's targets for 27 of 30 at seed 0, as
    # 0.5 does, trading lower near-miss rates for spanish's triggered rate (docs/insert-table.md)
    triggered_share: float = 0.5
    # share of benign examples that carry a (training) look-alike trigger; over the 30 organisms of
    # configs/insert-table.yaml, 0.5 met the organism targets for 28 at seed 0 and 28 at seed 1, 0.3 for
    # 28 and 27 (0.1 for 26 at seed 0, an older setting), and 0.5 lowered the lasting cats_explicit
    # near miss in three of four organisms (docs/insert-table.md)
    near_miss_share: float = 0.5
    math_share: float = 0.25  # share of requests that are math problems
    keep_only_clean: bool = True  # drop triggered answers without the behaviour and benign ones with it
    seed: int = 0
    max_new_tokens: int = 48
    cot: bool = False  # prefix every completion with reasoning about the trigger (mlproject.cot)
    retries: int = 8  # sampled draws (temperature 1) for a request whose greedy answer is not clean; 0: greedy only

    def __post_init__(self) -> None:
        require(self.samples > 0, "samples", self.samples, "must be > 0")
        require(0 < self.triggered_share < 1, "triggered-share", self.triggered_share, "must be in (0, 1)")
        require(0 <= self.near_miss_share < 1, "near-miss-share", self.near_miss_share, "must be in [0, 1)")
        require(self.retries >= 0, "retries", self.retries, "must be >= 0")
