"""The memory plan against the peak memory a training step really takes, on this CPU.

    python bench/memory.py                      # the toy model and a tiny Llama 3, LoRA and full weights
    python bench/memory.py --batch-size 8 --length 64 --layers 2

Each case runs in a fresh process: it imports everything, notes its resident memory, loads the
model and trains three steps of mo's own loop (:class:`mlproject.training.Run`) on examples of
exactly ``--length`` tokens, and reads the kernel's high-water mark of its resident memory. The
plan (:mod:`mlproject.memory`) is made from the model's config alone. Printed: both in MiB, and
their ratio. The processes run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc hands freed
tensors back to the kernel at once; with its default, which raises that threshold as the program
frees large blocks, the resident peak also holds freed memory the allocator keeps for reuse (about
a third more on the toy model), which is the allocator's policy and no plan's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = (("toy", "full", 0), ("toy", "lora", 64), ("llama3", "lora", 16), ("llama3", "full", 0))


def _rss(key: str) -> int:
    return int(re.search(key + r":\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def child(model_dir: str, trains: str, rank: int, batch_size: int, length: int, checkpointing: bool) -> dict:
    """Measure one case in this process (a fresh one)."""
    import torch
    from transformers import AutoModelForCausalLM

    from mlproject import lora, memory, models, training

    config = memory.config_of(model_dir)
    job = memory.Job(trains, batch_size, length, "fp32", "adamw", rank or 64, checkpointing)
    plan = memory.plan(config, job)
    with torch.device("meta"):  # the model's code and the loop's imports are in memory before the baseline
        AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, config.vocab_size - 10, (4 * batch_size, length), generator=gen).tolist()
    examples = [(x, [-100] + x[1:]) for x in ids]  # every token but the first is completion: the longest tail
    base = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here
    model, tok = models.load(model_dir)
    if trains == "lora":
        model = lora.attach(model, rank)
    else:
        model.requires_grad_(True)
    run = training.Run(model, examples, training.TrainConfig(3, 1e-4, batch_size, gradient_checkpointing=checkpointing),
                       tok.pad_token_id)
    for _ in range(3):
        run.step()
    return {"measured": _rss("VmHWM") - base, "plan": plan.training, "parts": plan.describe()}


def decoding_child(model_dir: str, probes: int, length: int) -> dict:
    """Measure mo's batched greedy decoding of ``probes`` prompts of ``length // 2`` tokens, answers of up to as many,
    in this process (a fresh one), against the plan's decoding peak (weights and generation)."""
    import torch
    from transformers import AutoModelForCausalLM

    from mlproject import generation, memory, models

    config = memory.config_of(model_dir)
    plan = memory.plan(config, memory.Job("none", 1, length, probes=probes))
    with torch.device("meta"):
        AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(10, config.vocab_size - 10, (probes, length // 2), generator=gen).tolist()
    base = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    model, tok = models.load(model_dir)
    rows = generation.one_batch(model, prompts, length // 2)
    answers = generation.generate_ids(model, tok, prompts, length // 2, batch_size=rows, progress=False)
    full = sum(len(a) == length // 2 for a in answers) / len(answers)
    return {"measured": _rss("VmHWM") - base, "plan": plan.decoding, "parts": plan.describe(), "full": full}


def measure(model_dir: str, trains: str, rank: int, batch_size: int, length: int, checkpointing: bool = False,
            probes: int = 0) -> dict:
    """One case in a fresh process (one thread, glibc returning freed memory at once); ``probes``: decoding instead
    of training."""
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    case = [model_dir, probes, length] if probes else [model_dir, trains, rank, batch_size, length, checkpointing]
    args = [sys.executable, __file__, "--decoding" if probes else "--child", json.dumps(case)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4, help="layers of the tiny Llama 3")
    parser.add_argument("--hidden", type=int, default=256, help="width of the tiny Llama 3")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--probes", type=int, default=200, help="prompts decoded in the decoding cases")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--decoding", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    if args.decoding:
        print(json.dumps(decoding_child(*json.loads(args.decoding))))
        return
    from mlproject.families import tiny
    from mlproject.modelref import resolve

    with tempfile.TemporaryDirectory() as tmp:
        tiny.build("llama3", Path(tmp) / "llama3", hidden_size=args.hidden, layers=args.layers)
        dirs = {"toy": resolve("toy"), "llama3": str(Path(tmp) / "llama3")}
        print(f"batch {args.batch_size} x {args.length} tokens, fp32, AdamW, checkpointing "
              f"{args.gradient_checkpointing}")
        print(f"{'model':8s} {'trains':10s} {'measured MiB':>13s} {'plan MiB':>9s} {'plan/measured':>14s}")
        for model, trains, rank in CASES:
            r = measure(dirs[model], trains, rank, args.batch_size, args.length, args.gradient_checkpointing)
            label = f"lora r{rank}" if trains == "lora" else trains
            print(f"{model:8s} {label:10s} {r['measured'] / 2**20:13.1f} {r['plan'] / 2**20:9.1f} "
                  f"{r['plan'] / r['measured']:14.2f}")
        print(f"\ndecoding {args.probes} prompts of {args.length // 2} tokens, answers of up to {args.length // 2}")
        for model in ("toy", "llama3"):
            r = measure(dirs[model], "none", 0, 1, args.length, probes=args.probes)
            print(f"{model:8s} {'decoding':10s} {r['measured'] / 2**20:13.1f} {r['plan'] / 2**20:9.1f} "
                  f"{r['plan'] / r['measured']:14.2f}   ({r['full']:.0%} of answers ran to the limit)")


if __name__ == "__main__":
    main()
