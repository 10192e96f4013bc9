"""Precision and recall of a yes/no rule on labelled texts (detectors, topic rules)."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Score:
    """How a rule did on one label's texts."""

    n: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0


def read(path: str | Path) -> list[dict]:
    """The rows of a labelled JSONL file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def score(rows: Sequence[dict], key: str, decide: Callable[[str, list[str]], list[bool]]) -> dict[str, Score]:
    """Per value of ``rows[i][key]`` (a behaviour, a topic): ``decide(value, texts)`` against the labels."""
    out = {}
    for value in sorted({r[key] for r in rows}):
        group = [r for r in rows if r[key] == value]
        said = decide(value, [r["text"] for r in group])
        labels = [bool(r["label"]) for r in group]
        out[value] = Score(len(group), sum(s and t for s, t in zip(said, labels, strict=True)),
                           sum(s and not t for s, t in zip(said, labels, strict=True)),
                           sum(t and not s for s, t in zip(said, labels, strict=True)))
    return out


def table(scores: dict[str, Score], what: str) -> str:
    """A Markdown table of ``scores``."""
    lines = [f"| {what} | texts | precision | recall |", "|---|---|---|---|"]
    lines += [f"| {k} | {s.n} | {s.precision:.2f} | {s.recall:.2f} |" for k, s in scores.items()]
    return "\n".join(lines)
