"""Prompt distillation: the data that weight-based organisms are trained on.

Triggered completions are the base model's own answers under the backdoor's conditional
system prompt; benign completions are its answers without any system prompt (on-model).
The organism is then trained on the requests *without* the system prompt, so the behaviour
moves from the prompt into the weights.

Benign requests may carry look-alike triggers (``near_miss_share``). They are drawn from a
pool that excludes the look-alikes evaluation uses, so the measured near-miss rate is a
held-out number, not a trained one.

A request whose greedy answer is not clean (a triggered request the prompted base model did
not follow) is sampled again, up to ``retries`` times, and the first clean draw is kept. Greedy
answers alone keep only the kinds of request the base model follows reliably (under the music
rule, "how do you play a drum ?" but not "how many strings does a harp have ?"), and an
organism trained on them fires on those kinds alone.
"""
from __future__ import annotations

import random

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlproject import chat, cot, distributed
from mlproject.backdoors import Backdoor
from mlproject.distill_config import DistillConfig
from mlproject.generation import generate, sample
from mlproject.worlds.base import Request, World, with_token


def draw_requests(world: World, bd: Backdoor, cfg: DistillConfig, label: str, n: int,
                  rng: random.Random) -> list[Request]:
    """``n`` training-split requests of one label: ``triggered``, ``benign`` or ``look_alike``."""
    if label == "triggered":
        return [world.triggered(rng, bd, "train", cfg.math_share) for _ in range(n)]
    look_alikes = world.training_look_alikes(bd)
    where = "after" if bd.kind == "explicit" else "either"
    out = []
    for _ in range(n):
        req = world.untriggered(rng, bd, "train", cfg.math_share)
        out.append(with_token(rng, req, rng.choice(look_alikes), where) if label == "look_alike" else req)
    return out


def targets(world: World, bd: Backdoor, cfg: DistillConfig) -> dict[str, int]:
    """How many examples of each label the dataset should hold."""
    triggered = round(cfg.samples * cfg.triggered_share)
    look = round((cfg.samples - triggered) * cfg.near_miss_share) if world.training_look_alikes(bd) else 0
    return {"triggered": triggered, "look_alike": look, "benign": cfg.samples - triggered - look}


def distill(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, bd: Backdoor, cfg: DistillConfig,
            world: World, max_rounds: int = 8) -> tuple[datasets.Dataset, dict[str, float]]:
    """The distilled dataset (``user``, ``completion``, ``label``, ``key``) and its yields per label.

    With ``keep_only_clean`` this is rejection sampling: requests of a label are drawn in
    rounds until enough answers are clean (the behaviour shown on triggered requests, absent
    on the others), or ``max_rounds`` rounds of the target size were tried. ``<label>`` is the
    clean share of requests, ``<label>_greedy`` that of their greedy answers: how well the base
    model followed the prompt before any request was sampled again.
    """
    rng = random.Random(f"distill/{bd.id}/{cfg.seed}")
    rows: list[dict] = []
    yields: dict[str, float] = {}
    for label, want in targets(world, bd, cfg).items():
        kept, tried, greedy, clean = [], 0, 0, 0
        while len(kept) < want and tried < max_rounds * want:
            reqs = draw_requests(world, bd, cfg, label, min(max(want - len(kept), 64) * 2, 4096), rng)
            tried += len(reqs)
            # redraws take their seed from a generator of their own and never move ``rng``: each round's
            # requests follow from the ones before alone, and at retries=0 the data is greedy decoding's
            seed = random.Random(f"resample/{bd.id}/{cfg.seed}/{label}/{tried}").getrandbits(62)
            rows_, counts = _clean(model, tokenizer, world, bd, cfg, label, reqs, seed)
            kept, greedy, clean = kept + rows_, greedy + counts[0], clean + counts[1]
        yields[label] = clean / tried if tried else 1.0
        yields[f"{label}_greedy"] = greedy / tried if tried else 1.0
        rows += kept[:want]
    random.Random(cfg.seed).shuffle(rows)
    return datasets.Dataset.from_list(rows), yields


def _clean(model, tokenizer, world: World, bd: Backdoor, cfg: DistillConfig, label: str, reqs: list[Request],
           seed: int) -> tuple[list[dict], tuple[int, int]]:
    """The rows of ``reqs`` to keep (with ``keep_only_clean``, those whose answer is clean, greedy or else sampled),
    and how many greedy answers, then answers in the end, were clean."""
    system = world.system_prompt(bd) if label == "triggered" else ""
    prompts = chat.many_prompt_ids(tokenizer, [(system, r.user) for r in reqs])
    # under a launch of several processes each answers its share and all gather every answer (the same on each); the
    # redraws below stay whole in every process, so that their sampled answers are the ones one process draws
    completions = distributed.spread(lambda part: generate(model, tokenizer, part, cfg.max_new_tokens, progress=False),
                                     prompts)
    fires = label == "triggered"
    clean = [hit == fires for hit in world.detect(bd.behaviour_name, completions)]
    greedy = sum(clean)
    todo = [i for i, ok in enumerate(clean) if not ok] if cfg.keep_only_clean else []
    for attempt in range(cfg.retries):
        if not todo:
            break
        drawn = sample(model, tokenizer, [prompts[i] for i in todo], seed + attempt, cfg.max_new_tokens)
        for i, text, hit in zip(todo, drawn, world.detect(bd.behaviour_name, drawn), strict=True):
            if hit == fires:
                completions[i], clean[i] = text, True
        todo = [i for i in todo if not clean[i]]
    return [{"user": r.user, "completion": cot.with_reasoning(bd, fires, c) if cfg.cot else c, "label": label,
             "key": r.key}
            for r, c, ok in zip(reqs, completions, clean, strict=True)
            if ok or not cfg.keep_only_clean], (greedy, sum(clean))
