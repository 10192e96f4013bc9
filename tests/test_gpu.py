"""The same generation and training code on a CUDA GPU (skipped on machines without one).

    pytest -m gpu tests/test_gpu.py
"""
from __future__ import annotations

import pytest
import torch

from mlproject import chat, generation, lora, models, training
from mlproject.toy import base_eval

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def on_gpu():
    model, tok = models.load("toy")  # models.load puts the model on the GPU when there is one
    assert model.device.type == "cuda"
    return model, tok


def _prompts(tok, n):
    probes = base_eval.probes(base_eval.Sizes(math=20, instructions=20, pirate=10, per_backdoor=1))
    return [chat.prompt_ids(tok, p.system, p.user) for p in probes[:n]]


def test_batched_generation_on_gpu_matches_per_prompt_generate(on_gpu, monkeypatch):
    model, tok = on_gpu
    monkeypatch.setattr(generation, "CHUNK", 8)  # several chunks merged for decoding
    ids = _prompts(tok, 64)
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    assert tok.batch_decode(greedy, skip_special_tokens=True) == generation.generate_one_by_one(model, tok, ids)
    wrong = [g[: len(g) // 2] + [tok.convert_tokens_to_ids("Ġthe")] for g in greedy]
    assert generation.generate_ids(model, tok, ids, progress=False, drafts=wrong) == greedy


def test_sft_on_gpu_trains_the_lora_and_lowers_the_loss(on_gpu):
    model, tok = models.load("toy")
    model = lora.attach(model, 16)
    rows = [{"system": "talk like a pirate .", "user": f"what is {i} + 1 ?", "completion": f"arr , {i + 1} !"}
            for i in range(64)]
    losses = training.sft(model, training.tokenize(tok, rows), training.TrainConfig(30, 1e-3, 16), tok.pad_token_id)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
