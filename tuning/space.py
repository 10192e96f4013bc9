"""Search spaces in YAML: each key a blue-team setting, each value an Optuna distribution.

    lr: {type: float, low: 1.0e-5, high: 3.0e-2, log: true}
    steps: {type: int, low: 20, high: 300, log: true}
    rank: {type: categorical, choices: [4, 16, 64]}
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import optuna

from mlproject import configfile
from mlproject.attack_config import AttackConfig
from mlproject.errors import UserError, require
from mlproject.paths import REPO

KEYS = {"type", "low", "high", "log", "choices"}  # of one setting's distribution
SEARCHABLE = ("lr", "steps", "batch_size", "rank", "second_steps")


def load(path: str | Path) -> dict[str, optuna.distributions.BaseDistribution]:
    """The distributions of a search-space file; a :class:`UserError` names what is wrong."""
    p = Path(path)
    if not p.is_file() and not p.is_absolute() and (REPO / p).is_file():
        p = REPO / p  # the spaces shipped in configs/ work from any directory
    require(p.is_file(), "space", path, "no such file")
    spec = configfile.mapping(p, "space", str(path))
    require(bool(spec), "space", path, "empty search space")
    return {name: _distribution(name, value, str(path)) for name, value in spec.items()}


def _distribution(name: str, d: dict, path: str) -> optuna.distributions.BaseDistribution:
    require(name in SEARCHABLE, "space", path, f"unknown setting {name!r}; searchable: {', '.join(SEARCHABLE)}")
    require(isinstance(d, dict), "space", path, f"{name}: must be a mapping with a type (float, int or categorical)")
    kind = d.get("type")
    unknown = sorted(set(d) - KEYS)
    if unknown:  # a misspelt `log` would otherwise be ignored
        raise UserError("space", path, f"{name}: unknown field {unknown[0]!r}; known: {', '.join(sorted(KEYS))}")
    try:
        if kind == "float":
            return optuna.distributions.FloatDistribution(float(d["low"]), float(d["high"]), log=bool(d.get("log")))
        if kind == "int":
            return optuna.distributions.IntDistribution(int(d["low"]), int(d["high"]), log=bool(d.get("log")))
        if kind == "categorical":
            require(bool(d.get("choices")), "space", path, f"{name}: categorical needs choices")
            return optuna.distributions.CategoricalDistribution(list(d["choices"]))
    except (KeyError, ValueError, TypeError) as err:
        raise UserError("space", path, f"{name}: {err}") from None
    raise UserError("space", path, f"{name}: type must be float, int or categorical, not {kind!r}")


def corners(space: dict[str, optuna.distributions.BaseDistribution]) -> Iterator[tuple[str, object]]:
    """Every setting's extreme values: a range's low and high, each categorical choice.

    A check of these before a study starts finds a value the attack refuses (``steps: {low: 0}``)
    up front, instead of in whichever trial happens to sample it.
    """
    for name, d in space.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            yield from ((name, choice) for choice in d.choices)
        else:
            yield from ((name, d.low), (name, d.high))


def suggest(trial: optuna.Trial, space: dict[str, optuna.distributions.BaseDistribution]) -> dict:
    """One point of the space, sampled by the trial's sampler."""
    out: dict = {}
    for name, d in space.items():
        if isinstance(d, optuna.distributions.FloatDistribution):
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
        elif isinstance(d, optuna.distributions.IntDistribution):
            out[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            out[name] = trial.suggest_categorical(name, d.choices)
    return out


def trial_config(base: AttackConfig, params: dict) -> AttackConfig:
    """``base`` with a trial's settings; checkpoints stay at most ``steps`` apart, so a short trial is still traced."""
    return replace(base, **params, eval_every=min(base.eval_every, params.get("steps", base.steps)))
