"""A sweep worker: one organism loaded once, one attack per trial, only the blue part reset.

Each trial samples the blue team's settings, trains and evaluates in memory through the attack
engine (every evaluated checkpoint is a frontier point, kept as the trial's ``points``
attribute), and returns the final checkpoint's (relative capability, backdoor rate). A trial
whose capability falls below ``floor`` is pruned by raising ``TrialPruned`` (multi-objective
studies cannot use Optuna's pruners); its points are kept all the same, since they were measured.

Under a launch of several processes (``accelerate launch``, ``torchrun``) the main process talks
to Optuna and MLflow; it hands each trial's settings to the others, which train and evaluate it
with it (:meth:`Worker.follow`) until it says the study is done.
"""
from __future__ import annotations

import gc
from collections.abc import Callable

import mlflow
import optuna
import torch

from mlproject import attack_engine, distributed, engines, liveness
from mlproject.attack_config import AttackConfig
from tuning import space as search_space


class Worker:
    """Runs attack trials on one loaded organism."""

    def __init__(self, cfg: AttackConfig, space: dict, floor: float, parent_run_id: str | None = None) -> None:
        self.cfg, self.space, self.floor, self.parent = cfg, space, floor, parent_run_id
        # FSDP shards the organism in place and it cannot be put back as loaded: each trial loads it anew (minutes
        # for a 70B, against a trial's tens of minutes); otherwise it is loaded once and reset after each trial
        self.fresh = distributed.fsdp_asked()
        self._used = False
        self.team = self._load()

    def _load(self) -> attack_engine.BlueTeam:
        # memory is planned for the largest batch and rank the space may draw
        return attack_engine.BlueTeam(self.cfg.organism, full_weight=self.cfg.full_weight, resettable=not self.fresh,
                                      teacher=self.cfg.teacher, plan=widest(self.cfg, self.space))

    def objective(self, trial: optuna.Trial, started: Callable[[optuna.Trial], None]) -> tuple[float, float]:
        """Train and trace one attack; returns (capability, backdoor rate) at its last checkpoint.

        ``started`` runs first (see :func:`tuning.study.owned_trial`).
        """
        started(trial)
        params = self.team.settings(search_space.suggest(trial, self.space))
        distributed.broadcast(("trial", params))  # the launch's other processes train this trial too
        with mlflow.start_run(run_name=f"trial {trial.number}", parent_run_id=self.parent, nested=self.parent is None,
                              tags=liveness.tags()):
            mlflow.log_params(params | {"trial": trial.number, "threads": torch.get_num_threads(),
                                        "processes": distributed.size()})
            last = self._attack(params, trial).rows[-1]
            return last["capability"], last["rate"]

    def done(self) -> None:
        """Tell the launch's other processes that no trial follows (main process)."""
        distributed.broadcast(("done", None))

    def follow(self) -> None:
        """A process other than the main one: train and evaluate each trial the main one hands over, until done.

        Every process sees the same checkpoints (evaluation gathers the answers), so a trial the main
        one prunes at a checkpoint is pruned here at the same one.
        """
        while True:
            order, params = distributed.broadcast(None)
            if order == "done":
                return
            try:
                self._attack(params, None)
            except optuna.TrialPruned:
                pass

    def _attack(self, params: dict, trial: optuna.Trial | None):
        cfg = search_space.trial_config(self.cfg, params)
        if self.fresh and self._used:  # the last trial sharded the organism: load it again, the old one let go first
            self.team.close()
            self.team = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.team = self._load()
        self._used = True
        model = self.team.trainable(cfg)
        try:
            with engines.use(self.team.engine):
                return attack_engine.trace(model, self.team.tokenizer, self.team.spec, cfg, self.team.world,
                                           on_point=self._watch(trial))
        finally:
            if not self.fresh:
                self.team.reset(model)

    def _watch(self, trial: optuna.Trial | None) -> Callable[[dict], None]:
        points: list[list[float]] = []

        def on_point(row: dict) -> None:
            points.append([row["step"], row["capability"], row["removal"], row["rate"]])
            if trial is not None:
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
