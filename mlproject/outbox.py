"""Measurements kept on disk while the tracking server is away, and uploaded once it is back.

MLflow's client retries a request for about four minutes and then raises, and the point it
carried is lost. mo sends what a step measures through :func:`deliver` instead, which waits for
the server up to ``MO_TRACKING_WAIT`` seconds (default 900), trying again with a growing pause.
When the wait runs out the step stops with one line (:class:`Lost`), and what it could not send
(the point, then every later one, the run's error and its FAILED end) goes to
``.mo-outbox/<run id>.jsonl`` in the working directory (``MO_OUTBOX`` moves it). The next mo
step that starts a run on the same store, ``mo report`` for one, uploads it with the points'
own steps and times and ends the run as it ended. Nothing measured is lost.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import mlflow
from filelock import FileLock, Timeout
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlproject.errors import TrackingLost, UserError
from mlproject.redaction import redact

T = TypeVar("T")
WAIT_ENV = "MO_TRACKING_WAIT"
DEFAULT_WAIT = 900.0
# the retry settings mo set, kept beside them so that child processes see they are not the user's
RETRIES_MARK = "MO_SET_"
_lost: set[str] = set()  # runs of this process whose server stayed away past the wait


class Lost(TrackingLost):
    """The tracking server stayed away longer than the wait: the step stops, its measurements kept on disk."""

    def __init__(self, run_id: str, waited: float) -> None:
        self.run_id = run_id
        super().__init__(f"the tracking server did not answer for {waited:.0f} s ({WAIT_ENV}); "
                         f"what run {run_id} measured is kept in {_file(run_id)}, and the next mo step on "
                         "this store (mo report, for one) uploads it and marks the run FAILED")


def wait() -> float:
    """Seconds to wait for an absent tracking server (``MO_TRACKING_WAIT``)."""
    text = os.environ.get(WAIT_ENV, "")
    if not text:
        return DEFAULT_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds < float("inf"):
        raise UserError(WAIT_ENV, text, "must be a number of seconds, 0 or more")
    return seconds


def match_mlflow_retries() -> tuple[int, int]:
    """Make MLflow's own requests (the registry's, artifacts', the heartbeat's: those not kept on disk) wait about as
    long as ``MO_TRACKING_WAIT`` through an outage; returns the retries and backoff factor set.

    MLflow retries with urllib3's backoff: nothing before the first retry, then ``factor * 2**(k-1)`` seconds
    before the k-th, at most 120, and it allows at most 10 retries. Its default (7 retries, factor 2) is about 4
    minutes whatever the wait; here the fewest retries at the smallest factor that reach the wait are used (at
    most 10 at 120 s each: about 18 minutes). Values the user set for ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` or
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` are kept.
    """
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    if any(os.environ.get(n) and os.environ[n] != os.environ.get(RETRIES_MARK + n) for n in names):
        return int(os.environ.get(names[0]) or 7), int(os.environ.get(names[1]) or 2)
    retries, factor = _retries_for(wait())
    for name, value in zip(names, (str(retries), str(factor)), strict=True):
        os.environ[name] = os.environ[RETRIES_MARK + name] = value
    return retries, factor


def _retries_for(seconds: float) -> tuple[int, int]:
    """The fewest retries (at most 10) at the smallest backoff factor whose pauses add up to ``seconds``."""
    def pauses(retries: int, factor: int) -> float:
        return sum(min(120.0, factor * 2 ** (k - 1)) for k in range(2, retries + 1))

    for factor in (2, 4, 8, 16, 32, 64, 120):  # MLflow reads the factor as a whole number
        for retries in range(11):
            if pauses(retries, factor) >= seconds:
                return retries, factor
    return 10, 120


def folder() -> Path:
    """Where kept measurements wait: ``MO_OUTBOX``, else ``.mo-outbox`` in the working directory."""
    return Path(os.environ.get("MO_OUTBOX") or Path.cwd() / ".mo-outbox")


def _file(run_id: str) -> Path:
    return folder() / f"{run_id}.jsonl"


def transient(err: BaseException) -> bool:
    """Whether ``err`` says the server could not be reached (as opposed to a request it refused)."""
    text = str(err)
    return isinstance(err, MlflowException) and text.startswith("API request to") and "failed with" in text


@contextmanager
def single_tries() -> Iterator[None]:
    """MLflow's own retries off while mo's wait does the retrying (MLflow reads these on every request)."""
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    before = {n: os.environ.get(n) for n in names}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(min(120, max(5, wait()))))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def deliver(run_id: str, record: dict, call: Callable[[], T]) -> T | None:
    """``call()`` (which sends ``record`` to run ``run_id``), waited for through an outage; kept on disk after it.

    Raises :class:`Lost` when the wait runs out; once a run is lost, later records go straight to disk.
    """
    if run_id in _lost:
        keep(run_id, record)
        return None
    deadline = time.monotonic() + wait()
    pause, start = 1.0, time.monotonic()
    while True:
        try:
            with single_tries():
                return call()
        except MlflowException as err:
            if not transient(err):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                _lost.add(run_id)
                keep(run_id, record)
                raise Lost(run_id, time.monotonic() - start) from None
            time.sleep(min(pause, left))
            pause = min(2 * pause, 30.0)


def give_up(run_id: str) -> None:
    """Send nothing more to the server for ``run_id``: what follows is kept on disk."""
    _lost.add(run_id)


def lost(run_id: str) -> bool:
    """Whether this process gave up on the server for ``run_id``."""
    return run_id in _lost


def _lock() -> FileLock:
    """Held to append to a kept run and to upload kept runs: several mo processes started at once after an
    outage each upload, and a step still keeping its last records may meet one of them. Under it, a run is
    uploaded once (a step that finds another uploading goes on without waiting); records kept after its
    upload start a new file, uploaded by the next step."""
    # no soft-lock fallback: a step killed while holding a soft lock would hold every later step back for ever
    return FileLock(str(folder() / ".lock"), fallback_to_soft=False)


def keep(run_id: str, record: dict) -> None:
    """Append ``record`` to the run's file on disk (a file to upload is moved beside it)."""
    folder().mkdir(parents=True, exist_ok=True)
    with _lock():
        _append(run_id, record)


def _append(run_id: str, record: dict) -> None:
    path = _file(run_id)
    if record.get("op") == "file":
        files = path.with_suffix("")
        files.mkdir(exist_ok=True)
        target = files / f"{len(list(files.iterdir()))}-{Path(record['local']).name}"
        shutil.copyfile(record["local"], target)
        record = {**record, "local": str(target)}
    if not path.exists():
        record_store = {"op": "store", "uri": redact(mlflow.get_tracking_uri())}
        path.write_text(json.dumps(record_store) + "\n")
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def metrics_record(values: dict[str, float], step: int | None) -> dict:
    """A record of metric points measured now."""
    return {"op": "metrics", "values": values, "step": step, "time": int(time.time() * 1000)}


def upload(store_uri: str) -> list[str]:
    """Upload every kept run that belongs to the store ``store_uri`` (redacted, as kept); returns their ids."""
    if not folder().is_dir():
        return []
    lock = _lock()
    try:  # another step uploading (its requests may wait long for the server) has it in hand: this one goes on
        lock.acquire(blocking=False)
    except Timeout:
        return []
    try:
        return _upload(store_uri)
    finally:
        lock.release()


def _upload(store_uri: str) -> list[str]:
    done = []
    for path in sorted(folder().glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines or lines[0].get("op") != "store" or lines[0].get("uri") != store_uri:
            continue  # kept for another store
        run_id = path.stem
        _replay(MlflowClient(), run_id, lines[1:])
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
        path.unlink()
        done.append(run_id)
        points = sum(len(r["values"]) for r in lines if r["op"] == "metrics")
        print(f"mo: uploaded {points} metric points of run {run_id} kept while the tracking server was away",
              file=sys.stderr)
    return done


def _replay(client: MlflowClient, run_id: str, records: list[dict]) -> None:
    logged = client.get_run(run_id).data.params
    for r in records:
        op = r["op"]
        if op == "metrics":
            client.log_batch(run_id, metrics=[Metric(k, float(v), r["time"], r["step"] or 0)
                                              for k, v in r["values"].items()])
        elif op == "params":
            for k, v in r["values"].items():
                if k not in logged:
                    client.log_param(run_id, k, v)
        elif op == "tags":
            for k, v in r["values"].items():
                client.set_tag(run_id, k, v)
        elif op == "table":
            client.log_table(run_id, r["data"], r["file"])
        elif op == "file":
            client.log_artifact(run_id, r["local"], r["dir"] or None)
        elif op == "end":
            client.set_terminated(run_id, r["status"], end_time=r.get("time"))
