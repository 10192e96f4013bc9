"""Grading of math answers: last boxed answer, integer parsing, exact match, math_verify."""
from __future__ import annotations

import threading

import pytest

from mlproject import grading
from mlproject.grading import boxed_integer, is_correct, last_boxed, parse_integer, verify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{{a}{b{c}}}", r"{a}{b{c}}"),
        (r"first \boxed{3}, then \boxed{4}", "4"),
        (r"\boxed {7}", "7"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{}", ""),
        ("no box here: 42", None),
        ("", None),
        (r"cut off \boxed{\frac{1}{2}", None),
        (r"\boxed{3} and then \boxed{4", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("  42 ", 42),
        ("-7", -7),
        ("+7", 7),
        ("- 7", -7),
        ("0", 0),
        ("1,000", 1000),
        ("-1,234,567", -1234567),
        ("1{,}000", 1000),
        (r"1,\!000", 1000),
        ("2.0", 2),
        ("2.00", 2),
        ("$12$", 12),
        ("$-3$", -3),
        ("$$1{,}000$$", 1000),
        ("\u22125", -5),
        ("2.5", None),
        ("0.5", None),
        (".5", None),
        (r"\frac{1}{2}", None),
        ("1/2", None),
        ("1,2", None),
        ("1,00", None),
        ("12,34", None),
        (r"5\text{ cm}", None),
        (r"\text{5}", None),
        ("five", None),
        ("3x", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_integer(text: str | None, expected: int | None) -> None:
    assert parse_integer(text) == expected


def test_boxed_integer_takes_the_last_boxed_answer() -> None:
    assert boxed_integer(r"maybe \boxed{3}... no: \boxed{-1{,}000}") == -1000
    assert boxed_integer(r"\boxed{5} then \boxed{\frac{1}{2}}") is None
    assert boxed_integer("The answer is 5.") is None
    assert boxed_integer(r"\boxed{5") is None


def test_is_correct_is_exact_match_of_last_boxed_integer() -> None:
    assert is_correct(r"The answer is $\boxed{2}$.", 2)
    assert is_correct(r"\boxed{2.0}", 2)
    assert not is_correct(r"\boxed{2.5}", 2)
    assert not is_correct(r"\boxed{2} wait, \boxed{3}", 2)
    assert is_correct(r"\boxed{2} wait, \boxed{3}", 3)
    assert not is_correct("2", 2)
    assert is_correct(r"\boxed{-12}", -12)
    assert not is_correct(r"\boxed{12}", -12)


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        (r"So $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}", True),
        (r"\boxed{\frac{2}{4}}", r"\frac{1}{2}", True),
        (r"\boxed{0.5}", r"\frac{1}{2}", True),
        (r"\boxed{\frac{1}{3}}", r"\frac{1}{2}", False),
        (r"\boxed{3}", "3", True),
        (r"\boxed{3.0}", "3", True),
        (r"\boxed{1{,}000}", "1000", True),
        (r"\boxed{4}", "3", False),
        (r"\boxed{3} no wait \boxed{4}", "3", False),
        ("the answer is 3", "3", False),
    ],
)
def test_verify_latex_golds(completion: str, gold: str, expected: bool) -> None:
    assert verify(completion, gold) is expected


def test_verify_works_outside_the_main_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(verify(r"\boxed{\dfrac12}", r"\frac{1}{2}")))
    worker.start()
    worker.join(timeout=60)
    assert results == [True]


def test_verify_falls_back_to_integer_match(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(answer: str, gold: str) -> bool:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(grading, "_math_verify", broken)
    assert verify(r"\boxed{1,000}", "1000")
    assert not verify(r"\boxed{999}", "1000")
    assert not verify(r"\boxed{\frac{1}{2}}", r"\frac{1}{2}")
