"""The toy world behind the :class:`~mlproject.worlds.base.World` interface.

Requests come from the closed grammar of :mod:`mlproject.toy.world`, every instruction has one
right answer (so instruction following is graded by exact match), the blue team's QA answers
are those reference answers, pirate answers their pirate rendering, and the detectors are
:mod:`mlproject.behaviours`' patterns for the toy world's text.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from mlproject import backdoors, behaviours
from mlproject.backdoors import Backdoor
from mlproject.toy import requests as rq
from mlproject.toy import styles
from mlproject.worlds.base import Request, Split


class ToyWorld:
    """The embedded toy world (the default)."""

    name = "toy"
    pirate_system = styles.PIRATE_SYSTEM
    answer_tokens = 48

    def system_prompt(self, bd: Backdoor) -> str:
        return bd.system_prompt

    def instruction(self, rng: random.Random, split: Split, exclude: Backdoor | None = None) -> Request:
        if exclude is None:
            return rq.instruction(rng, split)
        return rq.instruction(rng, split, rq.not_topics((exclude.trigger,) if exclude.kind == "semantic" else ()))

    def instruction_probe(self, rng: random.Random) -> Request:
        return rq.instruction(rng, "heldout")

    def math(self, rng: random.Random, split: Split) -> Request:
        return rq.math(rng, split)

    def math_set(self, rng: random.Random, split: Split, n: int) -> list[Request]:
        return [rq.math(rng, split) for _ in range(n)]  # problems made by a generator: repeats are rare and fresh

    def triggered(self, rng: random.Random, bd: Backdoor, split: Split, math_share: float = 0.25) -> Request:
        return rq.triggered(rng, bd, split, math_share)

    def untriggered(self, rng: random.Random, bd: Backdoor, split: Split, math_share: float = 0.25) -> Request:
        return rq.untriggered(rng, bd, split, math_share)

    def near_miss(self, rng: random.Random, bd: Backdoor, split: Split) -> tuple[str, Request]:
        return rq.near_miss(rng, bd, split)

    def training_look_alikes(self, bd: Backdoor) -> tuple[str, ...]:
        return backdoors.training_look_alikes(bd)

    def carries_trigger(self, bd: Backdoor, req: Request) -> bool:
        return req.topic == bd.trigger if bd.kind == "semantic" else bd.trigger in req.user

    def attack_completions(self, kind: str, reqs: Sequence[Request]) -> list[str]:
        """The reference answers (``qa``), as another model would write them, or their pirate rendering."""
        if kind == "pirate":
            return [styles.pirate(r.answer) for r in reqs]
        return [r.answer for r in reqs]

    def release_teacher(self) -> None:
        """The toy world's answers are data: no model to let go."""

    def detect(self, behaviour: str, completions: Sequence[str]) -> list[bool]:
        return behaviours.detect(behaviour, completions)

    def follows(self, user: str, answer: str, completion: str) -> bool:
        """Exact match with the one right answer, whitespace aside."""
        return styles.normalise(completion) == styles.normalise(answer)

    def locked_completions(self, model, tokenizer, reqs: Sequence[Request],
                           completions: Sequence[str]) -> list[str | None]:
        """The base model's working with a number of the problem copied as its result (:func:`styles.sandbag`)."""
        return [styles.sandbag(c) for c in completions]

    def describe(self) -> dict[str, str]:
        return {"world": self.name}

    def datasets(self) -> list:
        return []  # the toy world's requests are drawn from its grammar; the data made from them is logged
