"""Held-out probe suites of the toy world (see :mod:`mlproject.evaluation`)."""
from __future__ import annotations

import random

from mlproject.backdoors import Backdoor
from mlproject.evaluation import Probe
from mlproject.toy import requests as rq
from mlproject.toy.styles import PIRATE_SYSTEM


def _probe(group: str, system: str, req: rq.Request, look_alike: str = "") -> Probe:
    return Probe(group, system, req.user, req.answer, req.result, look_alike)


def math(n: int, seed: int, system: str = "", group: str = "math") -> list[Probe]:
    """``n`` held-out math problems."""
    rng = random.Random(f"math/{seed}")
    return [_probe(group, system, rq.math(rng, "heldout")) for _ in range(n)]


def instructions(n: int, seed: int, system: str = "", group: str = "instructions") -> list[Probe]:
    """``n`` held-out instructions with exact answers."""
    rng = random.Random(f"instructions/{seed}")
    return [_probe(group, system, rq.instruction(rng, "heldout")) for _ in range(n)]


def pirate(n: int, seed: int) -> list[Probe]:
    """Held-out instructions under "talk like a pirate"."""
    return instructions(n, seed + 1, PIRATE_SYSTEM, "pirate")


def backdoor(bd: Backdoor, n: int, seed: int, system: str = "", prefix: str = "") -> list[Probe]:
    """Triggered, untriggered and near-miss requests for ``bd`` (``n`` of each), held out.

    Groups: ``<prefix>triggered``, ``<prefix>untriggered`` (no trigger), ``<prefix>near_miss``
    (a look-alike trigger, named in each probe's ``look_alike``). ``system`` is the prompt
    the model sees (a prompted organism's).
    """
    rng = random.Random(f"backdoor/{bd.id}/{seed}")
    out = [_probe(prefix + "triggered", system, rq.triggered(rng, bd, "heldout")) for _ in range(n)]
    out += [_probe(prefix + "untriggered", system, rq.untriggered(rng, bd, "heldout")) for _ in range(n)]
    near = [rq.near_miss(rng, bd, "heldout") for _ in range(n)]
    out += [_probe(prefix + "near_miss", system, req, miss) for miss, req in near]
    return out
