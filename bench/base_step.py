"""Median step time of `mo base` on this machine, and the rebuild time it projects.

    python bench/base_step.py [--steps 40] [--rounds 3]

A rebuild of the shipped base model is 7,300 steps of 32 conversations, so whether it fits
in 30 minutes depends on the machine (0.20 to 0.47 s a step on the 2-core machines
measured). This trains the main-stage mixture from fresh weights with the shipped settings
(plain AdamW, logits at every position: the sums that give the shipped weights) and, in the
same run, with the settings every other training uses (fused AdamW, logits at completion
positions only), alternating the two ``--rounds`` times, and prints the median step of each
and their ratio. Data and evaluation come on top: about 2 minutes where a rebuild took 30.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from mlproject import machine, training
from mlproject.toy import build
from pipelines import base

SHIPPED = base.BaseConfig()


def step_times(examples: list[training.Example], stage: training.TrainConfig, tokenizer) -> list[float]:
    """Seconds of every step but the first five (warm-up) of one training from fresh weights."""
    model = build.init_model(build.model_config(tokenizer, SHIPPED.hidden, SHIPPED.layers), SHIPPED.seed)
    stamps = [time.perf_counter()]
    training.sft(model, examples, stage, tokenizer.pad_token_id, on_step=lambda step, loss: stamps.append(time.perf_counter()), desc="bench")
    return [b - a for a, b in zip(stamps, stamps[1:])][5:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per training")
    parser.add_argument("--rounds", type=int, default=3, help="trainings per setting, alternated")
    args = parser.parse_args()
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine.describe().items()))
    tokenizer = build.build_tokenizer(SHIPPED.seed)
    # a fifth of the main stage's data: the same mixture, so the same lengths per batch
    examples = training.tokenize(tokenizer, base.main_mixture(dataclasses.replace(SHIPPED, examples=20_000)))
    shipped = base.stage_config(SHIPPED, args.steps)
    fast = dataclasses.replace(shipped, tail_logits=True, fused_adam=True)
    times: dict[str, list[float]] = {"shipped": [], "fast": []}
    for _ in range(args.rounds):
        for name, stage in (("shipped", shipped), ("fast", fast)):
            times[name] += step_times(examples, stage, tokenizer)
    median = {name: statistics.median(t) for name, t in times.items()}
    minutes = SHIPPED.steps * median["shipped"] / 60
    print(f"shipped settings (baseline): median step {median['shipped']:.3f} s -> {SHIPPED.steps} steps of training "
          f"in {minutes:.1f} min, then data and evaluation (about 2 min where a rebuild took 30)")
    print(f"fused AdamW, completion logits: median step {median['fast']:.3f} s "
          f"({median['shipped'] / median['fast']:.2f}x the baseline's speed; other sums, so not the shipped weights)")


if __name__ == "__main__":
    main()
