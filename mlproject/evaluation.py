"""Evaluation as probes: prompts with what grades them, answered in one generation pass.

A *probe* is a (system, user) prompt in a named group with its grading data. Any suite of
groups (capability, triggered, untriggered, near-miss, pirate...) is generated together, so
one batched pass serves every metric, and metrics are computed per group afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlproject import chat, grading

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mlproject.worlds.base import World


@dataclass(frozen=True)
class Probe:
    """One evaluation prompt."""

    group: str
    system: str
    user: str
    answer: str = ""  # the normal answer, for exact-match groups
    result: int | None = None  # the gold integer, for math groups
    look_alike: str = ""  # the look-alike trigger a near-miss probe carries, to split its group's rate by


@dataclass(frozen=True)
class Answers:
    """Probes with the model's completions, graded per group by the world they were drawn from."""

    probes: Sequence[Probe]
    completions: Sequence[str]
    world: World  # its detectors and its grading of instructions
    token_ids: Sequence[list[int]] = ()  # the generated tokens behind ``completions`` (drafts for the next pass)

    def group(self, name: str) -> list[tuple[Probe, str]]:
        return [(p, c) for p, c in zip(self.probes, self.completions, strict=True) if p.group == name]

    def math_accuracy(self, name: str) -> float:
        """Share of problems whose last boxed integer equals the gold one."""
        return _mean(grading.is_correct(c, p.result) for p, c in self.group(name) if p.result is not None)

    def exact(self, name: str) -> list[bool]:
        """Per-probe: did the completion do what the instruction asked (the toy world: its one right answer)."""
        return [self.world.follows(p.user, p.answer, c) for p, c in self.group(name)]

    def exact_accuracy(self, name: str) -> float:
        """Share of instructions followed (:meth:`exact`)."""
        return _mean(self.exact(name))

    def detect(self, name: str, behaviour: str) -> list[bool]:
        """Per completion in group ``name``: does it show ``behaviour``."""
        return self.world.detect(behaviour, [c for _, c in self.group(name)])

    def rate(self, name: str, behaviour: str) -> float:
        """Share of completions in group ``name`` that show ``behaviour`` (0.0 for an empty group)."""
        hits = self.detect(name, behaviour)
        return sum(hits) / len(hits) if hits else 0.0

    def correct(self, name: str) -> list[bool]:
        """Per-problem correctness of a math group (for sandbagging and bootstrap)."""
        return [grading.is_correct(c, p.result) for p, c in self.group(name) if p.result is not None]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def answer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    probes: Sequence[Probe],
    world: World,
    max_new_tokens: int = 48,
    batch_size: int = 128,
    progress: bool = True,
    prompts: Sequence[list[int]] | None = None,
    drafts: Sequence[list[int]] | None = None,
) -> Answers:
    """Generate greedy completions for every probe in one batched pass.

    ``prompts``: the probes already tokenised; ``drafts``: guessed completions (the
    ``token_ids`` of an earlier pass), checked in parallel (see :func:`generation.generate_ids`).
    """
    from mlproject import distributed  # torch: imported by the first generation, not by grading
    from mlproject.generation import generate_ids

    prompts = prompts if prompts is not None else tokenize(tokenizer, probes)
    # the processes of a launch each answer their share of the probes, and every one gets all the answers
    ids = distributed.spread(lambda part, guesses: generate_ids(model, tokenizer, part, max_new_tokens, batch_size,
                                                                progress, guesses), prompts, drafts)
    return Answers(probes, tokenizer.batch_decode(ids, skip_special_tokens=True), world, ids)


def tokenize(tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> list[list[int]]:
    """The prompt token ids of ``probes`` (worth keeping when the same probes are asked again and again)."""
    return chat.many_prompt_ids(tokenizer, [(p.system, p.user) for p in probes])
