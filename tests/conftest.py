"""Shared fixtures: a small toy tokenizer, a tiny random model, the shipped base model.

Everything is built locally from the toy world: no network.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import mlflow
import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

from mlproject import models  # noqa: E402
from mlproject.toy import build  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def toy_tokenizer():
    """A toy tokenizer trained on a few thousand conversations (seconds)."""
    return build.build_tokenizer(seed=0, n_texts=3000)


@pytest.fixture(scope="session")
def tiny_model(toy_tokenizer):
    """A randomly initialised two-layer toy Llama."""
    return build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=2), seed=0).eval()


@pytest.fixture(scope="session")
def shipped():
    """``(model, tokenizer)`` of the base model shipped in the repository."""
    return models.load("toy")


@pytest.fixture(autouse=True)
def _tracking_uri_env_restored():
    """MLflow's ``set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment (for subprocesses): a
    test's call would otherwise outlive it, and point a later test's ``mo`` at that test's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh working directory with its own SQLite tracking store."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # and MLflow's retry settings a step sets from MO_TRACKING_WAIT are undone after the test, with their marks
    retries = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", *retries,
                *(f"MO_SET_{name}" for name in retries)):
        monkeypatch.delenv(var, raising=False)
    # an earlier test's mlflow.set_tracking_uri outlives it in this process, and would win over the
    # MLFLOW_TRACKING_URI a test sets: this test's client would read that test's store
    mlflow.set_tracking_uri(None)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def mo(*argv: str, cwd: Path, env: dict | None = None, unset: Iterable[str] = (),
       timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the installed ``mo`` console script as a user would; ``unset`` names variables kept out of its
    environment."""
    exe = Path(sys.executable).with_name("mo")
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None) if env is None or "MLFLOW_TRACKING_URI" not in env else None
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run([str(exe), *argv], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def one_line_error(result, field: str) -> None:
    """A user mistake's answer: exit code 2 and one line, ``mo: error: FIELD=...``, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mo: error: {field}="), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def no_runs(workdir: Path) -> None:
    """Nothing half-written: no run of any status in the working directory's store."""
    db = workdir / "mlflow.db"
    if not db.exists():
        return
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert not runs, [(r.info.run_name, r.info.status) for r in runs]


def main_error(capsys, argv: list[str], field: str = "") -> str:
    """``mo <argv>`` in this process: exit code 2, one error line that names ``field``, no run left active; returns
    the line."""
    from pipelines import cli

    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argument parsing ends the process
        code = stop.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert field in err[0], err[0]
    assert mlflow.active_run() is None
    return err[0]
