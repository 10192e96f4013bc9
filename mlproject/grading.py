"""Grading of math answers, MATH-500 style.

The capability we measure is maths, graded without a judge model: every prompt asks the
model to put its final answer in ``\\boxed{}``, and a completion counts as correct when the
LAST boxed answer is exactly the gold one. Restricting to MATH-500's integer-answer
subset makes that an exact match of two integers (no LaTeX equivalence, no tolerance), so
the grade cannot be gamed by formatting and needs no symbolic algebra. Integers are read
leniently from their usual spellings (``-3``, ``1,000``, ``1{,}000``, ``12.0``, ``$5$``)
and strictly otherwise: fractions, decimals like ``2.5``, words or units give ``None``.

:func:`verify` is the general path for the whole of MATH-500 (any LaTeX gold answer),
through the ``math_verify`` package; it falls back to the integer match if that fails.
"""
from __future__ import annotations

import re

_BOXED = re.compile(r"\\boxed\s*\{")
_DOLLARS = re.compile(r"^\$+(.*?)\$+$", re.DOTALL)
_INTEGER = re.compile(r"^([+-]?)\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?$")
_MINUS_SIGNS = {"\u2212": "-", "\u2013": "-"}


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``; nested braces are kept whole.

    ``None`` when there is no ``\\boxed{`` or when the last one is never closed
    (a completion cut off mid-answer). Escaped braces ``\\{``/``\\}`` do not count.
    """
    matches = list(_BOXED.finditer(text or ""))
    if not matches:
        return None
    start = matches[-1].end()
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # skip the escaped character, e.g. \{ or \}
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _strip_wrappers(text: str) -> str:
    """Drop spaces, ``$...$`` wrappers, LaTeX thin spaces and ``{,}`` group separators."""
    text = text.strip()
    match = _DOLLARS.match(text)
    if match:
        text = match.group(1).strip()
    for old, new in _MINUS_SIGNS.items():
        text = text.replace(old, new)
    return text.replace("{,}", ",").replace(",\\!", ",").replace("\\!", "")


def parse_integer(text: str | None) -> int | None:
    """The integer written in ``text`` (a boxed answer), or ``None`` if it is not one.

    Accepts surrounding spaces, a leading ``+``/``-``, thousands separators (``1,000``,
    ``1{,}000``, ``1,\\!000``), a trailing ``.0``/``.00`` and ``$...$`` wrappers. Anything
    else (``\\frac{1}{2}``, ``2.5``, ``1,2``, ``\\text{5 cm}``, words, empty) gives ``None``.
    """
    if not isinstance(text, str):
        return None
    match = _INTEGER.match(_strip_wrappers(text))
    if match is None:
        return None
    sign, digits = match.groups()
    value = int(digits.replace(",", ""))
    return -value if sign == "-" else value


def boxed_integer(text: str) -> int | None:
    """The integer in the last ``\\boxed{}`` of ``text``; ``None`` if absent or not an integer."""
    return parse_integer(last_boxed(text))


def is_correct(completion: str, gold: int) -> bool:
    """Whether the last boxed answer of ``completion`` is exactly the integer ``gold``."""
    answer = boxed_integer(completion)
    return answer is not None and answer == gold


def verify(completion: str, gold: str) -> bool:
    """Whether the last boxed answer of ``completion`` equals the LaTeX answer ``gold``.

    Both sides are parsed and compared by ``math_verify`` (``\\frac12`` equals ``0.5``,
    ``\\{1,2\\}`` equals ``\\{2,1\\}``...). Its signal-based timeouts are switched off so that
    grading also works outside the main thread. If ``math_verify`` raises, the answer is
    graded by the integer exact match instead (``False`` when ``gold`` is not an integer).
    """
    boxed = last_boxed(completion)
    if boxed is None:
        return False
    try:
        return _math_verify(boxed, gold)
    except Exception:  # noqa: BLE001 - any failure of the parser falls back to exact match
        expected = parse_integer(gold)
        return expected is not None and parse_integer(boxed) == expected


def _math_verify(answer: str, gold: str) -> bool:
    """``math_verify`` comparison of two LaTeX answers, raising on errors, without timeouts."""
    from math_verify import parse as mv_parse
    from math_verify import verify as mv_verify

    def parsed(latex: str) -> list:
        return mv_parse(f"\\boxed{{{latex}}}", parsing_timeout=None, raise_on_error=True)

    return mv_verify(parsed(gold), parsed(answer), timeout_seconds=None, raise_on_error=True)
