"""MLflow tracking: where runs go, what every run records, and how failures end.

The embedded default is a SQLite store in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` points mo at a tracking server instead. Every run records the git
commit, whether the tree was dirty, the versions of the packages that decide results, and
the machine (CPU, the instruction set torch's kernels use, threads, GPU), which decides
whether a rerun of the same command gives the same numbers bit for bit.
A run that raises is ended FAILED with the reason as a tag, so no run is left RUNNING.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import datasets
import mlflow
from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag

from mlproject import liveness, machine, outbox
from mlproject.errors import UserError
from mlproject.paths import REPO
from mlproject.redaction import redact

STORE_TIMEOUT = 5.0  # seconds a tracking store has to answer its first request
PACKAGES = ("mo", "torch", "transformers", "peft", "accelerate", "datasets", "mlflow", "optuna", "tokenizers")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def provenance() -> dict[str, str]:
    """Tags that say which code, which packages and which machine produced a run."""
    tags = {f"mo.version.{p}": _version(p) for p in PACKAGES}
    tags |= {f"mo.machine.{k}": v for k, v in machine.describe().items()}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["mo.git.dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no")))
    return tags


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@contextmanager
def run(experiment: str, name: str, params: Mapping[str, object] | None = None,
        nested: bool = False) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in ``experiment`` that ends FAILED (with ``mo.error``) if the body raises.

    Started while another run is active (``mo demo`` chaining steps), it is that run's child.
    Inside an MLflow Project entry point the project's run is resumed (MLflow sets
    ``MLFLOW_RUN_ID``), so ``mo`` and ``mlflow run`` record to the same run.
    """
    if not is_main():  # one run for a launch of several processes: the main one's
        yield None
        return
    mlflow.set_tracking_uri(tracking_uri())
    nested = nested or mlflow.active_run() is not None  # a step run inside another (the demo) is its child
    resumed = bool(os.environ.get("MLFLOW_RUN_ID")) and not nested
    if not resumed:
        _set_experiment(experiment)
    outbox.match_mlflow_retries()  # a wrong MO_TRACKING_WAIT is one line before the run starts, not after an outage
    outbox.upload(redact(tracking_uri()))  # measurements kept while the server was away: theirs first
    liveness.fail_dead_runs()  # runs of processes killed before they could end them
    active = mlflow.start_run(run_name=name, nested=nested, tags=provenance() | liveness.tags())
    run_id = active.info.run_id
    try:
        with liveness.heartbeat(run_id):
            if resumed:
                mlflow.set_tags(liveness.tags())  # `mlflow run` made the run: mo's process is the one to watch
            if params:
                # A resumed `mlflow run` run already holds the entry point's parameters as typed ("1"
                # for 1.0); MLflow refuses to change a logged value, so only the new ones are added.
                logged = mlflow.get_run(run_id).data.params if resumed else {}
                log_params({k: v for k, v in params.items() if k not in logged}, run_id)
            yield active
    except BaseException as err:
        if outbox.transient(err):  # a call mo does not route through the outbox met the outage: keep the rest
            outbox.give_up(run_id)
        reason = str(err) if isinstance(err, UserError | KeyboardInterrupt | outbox.Lost) and str(err) \
            else f"{type(err).__name__}: {err}"
        try:
            set_tags({"mo.error": reason[:5000]}, run_id)
            _end(run_id, "FAILED")
        except outbox.Lost as lost:
            if not isinstance(err, outbox.Lost):
                raise lost from err
        if outbox.transient(err):  # a call mo does not route through the outbox met the outage
            raise outbox.Lost(run_id, outbox.wait()) from err
        raise
    _end(run_id, "FINISHED")


def _end(run_id: str, status: str) -> None:
    """End the run ``status`` in the store (or on disk, through an outage) and take it off MLflow's stack."""
    record = {"op": "end", "status": status, "time": int(time.time() * 1000)}
    try:
        outbox.deliver(run_id, record, lambda: mlflow.MlflowClient().set_terminated(run_id, status))
    finally:
        active = mlflow.active_run()
        if active and active.info.run_id == run_id:
            # end_run takes the run off the stack before it tells the server: with the server away, that
            # second telling fails at once (the end is already kept on disk) and the stack is right
            with outbox.single_tries():
                try:
                    mlflow.end_run(status)
                except mlflow.exceptions.MlflowException:
                    if not outbox.lost(run_id):
                        raise


