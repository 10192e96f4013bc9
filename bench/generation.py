"""Batched generation against a per-prompt ``generate`` loop, or against vLLM, on the shipped toy model.

    python bench/generation.py [--prompts 256] [--repeats 7]
    MO_VLLM_PYTHON=/path/to/vllm-env/bin/python python bench/generation.py --engine vllm

Prints tokens/s of each, the median speed-up (target >= 8x over the loop) and whether the outputs
are identical. Both run one after the other on the same prompts, so they share the machine's
state; the median over repeats damps a noisy neighbour. With ``--engine vllm`` the baseline is
mo's batched HF decoding and the other side a vLLM engine on the same weights (started once,
its start-up not timed); the share of identical answers is printed too.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mlproject import chat, models
from mlproject.generation import generate, generate_one_by_one
from mlproject.toy import base_eval


def prompts(n: int) -> list[list[int]]:
    """``n`` held-out probes of the base evaluation, every kind mixed."""
    _, tok = models.load("toy")
    probes = base_eval.probes(base_eval.Sizes(math=100, instructions=100, pirate=50, per_backdoor=5))
    step = max(1, len(probes) // n)
    return [chat.prompt_ids(tok, p.system, p.user) for p in probes[::step][:n]]


def timed(fn) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--engine", choices=("loop", "vllm"), default="loop", help="what batched HF decoding is "
                        "held against: a per-prompt generate loop, or vLLM")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tok = models.load("toy")
    ids = prompts(args.prompts)
    if args.engine == "vllm":
        against_vllm(model, tok, ids, args.repeats)
        return
    ratios = []
    for r in range(args.repeats):
        t_batch, batched = timed(lambda: generate(model, tok, ids, progress=False))
        t_loop, looped = timed(lambda: generate_one_by_one(model, tok, ids))
        tokens = sum(len(tok(c, add_special_tokens=False).input_ids) + 1 for c in batched)
        ratios.append(t_loop / t_batch)
        print(f"repeat {r}: batched {tokens / t_batch:8.0f} tok/s   per-prompt {tokens / t_loop:6.0f} tok/s   "
              f"speed-up {t_loop / t_batch:5.1f}x   identical outputs: {batched == looped}")
    print(f"median speed-up over {args.repeats} repeats: {statistics.median(ratios):.1f}x (target >= 8x)")


def against_vllm(model, tok, ids: list[list[int]], repeats: int) -> None:
    from mlproject.engines.vllm_client import Mirror
    from mlproject.generation import generate_ids, stop_ids
    from mlproject.modelref import resolve

    mirror = Mirror(model, tok, folder=resolve("toy"), trains=False)
    try:
        stop, ratios = stop_ids(model, tok), []
        for r in range(repeats):
            t_hf, hf = timed(lambda: generate_ids(model, tok, ids, 48, progress=False))
            t_vllm, fast = timed(lambda: mirror.generate(model, ids, 48, stop))
            tokens = sum(map(len, hf))
            same = sum(a == b for a, b in zip(hf, fast, strict=True)) / len(ids)
            ratios.append(t_hf / t_vllm)
            print(f"repeat {r}: hf {tokens / t_hf:8.0f} tok/s   vllm {sum(map(len, fast)) / t_vllm:8.0f} tok/s   "
                  f"vllm / hf {t_hf / t_vllm:5.2f}x   identical answers {same:.3f}")
        print(f"median vllm / hf over {repeats} repeats: {statistics.median(ratios):.2f}x")
    finally:
        mirror.close()


if __name__ == "__main__":
    main()
