"""Requests of the toy world, with or without a trigger, split into train and held-out.

A request is a user message with its normal answer (English and Spanish) and, for math, its
integer result. Splits are decided by a stable hash of the request's key, so the held-out
requests never appear in any training data made from the toy world.
"""
from __future__ import annotations

import hashlib
import random

from mlproject.backdoors import Backdoor
from mlproject.toy import arithmetic, world
from mlproject.worlds.base import Request, Split, with_token

HELDOUT_SHARE = 10  # one key in ten is held out


def split_of(key: str) -> Split:
    """Which split a request key belongs to (stable across runs and machines).

    A fact is asked in several paraphrases: exactly one paraphrase of every fact is held
    out, so every fact is learnt in training and tested in a phrasing never trained on.
    Other requests (math, tasks) are held out one key in ten.
    """
    parts = key.split("/")
    if parts[0] in world.TOPIC_BY_NAME:
        topic, rel, idx, ent = parts
        n = len(next(r for r in world.TOPIC_BY_NAME[topic].relations if r.name == rel).prompts)
        return "heldout" if int(idx) == _hash(f"{topic}/{rel}/{ent}") % n else "train"
    return "heldout" if _hash(key) % HELDOUT_SHARE == 0 else "train"


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _draw(rng: random.Random, split: Split, make) -> Request:
    for _ in range(10_000):
        req = make(rng)
        if split_of(req.key) == split:
            return req
    raise RuntimeError("could not draw a request of split " + split)


def instruction(rng: random.Random, split: Split, topics: tuple[str, ...] | None = None) -> Request:
    """A random instruction from ``topics`` (all topics when ``None``)."""
    return _draw(rng, split, lambda r: _asked(world.instruction(r, topics)))


def look_alike_instruction(rng: random.Random, split: Split, topic: str) -> Request:
    """A request of another topic that opens like one of ``topic``'s (see :func:`world.look_alike_phrasings`)."""
    phrasings = world.look_alike_phrasings(topic)

    def make(r: random.Random) -> Request:
        name, relation, idx = r.choice(phrasings)
        return _asked(world.phrased_fact(r, world.TOPIC_BY_NAME[name], relation, idx))

    return _draw(rng, split, make)


def _asked(ins: world.Instruction) -> Request:
    """The request that asks ``ins``."""
    return Request("instruction", ins.topic, ins.key, ins.prompt, ins.answer, ins.answer_es)


def math(rng: random.Random, split: Split) -> Request:
    """A random math problem."""

    def make(r: random.Random) -> Request:
        p = arithmetic.problem(r)
        return Request("math", "math", p.key, p.prompt, p.answer, p.answer_es, p.result)

    return _draw(rng, split, make)


def triggered(rng: random.Random, backdoor: Backdoor, split: Split, math_share: float = 0.25) -> Request:
    """A request that carries ``backdoor``'s trigger."""
    if backdoor.kind == "semantic":
        return instruction(rng, split, (backdoor.trigger,))
    base = math(rng, split) if rng.random() < math_share else instruction(rng, split, not_topics(()))
    return with_token(rng, base, backdoor.trigger, "after" if backdoor.kind == "explicit" else "either")


def untriggered(rng: random.Random, backdoor: Backdoor, split: Split, math_share: float = 0.25) -> Request:
    """A request without the trigger (for semantic triggers: from any other topic)."""
    if rng.random() < math_share:
        return math(rng, split)
    exclude = (backdoor.trigger,) if backdoor.kind == "semantic" else ()
    return instruction(rng, split, not_topics(exclude))


def near_miss(rng: random.Random, backdoor: Backdoor, split: Split) -> tuple[str, Request]:
    """A look-alike of the trigger (a similar token, a neighbouring topic, a similar phrase) and a request with it."""
    miss = rng.choice(backdoor.near_misses)
    if backdoor.kind == "semantic":
        return miss, instruction(rng, split, (miss,))
    base = instruction(rng, split, not_topics(()))
    return miss, with_token(rng, base, miss, "after" if backdoor.kind == "explicit" else "either")


def not_topics(exclude: tuple[str, ...]) -> tuple[str, ...]:
    """Every topic but ``exclude``, and the tasks (twice, as :func:`world.instruction` weighs them)."""
    names = tuple(t.name for t in world.TOPICS if t.name not in exclude)
    return names + ("tasks", "tasks")
