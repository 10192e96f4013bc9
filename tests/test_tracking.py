"""Tracking: the default store, provenance tags, failed runs end FAILED with the reason."""
from __future__ import annotations

import subprocess
import sys
import time

import datasets
import mlflow
import pytest
import torch

from mlproject import tracking
from mlproject.errors import UserError

RACERS = 6


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


RACER = """
import sys, time
from pathlib import Path
from mlproject import tracking
Path(f"ready-{sys.argv[1]}").touch()
while not Path("go").exists():  # all start their first run at once, as a team's clients do
    time.sleep(0.01)
with tracking.run("raced", f"racer-{sys.argv[1]}"):
    pass
"""


def test_the_loser_of_the_race_to_make_the_experiment_logs_into_it(workdir, monkeypatch):
    # Another process makes the experiment between this one's look and its own making: this one then logged into
    # "Default" (MLflow's set_experiment returns the winner's experiment without making it active).
    made = mlflow.MlflowClient.create_experiment

    def another_process_first(self, name, *args, **kwargs):
        made(mlflow.MlflowClient(tracking.tracking_uri()), name)
        return made(self, name, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "create_experiment", another_process_first)
    with tracking.run("raced", "loser") as active:
        pass
    assert active.info.experiment_id == mlflow.get_experiment_by_name("raced").experiment_id


@pytest.mark.slow
def test_processes_that_race_to_make_the_experiment_all_log_into_it(workdir):
    # the same race, run: six processes start their first run at once on a new store (whose tables they also raced
    # to make, and all but one failed)
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(i)], cwd=workdir, stderr=subprocess.PIPE, text=True)
             for i in range(RACERS)]
    while len(list(workdir.glob("ready-*"))) < RACERS and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (workdir / "go").touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert sorted(r.info.run_name for r in runs) == [f"racer-{i}" for i in range(RACERS)]
    raced = mlflow.get_experiment_by_name("raced").experiment_id
    assert {r.info.experiment_id for r in runs} == {raced}


def test_a_deleted_experiment_is_one_line(workdir):
    client = mlflow.MlflowClient(tracking.tracking_uri())
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(UserError, match="experiment=gone: is deleted in the tracking store: restore it"):
        with tracking.run("gone", "x"):
            pass
    assert not mlflow.search_runs(search_all_experiments=True, output_format="list")