def loss_logger(every: int, offset: int = 0) -> Callable[[int, float], None]:
    """A training step hook that logs ``train.loss`` at every ``every``-th step of the run.

    A stage or phase that follows others passes the steps already run as ``offset``, so the
    run's loss curve is one line across them.
    """
    def log_loss(step: int, loss: float) -> None:
        if (offset + step) % every == 0:
            log_metrics({"train.loss": loss}, step=offset + step)

    return log_loss


def check_store(uri: str) -> None:
    """One line within seconds when the tracking store cannot answer, instead of minutes of retries.

    MLflow retries an unreachable server for minutes and a PostgreSQL store for as long, printing
    every attempt; one short request says the same at once.
    """
    shown = redact(uri)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=STORE_TIMEOUT).close()
        except urllib.error.HTTPError:
            return  # it answered: a server that wants credentials, or has no /health, is there
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise UserError("MLFLOW_TRACKING_URI", shown, f"tracking server unreachable ({reason})") from None
    elif uri.startswith("postgresql"):
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(STORE_TIMEOUT)})
            with engine.connect():
                pass
        except Exception as err:  # a missing database, a wrong password, no server
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise UserError("MLFLOW_TRACKING_URI", shown, f"database unreachable ({redact(first)})") from None
        finally:
            if "engine" in locals():
                engine.dispose()
    elif uri.startswith("sqlite:///"):
        _made_once(Path(uri.removeprefix("sqlite:///").split("?")[0]), uri)


def _made_once(db: Path, uri: str) -> None:
    """A fresh SQLite store's tables, made by one process: several starting at once on a new store (sweep workers,
    two terminals) each found no tables and made them, and all but one failed ("table ... already exists")."""
    if not db.parent.is_dir():
        raise UserError("MLFLOW_TRACKING_URI", redact(uri), f"no such folder: {db.parent}")
    try:
        with FileLock(db.with_name(f".{db.name}.lock")):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)  # MLflow makes or upgrades the tables here
    except Exception as err:  # not a database, a folder mo may not write in
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError("MLFLOW_TRACKING_URI", redact(uri), f"tracking store unusable ({redact(first)})") from None


def experiment(name: str):
    """The experiment ``name`` in the tracking store (None if there is none); one line if the store is unreadable."""
    check_store(tracking_uri())
    try:
        return mlflow.get_experiment_by_name(name)
    except Exception as err:  # a scheme MLflow does not know, a server that does not answer
        first = (str(err).splitlines() or [""])[0][:160]
        raise UserError("MLFLOW_TRACKING_URI", redact(tracking_uri()),
                        f"tracking store unreachable ({type(err).__name__}: {first})") from None


def _set_experiment(name: str) -> None:
    """Make ``name`` the active experiment, creating it if no one has.

    Several processes starting their first run at once (sweep workers, a team's clients) all find no
    experiment and all create it; the losers of that race must still log into it. ``mlflow.set_experiment``
    returns the winner's experiment there without making it active, so the loser's run would land in
    "Default": the experiment is found or made here and then set by its id.
    """
    check_store(tracking_uri())
    client = mlflow.MlflowClient()
    try:
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                client.create_experiment(name)
            except mlflow.exceptions.MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":  # already there: another process won the race
                    raise
            found = client.get_experiment_by_name(name)
    except Exception as err:  # an unreachable server surfaces here first
        raise UserError("MLFLOW_TRACKING_URI", redact(tracking_uri()),
                        f"tracking store unreachable ({type(err).__name__})") from None
    if found.lifecycle_stage != "active":
        raise UserError("experiment", name, "is deleted in the tracking store: restore it "
                        f"(mlflow experiments restore --experiment-id {found.experiment_id}) or remove it for good "
                        "(mlflow gc)")
    mlflow.set_experiment(experiment_id=found.experiment_id)


