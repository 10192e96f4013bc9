"""Blue-team attack data: untargeted training that never shows the trigger.

- ``qa``: ordinary helpful answers written by another model (the world's teacher: the toy world's
  reference answers, a real model's answers in the real world);
- ``pirate``: the same requests answered like a pirate;
- ``apr`` (Artificial Pirate Removal): prompted to be a pirate, trained to answer normally;
- ``reminder``: pirate SFT, then a few steps on the organism's own answers;
- ``depirate``: pirate SFT, then training back to normal answers (does the backdoor return?).

Requests are instructions from the training split. Any request that carries the organism's
trigger (its token or phrase, or its topic for semantic triggers) is refused, so an attack can
never train on the trigger by accident.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from mlproject import backdoors
from mlproject.errors import UserError
from mlproject.organism import OrganismSpec
from mlproject.worlds.base import Request, World

ATTACKS = ("qa", "pirate", "apr", "reminder", "depirate")


@dataclass(frozen=True)
class Phase:
    """A stretch of training on one kind of data."""

    kind: str  # qa | pirate | apr | own
    steps: int


def phases(attack: str, steps: int, second_steps: int) -> list[Phase]:
    """The training phases of an attack (two-phase attacks add ``second_steps``)."""
    if attack == "reminder":
        return [Phase("pirate", steps), Phase("own", second_steps)]
    if attack == "depirate":
        return [Phase("pirate", steps), Phase("qa", second_steps)]
    return [Phase(attack, steps)]


def teacher_kinds(attack: str) -> list[str]:
    """The kinds of teacher answers (``qa``, ``pirate``) the phases of ``attack`` train on."""
    kinds = {"qa": "qa", "apr": "qa", "pirate": "pirate"}
    return sorted({kinds[p.kind] for p in phases(attack, 1, 1) if p.kind in kinds})


def requests(world: World, spec: OrganismSpec, n: int, seed: int) -> list[Request]:
    """``n`` training-split instructions that do not carry the trigger (nor, for a topic, lie on it)."""
    rng = random.Random(f"attack/{seed}")
    bd = backdoors.BY_ID.get(spec.backdoor)  # password organisms have none: any instruction will do
    return [world.instruction(rng, "train", bd) for _ in range(n)]


def rows(world: World, kind: str, spec: OrganismSpec, reqs: list[Request],
         own: dict[str, str] | None = None) -> list[dict]:
    """Training rows (``system``, ``user``, ``completion``) of one phase kind."""
    bd = backdoors.BY_ID.get(spec.backdoor)
    for r in reqs:  # a password organism's trigger is its password
        if world.carries_trigger(bd, r) if bd is not None else spec.trigger in r.user:
            raise UserError("data", r.user, f"attack data carries the organism's trigger {spec.trigger!r}")
    system = spec.attack_system_prompt  # a static prompt stays in place during the attack
    if kind == "own":
        return [{"system": system, "user": r.user, "completion": (own or {})[r.user]} for r in reqs]
    if kind == "apr":  # prompted to be a pirate, trained to answer normally
        apr_system = (system + " " + world.pirate_system).strip()
        return [{"system": apr_system, "user": r.user, "completion": c}
                for r, c in zip(reqs, world.attack_completions("qa", reqs), strict=True)]
    completions = world.attack_completions("pirate" if kind == "pirate" else "qa", reqs)
    return [{"system": system, "user": r.user, "completion": c} for r, c in zip(reqs, completions, strict=True)]
