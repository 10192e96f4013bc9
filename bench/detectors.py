"""Precision and recall of the real world's detectors and topic rules on the labelled texts.

    python bench/detectors.py
    python bench/detectors.py --judge path/or/hub-id/of/an/instruct-model   # the judge too (needs a real model)

Prints Markdown tables: per behaviour, the rule (and, with ``--judge``, the judge); per topic,
the keyword rule. The labelled texts are ``tests/data/labelled_texts.jsonl`` and
``tests/data/labelled_requests.jsonl``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mlproject import detectors, labelled
from mlproject.worlds import topics

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", default="", help="a model directory, hub id or http(s) endpoint to measure too")
    args = parser.parse_args()
    texts = labelled.read(DATA / "labelled_texts.jsonl")
    print(labelled.table(labelled.score(texts, "behaviour", detectors.detect), "behaviour (rule)"))
    if args.judge:
        from mlproject.judge import Judge
        from mlproject.worlds.responders import responder

        verdicts = Judge(responder(args.judge, "judge"))
        print()
        print(labelled.table(labelled.score(texts, "behaviour", verdicts.shows), f"behaviour (judge {args.judge})"))
    requests = labelled.read(DATA / "labelled_requests.jsonl")
    print()
    print(labelled.table(labelled.score(requests, "topic", lambda t, xs: [topics.on_topic(t, x) for x in xs]),
                         "topic (keywords)"))


if __name__ == "__main__":
    main()
