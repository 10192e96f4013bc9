"""Tracking: the default store, provenance tags, failed runs end FAILED with the reason."""
from __future__ import annotations

import datasets
import mlflow
import pytest
import torch

from mlproject import tracking
from mlproject.errors import UserError


def test_default_store_is_sqlite_in_the_working_directory(workdir):
    assert tracking.tracking_uri() == f"sqlite:///{workdir / 'mlflow.db'}"


def test_a_failing_run_ends_failed_with_its_reason(workdir):
    with pytest.raises(UserError):
        with tracking.run("t", "boom", {"lr": 0.1}):
            raise UserError("lr", 0.1, "too high")
    run = mlflow.search_runs(experiment_names=["t"], output_format="list")[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["mo.error"] == "lr=0.1: too high"
    assert run.data.params["lr"] == "0.1"
    assert mlflow.active_run() is None


def test_provenance_and_dataset_fingerprint(workdir):
    ds = datasets.Dataset.from_list([{"user": "a", "completion": "b"}] * 3)
    with tracking.run("t", "ok") as active:
        digest = tracking.log_dataset(ds, "d", "training")
    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert "mo.version.transformers" in run.data.tags
    # what decides whether a rerun gives the same numbers: the CPU and the instruction set of torch's kernels
    assert run.data.tags["mo.machine.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert run.data.tags["mo.machine.cpu"] and run.data.tags["mo.machine.threads"] == str(torch.get_num_threads())
    assert run.inputs.dataset_inputs[0].dataset.digest == digest
    assert tracking.fingerprint(datasets.Dataset.from_list([{"user": "a", "completion": "b"}] * 3)) == digest
    assert tracking.fingerprint(ds.select([0])) != digest


def test_unreachable_tracking_server(workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(UserError, match="MLFLOW_TRACKING_URI"):
        with tracking.run("t", "x"):
            pass


def test_no_password_reaches_a_logged_parameter(workdir):
    """A storage or store URI is logged with its password masked, wherever it sits in a parameter."""
    with tracking.run("sweeps", "s", {"storage": "postgresql://mo:s3cret-pw@db:5432/optuna",
                                      "nested": {"uri": "mysql://u:pw2@h/x"}, "plain": "sqlite:///optuna.db"}) as r:
        pass
    params = mlflow.get_run(r.info.run_id).data.params
    assert params["storage"] == "postgresql://mo:***@db:5432/optuna"
    assert "pw2" not in params["nested"] and params["plain"] == "sqlite:///optuna.db"
