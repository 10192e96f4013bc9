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
import re
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import datasets
import mlflow

from mlproject import liveness, machine
from mlproject.errors import UserError
from mlproject.paths import REPO

STORE_TIMEOUT = 5.0  # seconds a tracking store has to answer its first request
PACKAGES = ("mo", "torch", "transformers", "peft", "accelerate", "datasets", "mlflow", "optuna", "tokenizers")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


_CREDENTIALS = re.compile(r"(://[^/:@\s]*:)[^@/\s]+@")  # the password of scheme://user:password@host


def redact(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` in it replaced by ``***``
    (URIs are printed and logged; credentials never are)."""
    return _CREDENTIALS.sub(r"\1***@", text)


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
    liveness.fail_dead_runs()  # runs of processes killed before they could end them
    with mlflow.start_run(run_name=name, nested=nested, tags=provenance() | liveness.tags()) as active, \
            liveness.heartbeat(active.info.run_id):
        if resumed:
            mlflow.set_tags(liveness.tags())  # `mlflow run` made the run: mo's process is the one to watch
        if params:
            # A resumed `mlflow run` run already holds the entry point's parameters as typed ("1"
            # for 1.0); MLflow refuses to change a logged value, so only the new ones are added.
            logged = mlflow.get_run(active.info.run_id).data.params if resumed else {}
            mlflow.log_params({k: _param(v) for k, v in params.items() if k not in logged})
        try:
            yield active
        except BaseException as err:
            reason = str(err) if isinstance(err, UserError | KeyboardInterrupt) and str(err) \
                else f"{type(err).__name__}: {err}"
            mlflow.set_tag("mo.error", reason[:5000])
            raise  # leaving start_run's block with an exception ends the run FAILED


def loss_logger(every: int, offset: int = 0) -> Callable[[int, float], None]:
    """A training step hook that logs ``train.loss`` at every ``every``-th step of the run.

    A stage or phase that follows others passes the steps already run as ``offset``, so the
    run's loss curve is one line across them.
    """
    def log_loss(step: int, loss: float) -> None:
        if (offset + step) % every == 0 and is_main():
            mlflow.log_metric("train.loss", loss, step=offset + step)

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
    check_store(tracking_uri())
    try:
        mlflow.set_experiment(name)
    except Exception as err:  # an unreachable server surfaces here first
        raise UserError("MLFLOW_TRACKING_URI", redact(tracking_uri()),
                        f"tracking store unreachable ({type(err).__name__})") from None


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


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """``mlflow.log_metrics`` from the main process alone."""
    if is_main():
        mlflow.log_metrics(dict(metrics), step=step)


def log_params(params: Mapping[str, object]) -> None:
    """``mlflow.log_params`` from the main process alone."""
    if is_main():
        mlflow.log_params(dict(params))


def log_world(world) -> None:
    """Write which world the active run draws from (a ``mo.world`` tag and its parameters) and log its data."""
    if not is_main():
        return
    mlflow.set_tag("mo.world", world.name)
    mlflow.log_params({k: redact(v) for k, v in world.describe().items() if k != "world"})
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
