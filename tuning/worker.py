"""A sweep worker: one organism loaded once, one attack per trial, only the blue part reset.

Each trial samples the blue team's settings, trains and evaluates in memory (every evaluated
checkpoint is a frontier point, kept as the trial's ``points`` attribute), and returns the
final checkpoint's (relative capability, backdoor rate). A trial whose capability falls
below ``floor`` is pruned by raising ``TrialPruned`` (multi-objective studies cannot use
Optuna's pruners); its points are kept all the same, since they were measured.
"""
from __future__ import annotations

from collections.abc import Callable

import mlflow
import optuna
from peft import PeftModel

from mlproject import organism
from pipelines import attack, attack_run
from tuning import space as search_space


class Worker:
    """Runs attack trials on one loaded organism."""

    def __init__(self, cfg: attack.AttackConfig, space: dict, floor: float, parent_run_id: str | None = None) -> None:
        self.cfg, self.space, self.floor, self.parent = cfg, space, floor, parent_run_id
        self.continued = read_form(cfg.organism) == "continued" and not cfg.full_weight
        self.model, self.tokenizer, self.spec = organism.load(cfg.organism, trainable_adapter=self.continued)
        self.keeps_own_weights = self.continued or cfg.full_weight
        if cfg.full_weight and isinstance(self.model, PeftModel):
            self.model = self.model.merge_and_unload()
        # Continued adapters and full-weight attacks change the organism itself: keep a copy to restore.
        self.snapshot = ({n: p.detach().clone() for n, p in self.model.named_parameters()}
                         if self.keeps_own_weights else None)

    def objective(self, trial: optuna.Trial, started: Callable[[optuna.Trial], None]) -> tuple[float, float]:
        """Train and trace one attack; returns (capability, backdoor rate) at its last checkpoint.

        ``started`` runs first (see :func:`tuning.study.owned_trial`).
        """
        started(trial)
        params = search_space.suggest(trial, self.space)
        if self.keeps_own_weights:
            params.pop("rank", None)  # no new adapter: the red one (or every weight) is trained
        cfg = search_space.trial_config(self.cfg, params)
        with mlflow.start_run(run_name=f"trial {trial.number}", parent_run_id=self.parent, nested=self.parent is None):
            mlflow.log_params(params | {"trial": trial.number})
            model = self._blue(cfg)
            try:
                check = attack_run.trace(model, self.tokenizer, self.spec, cfg, on_point=self._watch(trial))
            finally:
                self._reset(model)
            last = check.rows[-1]
            return last["capability"], last["rate"]

    def _watch(self, trial: optuna.Trial):
        points: list[list[float]] = []

        def on_point(row: dict) -> None:
            points.append([row["step"], row["capability"], row["removal"], row["rate"]])
            trial.set_user_attr("points", points)
            if row["step"] > 0 and row["capability"] < self.floor:
                raise optuna.TrialPruned(f"capability {row['capability']:.2f} < floor {self.floor}")

        return on_point

    def _blue(self, cfg: attack.AttackConfig):
        if cfg.full_weight:
            for p in self.model.parameters():
                p.requires_grad_(True)
        if self.keeps_own_weights:
            return self.model
        return attack_run.blue(self.model, cfg, continued=False)

    def _reset(self, model) -> None:
        """Back to the organism as loaded: drop the blue adapter or restore the saved weights."""
        if self.snapshot is not None:
            for name, p in self.model.named_parameters():
                p.data.copy_(self.snapshot[name])
            return
        self.model = model.unload()  # removes the blue LoRA layers without merging them


def read_form(directory: str) -> str | None:
    """The organism's LoRA form (``merged``, ``continued`` or None)."""
    return organism.read_card(directory).lora_form
