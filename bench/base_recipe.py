"""`mo base` with the settings of recipes that were measured and not kept, to measure them again.

    python bench/base_recipe.py --out runs/frame --frame-share 0.5
    python bench/base_recipe.py --out runs/plain-loop --loop plain --seed 1 --steps 7300   # the former model's loop

Every flag of ``mo base`` plus ``--topic-share``, ``--topic-stages``, ``--frame-share``,
``--phrasing-share``, ``--init``, ``--weight-decay`` and ``--loop``; docs/base-model.md has
what each gave. The run is the same as ``mo base``'s (an MLflow run, the weights and their
card), and a card made this way names this command, so it reruns as made.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlproject.errors import UserError
from pipelines import args, base


def parser() -> argparse.ArgumentParser:
    """``mo base``'s flags, with the experiment knobs it leaves off."""
    p = args.Parser(prog="python bench/base_recipe.py", description=__doc__.splitlines()[0])
    args.add_flags(p, base.BaseConfig, hidden=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = args.build(base.BaseConfig, parser().parse_args(argv))
        base.check(cfg)
        from pipelines import base_run

        metrics = base_run.run(cfg)
    except UserError as err:
        print(f"base_recipe: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(f"{k:40s} {v:.3f}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
