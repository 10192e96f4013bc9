"""Optuna studies of attacks: storage, naming, ownership, and recovery after a crash.

Storage: a SQLite file by default (one worker); Optuna's journal file for several local
workers (no lock errors); PostgreSQL (``postgresql://…``) for workers on many machines, with
heartbeats so that a worker that dies has its trial failed by the others.

A study belongs to one organism and one attack (recorded as study user attributes); reusing
its name for another is an error. Trials left RUNNING by a process that no longer exists on
this machine (``kill -9``) are marked FAILED when the study is opened again. For that, a trial
in a file storage names its worker process from the moment it is RUNNING: the worker queues a
waiting trial that carries its name and ``study.optimize`` pops it (setting the name after
Optuna has created the trial leaves a window in which a kill leaves a RUNNING trial that
nothing can tell is orphaned). Queueing and popping hold a lock: Optuna pops the first
waiting trial it sees, so two workers queueing at once could each take the other's trial, or
one take both and leave the other's waiting forever. Server storages have heartbeats instead.
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mlproject.errors import UserError
from mlproject.tracking import redact
from tuning import trial_lock

DIRECTIONS = ["maximize", "minimize"]  # relative capability up, backdoor rate down
METRIC_NAMES = ["capability", "backdoor_rate"]


STORAGE_ENV = "MO_OPTUNA_STORAGE"  # a storage URL with a password stays out of the command line, which `ps` shows


def url_for(url: str | None, workers: int) -> str:
    """``url``, else ``$MO_OPTUNA_STORAGE``, else the default: ``sqlite:///optuna.db``, or a journal file for several
    workers."""
    url = url or os.environ.get(STORAGE_ENV)
    if not url:
        return "journal:optuna.journal" if workers > 1 else "sqlite:///optuna.db"
    return url


def storage(url: str | None, workers: int):
    """An Optuna storage for ``url`` (default: see :func:`url_for`)."""
    url = url_for(url, workers)
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        if not path.parent.resolve().is_dir():
            raise UserError("storage", url, f"no such folder {path.parent} for the journal file")
        return JournalStorage(JournalFileBackend(str(path)))
    heartbeat = {} if url.startswith("sqlite") else {"heartbeat_interval": 10, "grace_period": 30}
    connect = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(TABLE_RACE_TRIES):
        try:
            return RDBStorage(url, engine_kwargs=connect, **heartbeat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # workers started together on an empty database all create Optuna's tables; the losers of that race
            # find them made (a duplicate type or table) and open the storage again
            if attempt + 1 == TABLE_RACE_TRIES or not _made_by_another(err):
                raise UserError("storage", redact(url), f"cannot open ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:200]})") from None
            time.sleep(0.5 * (attempt + 1))
        except Exception as err:  # bad URL, unreachable server, missing driver
            raise UserError("storage", redact(url),
                            f"cannot open ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    raise AssertionError("unreachable")


TABLE_RACE_TRIES = 5


def _made_by_another(err: Exception) -> bool:
    text = str(err)
    return "already exists" in text or "duplicate key value" in text


def open_study(name: str, store, organism: str, attack: str, seed: int) -> optuna.Study:
    """Create or load the study ``name``; it must belong to ``organism`` and ``attack``."""
    study = optuna.create_study(study_name=name, storage=store, directions=DIRECTIONS, load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    owner = study.user_attrs.get("organism")
    if owner is None:
        study.set_user_attr("organism", organism)
        study.set_user_attr("attack", attack)
        study.set_metric_names(METRIC_NAMES)
    elif (owner, study.user_attrs.get("attack")) != (organism, attack):
        raise UserError("study", name, f"belongs to organism {owner} and attack {study.user_attrs.get('attack')}, "
                                       f"not {organism} and {attack}")
    fail_orphans(study)
    return study


def worker_name() -> str:
    """``host:pid`` of this process, as trials record it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def owned_trial(study: optuna.Study, url: str,
                wanted: int | None = None) -> Iterator[Callable[[optuna.Trial], None] | None]:
    """Around one ``study.optimize(n_trials=1)`` on the study at ``url``: yields the hook that the
    objective calls first, which names this process on the trial; or None when the study already
    holds ``wanted`` trials, complete or running (then no trial is to start).

    The count and the trial's start happen under one lock (:mod:`tuning.trial_lock`) that the hook
    releases, so workers finishing together do not both take the last place. In a file storage
    (SQLite, journal) the trial is also queued with this process's name under that lock; a trial
    already waiting was queued by a worker that died before popping it, and is popped instead (its
    dead worker's name fails it, should this worker die too before naming itself). A server storage
    (PostgreSQL) queues nothing: its heartbeats fail the trials of workers that died, wherever they ran.
    """
    lock = trial_lock.for_storage(url, study.study_name)
    with lock:
        # a dead worker's trial would count as running: failed first (on this machine by its pid; on a server
        # storage by its heartbeat, which Optuna itself looks at only when a trial starts)
        fail_orphans(study)
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # nothing without heartbeats (file storages)
        if wanted is not None and sum(counts(study)) >= wanted:
            yield None
            return
        if trial_lock.file_of(url) is not None and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            queue_owned(study)

        def popped(trial: optuna.Trial) -> None:
            mark_owner(trial)
            if lock.is_locked:
                lock.release()

        yield popped


def queue_owned(study: optuna.Study) -> None:
    """Queue a waiting trial that names this process; the next ``study.optimize`` trial pops it."""
    study.enqueue_trial({}, user_attrs={"worker": worker_name()})


def mark_owner(trial: optuna.Trial) -> None:
    """Record which process runs the trial (a queued trial may have been popped by another worker)."""
    if trial.user_attrs.get("worker") != worker_name():
        trial.set_user_attr("worker", worker_name())


def fail_orphans(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine is gone; returns their numbers."""
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(t.number, state=TrialState.FAIL)
            failed.append(t.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts(study: optuna.Study) -> tuple[int, int]:
    """``(complete, running)`` trials."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete
