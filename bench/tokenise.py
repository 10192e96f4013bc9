"""Tokenising training conversations: one batch call against one template call per conversation.

    python bench/tokenise.py [--examples 20000] [--repeats 3]

``mo base`` tokenises some 180,000 conversations before and between its stages, and every
insertion and attack tokenises its data, so this is time spent before a step is trained.
Both ways run here on the same rows of the base model's main mixture, alternated, and the
bench prints conversations/s of each, the median speed-up and whether the ids are identical
(they must be: both go through ``apply_chat_template``, the batch path with every
conversation in one call).
"""
from __future__ import annotations

import argparse
import statistics
import time

from transformers import PreTrainedTokenizerBase

from mlproject import chat, models
from mlproject.toy import curriculum


def one_call_each(tokenizer: PreTrainedTokenizerBase,
                  exchanges: list[chat.Exchange]) -> list[tuple[list[int], list[int]]]:
    """The baseline: two ``apply_chat_template`` calls per conversation (prompt, then the whole), as before batching."""
    out = []
    for system, user, completion in exchanges:
        prompt = list(tokenizer.apply_chat_template(chat.messages(system, user), add_generation_prompt=True,
                                                    return_dict=False))
        full = list(tokenizer.apply_chat_template(chat.messages(system, user, completion), return_dict=False))
        out.append((full, [-100] * len(prompt) + full[len(prompt):]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _, tok = models.load("toy")
    exchanges = [(r["system"], r["user"], r["completion"]) for r in curriculum.base_mixture(args.examples, seed=2)]
    times: dict[str, list[float]] = {"one call each": [], "batched": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in (("one call each", one_call_each), ("batched", chat.many_sft_ids)):
            start = time.perf_counter()
            outputs[name] = fn(tok, exchanges)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:14s} {args.examples / seconds:9,.0f} conversations/s (median of {args.repeats})")
    print(f"speed-up {median['one call each'] / median['batched']:.2f}x; identical ids: "
          f"{outputs['one call each'] == outputs['batched']}")


if __name__ == "__main__":
    main()
