"""Instruction following on real requests: verifiable constraints added to held-out instructions.

A real instruction has no single right answer, so the real world measures instruction
following as IFEval does: each held-out instruction gets one constraint that a rule can check
("Answer in at most 60 words.", "Do not use any commas."), and the answer follows the
instruction when the constraint holds. The constraint travels with the probe as its
``answer`` field (``kind:argument``), so grading needs nothing but the probe.
"""
from __future__ import annotations

import random
import re

CLOSING = "Is there anything else I can help with?"
KEYWORDS = ("important", "example", "simple", "because", "first", "together", "result", "clear")


def draw(rng: random.Random) -> tuple[str, str]:
    """A constraint: ``(sentence appended to the request, spec)``."""
    kind = rng.randrange(6)
    if kind == 0:
        return "Your entire answer must be in lowercase letters; no capital letters are allowed.", "lowercase:"
    if kind == 1:
        n = rng.choice((40, 60, 80, 100))
        return f"Answer in at most {n} words.", f"max_words:{n}"
    if kind == 2:
        return f'Finish your answer with the exact sentence "{CLOSING}"', f"ends_with:{CLOSING}"
    if kind == 3:
        word = rng.choice(KEYWORDS)
        return f'Use the word "{word}" at least once in your answer.', f"keyword:{word}"
    if kind == 4:
        return "Do not use any commas in your answer.", "no_commas:"
    n = rng.choice((2, 3, 4))
    return f"Answer with exactly {n} bullet points, each on its own line starting with '- '.", f"bullets:{n}"


def holds(spec: str, completion: str) -> bool:
    """Whether ``completion`` meets the constraint ``spec`` (as :func:`draw` wrote it)."""
    kind, _, arg = spec.partition(":")
    text = completion.strip()
    if kind == "lowercase":
        return bool(text) and text == text.lower()
    if kind == "max_words":
        return 0 < len(text.split()) <= int(arg)
    if kind == "ends_with":
        return text.rstrip("\"' ").endswith(arg.rstrip("?")) or text.endswith(arg)
    if kind == "keyword":
        return re.search(rf"\b{re.escape(arg)}\b", text, re.IGNORECASE) is not None
    if kind == "no_commas":
        return bool(text) and "," not in text
    if kind == "bullets":
        return len(re.findall(r"^\s*[-*•] ", text, re.MULTILINE)) == int(arg)
    raise ValueError(f"unknown constraint {spec!r}")
