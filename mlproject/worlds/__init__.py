"""Choosing a world: the one place that knows both of them.

``auto`` (the default of every step) is the toy world for the shipped toy model and the real
world for any other base model; ``--world toy`` or ``--world real`` says otherwise. The
settings are a :class:`WorldConfig`, written on every organism's card and every run, so an
attack on an organism draws from the world it was made in.
"""
from __future__ import annotations

import random

from mlproject.backdoors import Backdoor
from mlproject.errors import UserError, require
from mlproject.worlds.base import Request, World
from mlproject.worlds.config import ALPACA, MATH_500, WORLDS, WorldConfig

__all__ = ["ALPACA", "MATH_500", "WORLDS", "Request", "World", "WorldConfig", "check_draws", "from_record", "make",
           "resolve"]

def resolve(world: str, base_model: str) -> str:
    """``toy`` or ``real``: what ``auto`` means for ``base_model``; a UserError for an unknown world."""
    require(world in WORLDS, "world", world, f"must be one of {', '.join(WORLDS)}")
    if world == "auto":
        return "toy" if base_model == "toy" else "real"
    return world


def from_record(record: dict | None, field: str = "organism") -> WorldConfig:
    """The config an organism's card recorded (cards written before worlds existed are toy)."""
    try:
        return WorldConfig(**(record or {"name": "toy"}))
    except TypeError as err:
        raise UserError(field, record, f"not a world of mo's ({err})") from None


def check_draws(world: World, bd: Backdoor | None) -> None:
    """Draw one request of every kind a step needs, in both splits: a world that cannot (no held-out request
    on a trigger's topic, say) fails here, before a model is loaded, rather than after training."""
    rng = random.Random(0)
    for split in ("train", "heldout"):
        world.math(rng, split)
        world.instruction(rng, split, bd)
        if bd is not None:
            world.triggered(rng, bd, split, math_share=0.0)
            world.untriggered(rng, bd, split, math_share=0.0)
            world.near_miss(rng, bd, split)
    world.instruction_probe(rng)


def make(cfg: WorldConfig, base_model: str = "toy") -> World:
    """The world ``cfg`` names; the real world's teacher defaults to ``base_model``."""
    if cfg.name == "toy":
        from mlproject.toy.toyworld import ToyWorld

        return ToyWorld()
    from mlproject.worlds.real import RealWorld

    return RealWorld(cfg, base_model)
