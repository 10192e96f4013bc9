"""Runs whose process died: found and ended FAILED, so that no run stays RUNNING for ever.

A process killed with ``kill -9`` (or a machine that went down) cannot end its MLflow run. Every
run mo starts carries ``mo.host`` and ``mo.pid``, and a thread renews ``mo.heartbeat`` (UTC
seconds) every :data:`INTERVAL` seconds while the process lives, as Optuna's storages do for
trials. When mo next starts a run, it ends FAILED every RUNNING run whose process is gone: on
this machine by its pid, elsewhere by a heartbeat older than :data:`GRACE` seconds.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
from mlflow import MlflowClient

INTERVAL = float(os.environ.get("MO_HEARTBEAT_SECONDS", "30"))
GRACE = 10 * INTERVAL  # a server outage of a few minutes is not a death


def tags() -> dict[str, str]:
    """What a run records so that its death can be told: where, which process, when last alive."""
    return {"mo.host": socket.gethostname(), "mo.pid": str(os.getpid()), "mo.heartbeat": f"{time.time():.0f}"}


@contextmanager
def heartbeat(run_id: str) -> Iterator[None]:
    """Renew the run's ``mo.heartbeat`` in the background while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        client = MlflowClient()
        while not stop.wait(INTERVAL):
            try:
                client.set_tag(run_id, "mo.heartbeat", f"{time.time():.0f}")
            except Exception:  # a tracking server away for a while: the next beat tries again
                pass

    thread = threading.Thread(target=beat, name=f"mo-heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def dead(tags_: dict[str, str], now: float | None = None) -> str | None:
    """Why a RUNNING run's process is gone (None if it may be alive, or the run is not one of mo's)."""
    host, pid, beat = tags_.get("mo.host"), tags_.get("mo.pid", ""), tags_.get("mo.heartbeat", "")
    if host == socket.gethostname() and pid.isdigit():
        return None if psutil.pid_exists(int(pid)) else f"its process {pid} on {host} is gone"
    if beat.replace(".", "", 1).isdigit() and (now or time.time()) - float(beat) > GRACE:
        return f"no heartbeat from {host}:{pid} for over {GRACE:.0f} s"
    return None


def fail_dead_runs() -> list[str]:
    """End FAILED (with ``mo.error``) every RUNNING run in the store whose process is gone; returns their ids."""
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    failed = []
    if not experiments:
        return failed
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000):
        why = dead(run.data.tags)
        if why:
            client.set_tag(run.info.run_id, "mo.error", f"the run's process died: {why}")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed
