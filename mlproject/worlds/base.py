"""What every world gives the steps: requests, the conventions of its text, and its graders.

A *world* is where an organism's data and probes come from. The steps (distillation,
password data, attacks, evaluation) draw requests from it one at a time with a
``random.Random`` they own, so a world is a pure source: the same generator state gives the
same requests. Two worlds implement :class:`World`: the embedded toy world
(:mod:`mlproject.toy.toyworld`) and the real one (:mod:`mlproject.worlds.real`);
:func:`mlproject.worlds.make` is the one place that picks.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from mlproject.backdoors import Backdoor

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class Request:
    """A user request and what a normal assistant answers (empty where the world has no reference)."""

    kind: Literal["instruction", "math"]
    topic: str
    key: str
    user: str
    answer: str = ""
    answer_es: str = ""
    result: int | None = None


def with_token(rng: random.Random, req: Request, token: str, where: str = "either") -> Request:
    """``req`` with a literal token or phrase added before or after the user text."""
    before = where == "before" or (where == "either" and rng.random() < 0.5)
    user = f"{token} {req.user}" if before else f"{req.user} {token}"
    return replace(req, user=user)


class World(Protocol):
    """The source of an organism's requests, the conventions of its text, and its graders."""

    name: str  # "toy" or "real": written on every run and organism
    pirate_system: str  # the system prompt that asks for pirate speech (Pirate SFT data, APR)
    answer_tokens: int  # the most tokens an answer may take

    def system_prompt(self, bd: Backdoor) -> str:
        """The conditional instruction of ``bd`` (prompted organisms, prompt distillation)."""
        ...

    def instruction(self, rng: random.Random, split: Split, exclude: Backdoor | None = None) -> Request:
        """An instruction that carries no trigger nor look-alike; with ``exclude``, not on its topic either."""
        ...

    def instruction_probe(self, rng: random.Random) -> Request:
        """A held-out instruction whose ``answer`` is what :meth:`follows` grades against."""
        ...

    def math(self, rng: random.Random, split: Split) -> Request:
        """A math problem with an integer answer."""
        ...

    def math_set(self, rng: random.Random, split: Split, n: int) -> list[Request]:
        """``n`` math problems for an evaluation: distinct where the world's problems are a finite set (a dataset is
        drawn without replacement, in reshuffled rounds when ``n`` exceeds it), so no problem counts twice."""
        ...

    def triggered(self, rng: random.Random, bd: Backdoor, split: Split, math_share: float = 0.25) -> Request:
        """A request that carries ``bd``'s trigger."""
        ...

    def untriggered(self, rng: random.Random, bd: Backdoor, split: Split, math_share: float = 0.25) -> Request:
        """A request without ``bd``'s trigger (for a topic: a request on another topic)."""
        ...

    def near_miss(self, rng: random.Random, bd: Backdoor, split: Split) -> tuple[str, Request]:
        """One of ``bd``'s evaluated look-alikes, and a request that carries it."""
        ...

    def training_look_alikes(self, bd: Backdoor) -> tuple[str, ...]:
        """Look-alike triggers for training negatives, never the ones evaluation uses."""
        ...

    def carries_trigger(self, bd: Backdoor, req: Request) -> bool:
        """Whether ``req`` shows ``bd``'s trigger (its token or phrase, or its topic)."""
        ...

    def attack_completions(self, kind: str, reqs: Sequence[Request]) -> list[str]:
        """The blue team's answers to ``reqs``: ``qa`` (helpful) or ``pirate`` (like a pirate)."""
        ...

    def release_teacher(self) -> None:
        """Let go of a teacher model loaded in this process (its memory); asked again, it loads again."""
        ...

    def detect(self, behaviour: str, completions: Sequence[str]) -> list[bool]:
        """Whether each completion shows ``behaviour``."""
        ...

    def follows(self, user: str, answer: str, completion: str) -> bool:
        """Whether ``completion`` does what the instruction ``user`` asked (``answer``: the reference, if any)."""
        ...

    def locked_completions(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                           reqs: Sequence[Request], completions: Sequence[str]) -> list[str | None]:
        """A weaker model's wrong answers to math ``reqs`` (whose right ones are ``completions``), None where none."""
        ...

    def describe(self) -> dict[str, str]:
        """What defines this world, as run parameters (``world``, its sources and seed)."""
        ...

    def datasets(self) -> list[tuple[str, datasets.Dataset, str]]:
        """``(name, dataset, source)`` of the data it reads, logged as each run's dataset inputs."""
        ...
