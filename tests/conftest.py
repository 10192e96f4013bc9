"""Shared fixtures: a small toy tokenizer, a tiny random model, the shipped base model.

Everything is built locally from the toy world: no network.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

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


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh working directory with its own SQLite tracking store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


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