def _param(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return redact(text)[:6000]  # a storage or store URI in it: never its password


def fingerprint(ds: datasets.Dataset) -> str:
    """A content hash of a dataset: the same rows give the same fingerprint, on any machine."""
    h = hashlib.sha256()
    for batch in ds.with_format("arrow").iter(batch_size=4096):
        h.update(json.dumps(batch.to_pylist(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def is_main() -> bool:
    """Whether this process logs: the only one, or rank 0 of a launch (``torchrun`` and ``accelerate`` set
    ``RANK``; the others train and evaluate alongside it and log nothing)."""
    return os.environ.get("RANK", "0") == "0"


def _active_id(run_id: str | None) -> str:
    return run_id or mlflow.active_run().info.run_id


def log_metrics(metrics: Mapping[str, float], step: int | None = None, run_id: str | None = None) -> None:
    """Log ``metrics`` (to the active run unless ``run_id``) from the main process alone, through an outage."""
    if is_main():
        rid, values = _active_id(run_id), {k: float(v) for k, v in metrics.items()}
        outbox.deliver(rid, outbox.metrics_record(values, step),
                       lambda: mlflow.MlflowClient().log_batch(rid, metrics=[
                           Metric(k, v, int(time.time() * 1000), step or 0) for k, v in values.items()]))


def log_params(params: Mapping[str, object], run_id: str | None = None) -> None:
    """Log ``params`` (credentials masked) from the main process alone, through an outage."""
    if is_main():
        rid, values = _active_id(run_id), {k: _param(v) for k, v in params.items()}
        outbox.deliver(rid, {"op": "params", "values": values},
                       lambda: mlflow.MlflowClient().log_batch(rid, params=[Param(k, v) for k, v in values.items()]))


def set_tags(tags: Mapping[str, str], run_id: str | None = None) -> None:
    """Set ``tags`` on the run from the main process alone, through an outage."""
    if is_main():
        rid, values = _active_id(run_id), {k: redact(str(v)) for k, v in tags.items()}
        outbox.deliver(rid, {"op": "tags", "values": values},
                       lambda: mlflow.MlflowClient().log_batch(rid, tags=[RunTag(k, v) for k, v in values.items()]))


def log_table(data: Mapping[str, list], artifact_file: str) -> None:
    """``mlflow.log_table`` on the active run, through an outage."""
    rid, data = _active_id(None), {k: list(v) for k, v in data.items()}
    outbox.deliver(rid, {"op": "table", "data": data, "file": artifact_file},
                   lambda: mlflow.MlflowClient().log_table(rid, data, artifact_file))


def log_figure(figure, artifact_file: str) -> None:
    """A matplotlib figure (``.png``) or a plotly one (``.html``, self-contained) as an artifact, through an outage."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(artifact_file).name
        if hasattr(figure, "savefig"):
            figure.savefig(local)
        else:
            figure.write_html(str(local), include_plotlyjs=True)
        log_file(local, str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_file(local: str | Path, artifact_dir: str | None = None) -> None:
    """``mlflow.log_artifact`` on the active run, through an outage (the file is copied aside if kept)."""
    rid = _active_id(None)
    outbox.deliver(rid, {"op": "file", "local": str(local), "dir": artifact_dir},
                   lambda: mlflow.MlflowClient().log_artifact(rid, str(local), artifact_dir))


def log_world(world) -> None:
    """Write which world the active run draws from (a ``mo.world`` tag and its parameters) and log its data."""
    if not is_main():
        return
    set_tags({"mo.world": world.name})
    log_params({k: v for k, v in world.describe().items() if k != "world"})
    for name, data, source in world.datasets():
        log_dataset(data, name, "source", source=source)


def log_dataset(ds: datasets.Dataset, name: str, context: str, source: str = "toy-world") -> str:
    """Log ``ds`` as an MLflow dataset input; returns its fingerprint."""
    digest = fingerprint(ds)
    if not is_main():
        return digest
    with warnings.catch_warnings():
        # the schema is a description of the input, never used to read it back: MLflow's hint that
        # integer columns cannot hold missing values (gold answers, results) is not the user's concern
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        dataset = mlflow.data.huggingface_dataset.from_huggingface(ds, path=source, name=name, digest=digest)
        mlflow.log_input(dataset, context=context)  # the schema is inferred here
    return digest
