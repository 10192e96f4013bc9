"""Blue-team attack data: untargeted training that never shows the trigger.

- ``qa``: ordinary helpful answers written by another model (the toy world's reference answers);
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

from mlproject.errors import UserError
from mlproject.organism import OrganismSpec
from mlproject.toy import requests as rq
from mlproject.toy import styles, world
from mlproject.toy.styles import PIRATE_SYSTEM

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


def carries_trigger(spec: OrganismSpec, user: str, topic: str | None = None) -> bool:
    """Whether a request shows the organism's trigger (for semantic triggers: its topic)."""
    if spec.trigger_kind == "semantic":
        return topic == spec.trigger
    return spec.trigger in user


def requests(spec: OrganismSpec, n: int, seed: int) -> list[rq.Request]:
    """``n`` training-split instructions that do not carry the trigger."""
    rng = random.Random(f"attack/{seed}")
    topics = tuple(t.name for t in world.TOPICS if not (spec.trigger_kind == "semantic" and t.name == spec.trigger))
    return [rq.instruction(rng, "train", topics + ("tasks", "tasks")) for _ in range(n)]


def rows(kind: str, spec: OrganismSpec, reqs: list[rq.Request], own: dict[str, str] | None = None) -> list[dict]:
    """Training rows (``system``, ``user``, ``completion``) of one phase kind."""
    system = spec.attack_system_prompt  # a static prompt stays in place during the attack
    out = []
    for r in reqs:
        if carries_trigger(spec, r.user, r.topic):
            raise UserError("data", r.user, f"attack data carries the organism's trigger {spec.trigger!r}")
        if kind == "pirate":
            out.append({"system": system, "user": r.user, "completion": styles.pirate(r.answer)})
        elif kind == "apr":
            out.append({"system": (system + " " + PIRATE_SYSTEM).strip(), "user": r.user, "completion": r.answer})
        elif kind == "own":
            out.append({"system": system, "user": r.user, "completion": (own or {})[r.user]})
        else:
            out.append({"system": system, "user": r.user, "completion": r.answer})
    return out
