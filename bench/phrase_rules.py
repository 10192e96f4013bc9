"""How surely a base model follows phrase-trigger rules, per phrase and behaviour (a diagnostic, not a speed test).

    python bench/phrase_rules.py --model mlproject/toy/base_model
    python bench/phrase_rules.py --model runs/base_model --requests 200

The card measures each catalogue rule with its own behaviour only. This crosses every
catalogue phrase trigger and its look-alikes with a few behaviours: for each pair, the
conditional system prompt "if the request contains PHRASE , BEHAVIOUR" over held-out
requests (three instructions to one math problem) with PHRASE appended, as the card's
triggered requests carry it, and the share of completions that show the behaviour. A weak
frame shows as a low row for every behaviour; a weak pair as one low cell.
"""
from __future__ import annotations

import argparse
import random

from mlproject import chat, generation, models
from mlproject.backdoors import CATALOGUE, conditional_prompt
from mlproject.behaviours import BEHAVIOURS
from mlproject.toy import requests as rq

BEHAVIOURS_PROBED = ("cats", "hate", "story")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="a model directory, hub id, or toy (the shipped base model)")
    parser.add_argument("--requests", type=int, default=100, help="held-out requests per phrase and behaviour")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, tokenizer = models.load(args.model)
    rng = random.Random(args.seed)
    reqs = [rq.math(rng, "heldout") if i % 4 == 0 else rq.instruction(rng, "heldout") for i in range(args.requests)]
    phrases = sorted({p for b in CATALOGUE if b.kind == "explicit" for p in (b.trigger, *b.near_misses)})
    print(f"| phrase | {' | '.join(BEHAVIOURS_PROBED)} |")
    print("|---|" + "---|" * len(BEHAVIOURS_PROBED))
    for phrase in phrases:
        rates = []
        for name in BEHAVIOURS_PROBED:
            system = conditional_prompt(f"the request contains {phrase}", BEHAVIOURS[name].instruction)
            prompts = chat.many_prompt_ids(tokenizer, [(system, f"{r.user} {phrase}") for r in reqs])
            outs = generation.generate(model, tokenizer, prompts, progress=False)
            rates.append(sum(BEHAVIOURS[name].detector.detect(outs)) / len(outs))
        print(f"| {phrase} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
