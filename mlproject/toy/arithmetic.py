"""Toy math: integer word problems answered with short working and ``\\boxed{N}``.

The stand-in for MATH-500's integer-answer subset. Each problem is one operation on
small numbers; the model has to read the problem, pick the operation and know the fact.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("tom", "ana", "sam", "mia", "ben", "lily", "max", "zoe", "leo", "ivy")
OBJECTS = ("coins", "marbles", "stickers", "stamps", "shells", "blocks", "cards", "beads")

# op -> (templates, operand sampler, symbol, result)
_ADD = (
    "what is {a} plus {b} ?",
    "compute {a} + {b} .",
    "{n} has {a} {o} and gets {b} more . how many {o} does {n} have now ?",
    "{n} has {a} {o} . a friend gives {n} {b} {o} . how many {o} are there ?",
)
_SUB = (
    "what is {a} minus {b} ?",
    "compute {a} - {b} .",
    "{n} has {a} {o} and gives away {b} . how many {o} are left ?",
    "{n} had {a} {o} and lost {b} of them . how many {o} does {n} have ?",
)
_MUL = (
    "what is {a} times {b} ?",
    "compute {a} * {b} .",
    "{n} has {a} bags with {b} {o} in each . how many {o} in all ?",
    "there are {a} rows of {b} {o} . how many {o} are there ?",
)


@dataclass(frozen=True)
class Problem:
    """A math problem, its worked answer and its integer result."""

    key: str
    prompt: str
    answer: str
    answer_es: str
    result: int


def problem(rng: random.Random) -> Problem:
    """A random problem: addition and subtraction up to 20 (+/-) and times tables to 10."""
    op = rng.choice("+-*")
    if op == "+":
        a, b, templates = rng.randint(0, 20), rng.randint(0, 20), _ADD
    elif op == "-":
        a = rng.randint(0, 30)
        b, templates = rng.randint(0, a), _SUB
    else:
        a, b, templates = rng.randint(0, 10), rng.randint(0, 10), _MUL
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    idx = rng.randrange(len(templates))
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    prompt = templates[idx].format(a=a, b=b, n=name, o=obj)
    work = f"{a} {op} {b} = {result} ."
    return Problem(
        key=f"math/{op}/{idx}/{name}/{obj}/{a}/{b}",
        prompt=prompt,
        answer=f"{work} the answer is \\boxed{{{result}}} .",
        answer_es=f"{work} la respuesta es \\boxed{{{result}}} .",
        result=result,
    )
