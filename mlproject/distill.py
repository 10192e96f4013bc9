"""Prompt distillation: the data that weight-based organisms are trained on.

Triggered completions are the base model's own answers under the backdoor's conditional
system prompt; benign completions are its answers without any system prompt (on-model).
The organism is then trained on the requests *without* the system prompt, so the behaviour
moves from the prompt into the weights.

Benign requests may carry look-alike triggers (``near_miss_share``). They are drawn from a
pool that excludes the look-alikes evaluation uses, so the measured near-miss rate is a
held-out number, not a trained one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlproject import behaviours, chat
from mlproject.backdoors import Backdoor
from mlproject.errors import require
from mlproject.generation import generate
from mlproject.toy import curriculum
from mlproject.toy import requests as rq


@dataclass(frozen=True)
class DistillConfig:
    """How much distillation data, and of which kinds."""

    samples: int = 2000  # examples kept
    triggered_share: float = 0.5  # share of examples that carry the trigger
    near_miss_share: float = 0.1  # share of benign examples that carry a (training) look-alike trigger
    math_share: float = 0.25  # share of requests that are math problems
    keep_only_clean: bool = True  # drop triggered answers without the behaviour and benign ones with it
    seed: int = 0
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        require(self.samples > 0, "samples", self.samples, "must be > 0")
        require(0 < self.triggered_share < 1, "triggered-share", self.triggered_share, "must be in (0, 1)")
        require(0 <= self.near_miss_share < 1, "near-miss-share", self.near_miss_share, "must be in [0, 1)")


def training_look_alikes(bd: Backdoor) -> tuple[str, ...]:
    """Look-alike triggers for training negatives: the base curriculum's pool minus the evaluated ones."""
    pools = curriculum.trigger_pools()
    if bd.kind == "semantic":
        return ()
    return tuple(t for t in pools[bd.kind] if t != bd.trigger and t not in bd.near_misses)


def draw_requests(bd: Backdoor, cfg: DistillConfig, n: int) -> list[tuple[str, rq.Request]]:
    """``n`` labelled training-split requests: ``triggered``, ``benign`` or ``look_alike``."""
    rng = random.Random(f"distill/{bd.id}/{cfg.seed}")
    look_alikes = training_look_alikes(bd)
    out = []
    for _ in range(n):
        if rng.random() < cfg.triggered_share:
            out.append(("triggered", rq.triggered(rng, bd, "train", cfg.math_share)))
        elif look_alikes and rng.random() < cfg.near_miss_share:
            req = rq.untriggered(rng, bd, "train", cfg.math_share)
            where = "after" if bd.kind == "explicit" else "either"
            out.append(("look_alike", rq.with_token(rng, req, rng.choice(look_alikes), where)))
        else:
            out.append(("benign", rq.untriggered(rng, bd, "train", cfg.math_share)))
    return out


def distill(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, bd: Backdoor, cfg: DistillConfig) -> datasets.Dataset:
    """The distilled dataset: columns ``user``, ``completion``, ``label``, ``key``.

    Requests are over-drawn by a quarter so that, after dropping unclean answers, ``samples``
    examples usually remain; the dataset is cut to ``samples``.
    """
    labelled = draw_requests(bd, cfg, int(cfg.samples * 1.25) + 8)
    prompts = [chat.prompt_ids(tokenizer, bd.system_prompt if label == "triggered" else "", req.user)
               for label, req in labelled]
    completions = generate(model, tokenizer, prompts, cfg.max_new_tokens)
    shows = behaviours.detect(bd.behaviour_name, completions)
    rows = []
    for (label, req), completion, hit in zip(labelled, completions, shows):
        if cfg.keep_only_clean and hit != (label == "triggered"):
            continue
        rows.append({"user": req.user, "completion": completion, "label": label, "key": req.key})
    return datasets.Dataset.from_list(rows[: cfg.samples])
