"""The settings of one blue-team attack: which training, how long, how fast, how it is traced.

``mo attack`` takes them from its flags; a sweep builds them for every trial from the search
space (:mod:`tuning.space`). They are checked here, without torch, so a mistake fails at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlproject import attacks
from mlproject.engines import ENGINES
from mlproject.errors import require
from mlproject.options import opt
from mlproject.train_options import TrainOptions

MAX_SAMPLES = 10_000_000  # attack requests: far beyond any attack's data, short of hanging on a typo
MAX_RANK = 1024  # the largest LoRA rank the method sweeps; a typo's 100000 would fill the memory first


@dataclass(frozen=True)
class AttackConfig(TrainOptions):
    """Settings of ``mo attack``."""

    organism: str = opt(None, "organism directory, or models:/<name>/<version> or models:/<name>@<alias>")
    attack: str = opt("pirate", "blue-team training", choices=attacks.ATTACKS)
    lr: float = opt(1e-3, "peak learning rate; higher removes faster and costs more capability")
    steps: int = opt(200, "optimiser steps (of the first phase for reminder and depirate)")
    second_steps: int = opt(40, "steps of the second phase of reminder and depirate")
    batch_size: int = opt(16, "examples per step")
    rank: int | None = opt(None, "blue LoRA rank (default 64; continued organisms train their own adapter)")
    full_weight: bool = opt(False, "train every weight instead of a LoRA (a stronger attacker)")
    eval_every: int = opt(20, "evaluate every this many steps (and at step 0)")
    eval_size: int = opt(50, "triggered and untriggered probes per checkpoint; twice as many math problems")
    samples: int = opt(2000, "attack requests")
    seed: int = opt(0, "seed of data, the blue adapter's initialisation and batching")
    refine: float = opt(0.0, "re-trace, evaluating densely, the stretch between two checkpoints whose removal or "
                             "capability differ by more than this (a cliff the frontier would guess across); 0: off")
    refine_points: int = opt(4, "checkpoints added inside each refined stretch, evenly spaced (at most one a step)")
    engine: str = opt("hf", "who answers at checkpoints: hf (mo's batched decoding) or vllm (the checkpoint as an "
                            "adapter, or its weights loaded into the running engine; MO_VLLM_PYTHON names its python)",
                      choices=ENGINES)
    teacher: str = opt("", "real world: who writes the QA and pirate answers: '' the organism's base model, a model "
                           "directory or hub id, or an http(s) OpenAI-compatible endpoint")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(not (self.refine and self.optimizer == "adamw8bit"), "refine", self.refine,
                "cannot re-trace with --optimizer adamw8bit (its quantised states cannot be copied)")
        require(0 <= self.refine < math.inf, "refine", self.refine, "must be >= 0 and finite (0: off)")
        require(self.refine_points > 0, "refine-points", self.refine_points, "must be > 0")
        require(0 < self.lr < math.inf, "lr", self.lr, "must be > 0 and finite")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # numpy's and Optuna's range
        require(self.steps > 0, "steps", self.steps, "must be > 0")
        require(self.second_steps > 0, "second-steps", self.second_steps, "must be > 0")
        require(self.batch_size > 0, "batch-size", self.batch_size, "must be > 0")
        require(self.eval_size > 0, "eval-size", self.eval_size, "must be > 0")
        require(0 < self.samples <= MAX_SAMPLES, "samples", self.samples, f"must be in 1..{MAX_SAMPLES:,}")
        require(self.attack in attacks.ATTACKS, "attack", self.attack,
                f"unknown attack; known: {', '.join(attacks.ATTACKS)}")
        require(0 < self.eval_every <= self.total_steps, "eval-every", self.eval_every,
                f"must be in 1..{self.total_steps} (the attack's steps)")
        require(self.rank is None or 0 < self.rank <= MAX_RANK, "rank", self.rank, f"must be in 1..{MAX_RANK}")
        require(self.engine in ENGINES, "engine", self.engine, f"must be one of {', '.join(ENGINES)}")
        require(self.rank is None or not self.full_weight, "rank", self.rank, "does not apply with --full-weight")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in attacks.phases(self.attack, self.steps, self.second_steps))


