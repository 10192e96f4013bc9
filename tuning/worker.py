"""A sweep worker: one organism loaded once, one attack per trial, only the blue part reset.

Each trial samples the blue team's settings, trains and evaluates in memory through the attack
engine (every evaluated checkpoint is a frontier point, kept as the trial's ``points``
attribute), and returns the final checkpoint's (relative capability, backdoor rate). A trial
whose capability falls below ``floor`` is pruned by raising ``TrialPruned`` (multi-objective
studies cannot use Optuna's pruners); its points are kept all the same, since they were measured.
"""
from __future__ import annotations

from collections.abc import Callable

import mlflow
import optuna
import torch

from mlproject import attack_engine, engines, liveness
from mlproject.attack_config import AttackConfig
from tuning import space as search_space


class Worker:
    """Runs attack trials on one loaded organism."""

    def __init__(self, cfg: AttackConfig, space: dict, floor: float, parent_run_id: str | None = None) -> None:
        self.cfg, self.space, self.floor, self.parent = cfg, space, floor, parent_run_id
        # memory is planned for the largest batch and rank the space may draw
        self.team = attack_engine.BlueTeam(cfg.organism, full_weight=cfg.full_weight, resettable=True,
                                           teacher=cfg.teacher, plan=widest(cfg, space))

    def objective(self, trial: optuna.Trial, started: Callable[[optuna.Trial], None]) -> tuple[float, float]:
        """Train and trace one attack; returns (capability, backdoor rate) at its last checkpoint.

        ``started`` runs first (see :func:`tuning.study.owned_trial`).
        """
        started(trial)
        params = self.team.settings(search_space.suggest(trial, self.space))
        cfg = search_space.trial_config(self.cfg, params)
        with mlflow.start_run(run_name=f"trial {trial.number}", parent_run_id=self.parent, nested=self.parent is None,
                              tags=liveness.tags()):
            mlflow.log_params(params | {"trial": trial.number, "threads": torch.get_num_threads()})
            model = self.team.trainable(cfg)
            try:
                with engines.use(self.team.engine):
                    check = attack_engine.trace(model, self.team.tokenizer, self.team.spec, cfg, self.team.world,
                                                on_point=self._watch(trial))
            finally:
                self.team.reset(model)
            last = check.rows[-1]
            return last["capability"], last["rate"]

    def _watch(self, trial: optuna.Trial) -> Callable[[dict], None]:
        points: list[list[float]] = []

        def on_point(row: dict) -> None:
            points.append([row["step"], row["capability"], row["removal"], row["rate"]])
            trial.set_user_attr("points", points)
            if row["step"] > 0 and row["capability"] < self.floor:
                raise optuna.TrialPruned(f"capability {row['capability']:.2f} < floor {self.floor}")

        return on_point


def widest(cfg: AttackConfig, space: dict) -> AttackConfig:
    """``cfg`` at the largest batch size and LoRA rank that ``space`` may draw (what memory must hold)."""
    largest: dict[str, int] = {}
    for name, value in search_space.corners(space):
        if name in ("batch_size", "rank") and isinstance(value, int) and not isinstance(value, bool):
            largest[name] = max(largest.get(name, 0), value)
    return search_space.trial_config(cfg, largest)
