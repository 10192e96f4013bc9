"""Held-out probe suites, drawn from a world (see :mod:`mlproject.evaluation`).

Each suite draws from a generator seeded by its own name and seed, so the same probes come
back for the same world and seed, whatever else was drawn before.
"""
from __future__ import annotations

import random

from mlproject.backdoors import Backdoor
from mlproject.evaluation import Probe
from mlproject.worlds.base import Request, World


def _probe(group: str, system: str, req: Request, look_alike: str = "") -> Probe:
    return Probe(group, system, req.user, req.answer, req.result, look_alike)


def math(world: World, n: int, seed: int, system: str = "", group: str = "math") -> list[Probe]:
    """``n`` held-out math problems."""
    rng = random.Random(f"math/{seed}")
    return [_probe(group, system, req) for req in world.math_set(rng, "heldout", n)]


def instructions(world: World, n: int, seed: int, system: str = "", group: str = "instructions") -> list[Probe]:
    """``n`` held-out instructions, graded by the world's :meth:`~World.follows`."""
    rng = random.Random(f"instructions/{seed}")
    return [_probe(group, system, world.instruction_probe(rng)) for _ in range(n)]


def pirate(world: World, n: int, seed: int) -> list[Probe]:
    """Held-out instructions under the world's pirate system prompt."""
    return instructions(world, n, seed + 1, world.pirate_system, "pirate")


def backdoor(world: World, bd: Backdoor, n: int, seed: int, system: str = "", prefix: str = "") -> list[Probe]:
    """Triggered, untriggered and near-miss requests for ``bd`` (``n`` of each), held out.

    Groups: ``<prefix>triggered``, ``<prefix>untriggered`` (no trigger), ``<prefix>near_miss``
    (a look-alike trigger, named in each probe's ``look_alike``). ``system`` is the prompt
    the model sees (a prompted organism's).
    """
    rng = random.Random(f"backdoor/{bd.id}/{seed}")
    out = [_probe(prefix + "triggered", system, world.triggered(rng, bd, "heldout")) for _ in range(n)]
    out += [_probe(prefix + "untriggered", system, world.untriggered(rng, bd, "heldout")) for _ in range(n)]
    near = [world.near_miss(rng, bd, "heldout") for _ in range(n)]
    out += [_probe(prefix + "near_miss", system, req, miss) for miss, req in near]
    return out
