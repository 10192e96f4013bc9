"""Step time of `mo base` on this machine, per stage, and the rebuild time it projects.

    python bench/base_step.py [--steps 40] [--rounds 3] [--hidden 256 --layers 4]

A rebuild of the shipped base model is 500 steps of marker questions, 2,000 of drills and
4,800 of the main mixture, 32 conversations each, so whether it fits in 30 minutes depends
on the machine (0.20 to 0.47 s a main-stage step on the 2-core machines measured). This
trains each stage's data from fresh weights with the shipped settings (plain AdamW, logits
at every position: the sums that give the shipped weights), ``--rounds`` times, and
projects the training time from each stage's mean step (training time is a sum of steps,
slow ones included). On the main stage it alternates them with the settings every other
training uses (fused AdamW, logits at completion positions only: ``mo base --loop fast``)
and prints the ratio of the medians. Data and evaluation come on top: about 2 minutes
where a rebuild took 30.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import time

from transformers import PreTrainedTokenizerBase

from mlproject import machine, training
from mlproject.errors import UserError
from mlproject.toy import build
from pipelines import base, base_run

SHIPPED = base.BaseConfig()
MAIN = "base main"  # the stage both settings are compared on
WARMUP = 5  # untimed first steps of each training (allocation, first-call overheads)


def step_times(examples: list[training.Example], stage: training.TrainConfig, tokenizer: PreTrainedTokenizerBase,
               shape: base.BaseConfig = SHIPPED) -> list[float]:
    """Seconds of every step but the first ``WARMUP`` of one training from fresh weights of ``shape``'s width and
    depth."""
    model = build.init_model(build.model_config(tokenizer, shape.hidden, shape.layers), SHIPPED.seed)
    stamps = [time.perf_counter()]
    training.sft(model, examples, stage, tokenizer.pad_token_id,
                 on_step=lambda step, loss: stamps.append(time.perf_counter()), desc="bench")
    return [b - a for a, b in itertools.pairwise(stamps)][WARMUP:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per training")
    parser.add_argument("--rounds", type=int, default=3,
                        help="trainings per stage and setting, alternated on the main stage")
    parser.add_argument("--hidden", type=int, default=SHIPPED.hidden, help="model width (mo base --hidden)")
    parser.add_argument("--layers", type=int, default=SHIPPED.layers, help="transformer blocks (mo base --layers)")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps {args.steps}: must be > {WARMUP} "
                     f"(the first {WARMUP} steps of each training are not timed)")
    try:  # mo base's own checks of the shape
        shape = dataclasses.replace(SHIPPED, hidden=args.hidden, layers=args.layers)
    except UserError as err:
        parser.error(str(err))
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine.describe().items()))
    print(f"model: {shape.layers} blocks of width {shape.hidden}")
    tokenizer = build.build_tokenizer(SHIPPED.seed)
    shipped = base_run.stage_config(SHIPPED, args.steps)
    fast = base_run.stage_config(dataclasses.replace(SHIPPED, loop="fast"), args.steps)
    # the main stage's mixture at a fifth of its size: the same kinds of conversation, so the same lengths per batch
    main_rows = base.main_mixture(dataclasses.replace(SHIPPED, examples=20_000))
    stages = [(desc, steps, rows) for steps, rows, desc in base.first_stages(SHIPPED)]
    stages.append((MAIN, SHIPPED.steps - sum(steps for _, steps, _ in stages), main_rows))
    minutes = 0.0
    for desc, steps, rows in stages:
        examples = training.tokenize(tokenizer, rows)
        settings = (("shipped", shipped), ("fast", fast)) if desc == MAIN else (("shipped", shipped),)
        times: dict[str, list[float]] = {name: [] for name, _ in settings}
        for _ in range(args.rounds):
            for name, stage in settings:
                times[name] += step_times(examples, stage, tokenizer, shape)
        median = {name: statistics.median(t) for name, t in times.items()}
        mean = statistics.mean(times["shipped"])
        minutes += steps * mean / 60
        print(f"{desc:12s} {steps:5d} steps: median step {median['shipped']:.3f} s, mean {mean:.3f} s "
              "(shipped settings, the baseline)")
        if "fast" in median:
            print(f"{'':12s} --loop fast (fused AdamW, completion logits): median step {median['fast']:.3f} s, "
                  f"{median['shipped'] / median['fast']:.2f}x the baseline's speed "
                  "(other sums, so not the shipped weights)")
    print(f"projected training: {minutes:.1f} min for {SHIPPED.steps} steps, then data and evaluation "
          "(about 2 min where a rebuild took 30)")


if __name__ == "__main__":
    main()
