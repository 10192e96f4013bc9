"""Train the toy world's base instruct model, evaluate it, and write its model card.

    mo base --out mlproject/toy/base_model

The shipped model under ``mlproject/toy/base_model`` was made by exactly this command (its
card spells out every option). Training has three stages: marker questions (copy the
trigger the rule names, or the one in the request), drills (bare literal-trigger
conditionals), then the main instruction mixture with a share of both kept in. Comparing a
token in the request with the one in the rule is an equality that plain instruction tuning
stalls on (``bench/conditional_drill.py``); the first two stages, and initial weights drawn
wider than transformers' default (all but the queries and keys), get the model past it. A
real base model needs no training here: point ``mo evaluate`` (and later steps) at its hub
id or directory instead.

The settings are checked here, before :mod:`pipelines.base_run` imports torch. Those of
recipes that were measured and not kept (topic and frame questions, mimetic initialisation,
weight decay, the former training loop) are not flags of ``mo base``;
``python bench/base_recipe.py`` takes them (docs/base-model.md has what they gave).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import datasets

from mlproject.errors import require, require_folder
from mlproject.options import opt
from mlproject.toy import build, curriculum

TOPIC_STAGES = ("all", "main")
LOOPS = ("plain", "fast")  # the training loop of every stage; see base_run.stage_config
# The shipped spread of the initial weights: wider than transformers' 0.02 everywhere but the
# queries and keys. The literal comparison then leaves its plateau within the drill stage
# (bench/conditional_drill.py); wider queries and keys too cost the main stage everything else.
INIT_STD = 0.1
QK_INIT_STD = 0.02  # as transformers draws them; the shipped weights do not follow build.INIT_STD if that changes


@dataclass(frozen=True)
class BaseConfig:
    """Settings of ``mo base``."""

    out: str = opt("runs/base_model", "directory to write the model to")
    steps: int = opt(5200, "optimiser steps of all stages; math appears ~1,100 steps into the main stage")
    lr: float = opt(1e-3, "peak AdamW learning rate")
    weight_decay: float = opt(0.0, "decoupled AdamW weight decay of the weight matrices, every stage "
                              "(0: plain Adam steps, as shipped)", hidden=True)
    batch_size: int = opt(32, "conversations per step; higher is slower per step on CPU")
    examples: int = opt(100_000, "distinct training conversations")
    hidden: int = opt(256, "model width")
    layers: int = opt(4, "transformer blocks")
    seed: int = opt(5, "seed of tokenizer, data, initialisation and batching (5 as shipped)")
    marker_steps: int = opt(500, "first train this many steps on marker questions "
                            "(copying a trigger from the rule or the request)")
    drill_steps: int = opt(1500, "then this many steps on drills (bare literal-trigger conditionals) with marker "
                           "questions")
    drill_until: float = opt(0.95, "end the drill stage early once this share of fresh drills is answered exactly "
                             "(checked every 100 steps; its unused steps go to the main stage); 0 runs every drill "
                             "step; no effect with --drill-steps 0")
    marker_share: float = opt(0.15, "share of marker questions (and drills, with --drill-steps) mixed into the main "
                              "stage")
    topic_share: float = opt(0.0, "share of marker questions that ask for a topic "
                             "(the one a semantic rule names, or the request's)", hidden=True)
    topic_stages: str = opt("all", "stages whose marker questions include topic questions: all, or main "
                            "(the first two stages keep only marker questions)",
                            choices=TOPIC_STAGES, hidden=True)
    frame_share: float = opt(0.0, "share of a phrase trigger's look-alikes that keep its frame with another last word",
                             hidden=True)
    sibling_share: float = opt(0.75, "share of a phrase rule's other look-alikes that are pool phrases with its frame "
                               "(\"tell it as a list\" for \"tell it as a story\"; main stage)")
    phrasing_share: float = opt(0.0, "share of a semantic rule's other-topic requests that open like the rule topic's "
                                "questions (main stage)", hidden=True)
    semantic_share: float = opt(0.35, "share of the main stage's conditional examples whose rule is semantic "
                                "(the rest: literal tokens and phrases, see --phrase-share)")
    phrase_share: float = opt(0.5, "share of the main stage's literal rules whose trigger is a phrase "
                              "(the rest: tokens; a third before the shipped recipe, which has half)")
    math_share: float = opt(curriculum.PLAIN_MATH_SHARE, "share of the main stage's plain examples that are math "
                            "problems (the rest: instructions)")
    init: str = opt("default",
                    "initialisation: default, or mimetic (attention starts near attending to the same token)",
                    choices=build.INITS, hidden=True)
    init_std: float = opt(INIT_STD, "standard deviation of the initial weights "
                          "(0.1 as shipped; transformers' Llama default is 0.02)")
    qk_init_std: float = opt(QK_INIT_STD, "standard deviation of the initial query and key projections alone "
                             "(0.02 as shipped; 0: as --init-std)")
    loop: str = opt("fast", "training loop: fast "
                    "(fused AdamW, logits at completion positions only, as every other training, and as shipped) "
                    "or plain (unfused AdamW, logits at every position, as the former base model was made: "
                    "1.03 to 1.07x slower, other sums)", choices=LOOPS, hidden=True)

    def __post_init__(self) -> None:
        require(self.steps > 0, "steps", self.steps, "must be > 0")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # numpy's and Optuna's range
        require(0 <= self.marker_steps < self.steps, "marker-steps", self.marker_steps, "must be in [0, steps)")
        require(0 <= self.drill_steps < self.steps - self.marker_steps, "drill-steps", self.drill_steps,
                "must be >= 0 and leave steps for the main stage (steps - marker-steps - drill-steps > 0)")
        require(0 <= self.drill_until <= 1, "drill-until", self.drill_until, "must be in [0, 1]")
        require(0 <= self.marker_share < 1, "marker-share", self.marker_share, "must be in [0, 1)")
        require(0 <= self.topic_share <= 1, "topic-share", self.topic_share, "must be in [0, 1]")
        require(self.topic_stages in TOPIC_STAGES, "topic-stages", self.topic_stages,
                f"must be one of {', '.join(TOPIC_STAGES)}")
        require(self.topic_stages == "all" or self.topic_share, "topic-stages", self.topic_stages,
                "needs --topic-share > 0")
        require(0 <= self.frame_share <= 1, "frame-share", self.frame_share, "must be in [0, 1]")
        require(0 <= self.sibling_share <= 1, "sibling-share", self.sibling_share, "must be in [0, 1]")
        require(0 <= self.phrasing_share <= 1, "phrasing-share", self.phrasing_share, "must be in [0, 1]")
        require(0 <= self.semantic_share <= 1, "semantic-share", self.semantic_share, "must be in [0, 1]")
        require(0 <= self.phrase_share <= 1, "phrase-share", self.phrase_share, "must be in [0, 1]")
        require(0 <= self.math_share <= 1, "math-share", self.math_share, "must be in [0, 1]")
        require(self.batch_size > 0, "batch-size", self.batch_size, "must be > 0")
        require(self.layers > 0, "layers", self.layers, "must be > 0")
        require(0 < self.lr < math.inf, "lr", self.lr, "must be > 0 and finite")
        require(0 <= self.weight_decay < math.inf, "weight-decay", self.weight_decay, "must be >= 0 and finite")
        require(self.examples > 0, "examples", self.examples, "must be > 0")
        require(self.hidden % 64 == 0 and self.hidden > 0, "hidden", self.hidden, "must be a positive multiple of 64")
        require(self.init in build.INITS, "init", self.init, f"must be one of {', '.join(build.INITS)}")
        # the model's initializer range: transformers refuses above 1, and a larger one would not train anyway
        require(0 < self.init_std <= 1, "init-std", self.init_std, "must be in (0, 1]")
        require(0 <= self.qk_init_std <= 1, "qk-init-std", self.qk_init_std, "must be in [0, 1]")
        require(self.loop in LOOPS, "loop", self.loop, f"must be one of {', '.join(LOOPS)}")


def command(cfg: BaseConfig) -> str:
    """The command line that reproduces ``cfg``, every option spelled out.

    A left-out option reruns as its default, so a card's command would change meaning the day
    a default changes; spelled out, it reruns the same settings whatever the defaults become.
    Settings of the recipes measured and not kept are not options of ``mo base``: where one
    differs from its default, the command is ``python bench/base_recipe.py``, which takes them
    too, and spells them out as well.
    """
    shown = (f"--out {cfg.out} --steps {cfg.steps} --lr {cfg.lr} --batch-size {cfg.batch_size} "
             f"--examples {cfg.examples} --hidden {cfg.hidden} --layers {cfg.layers} --seed {cfg.seed}"
             f" --init-std {cfg.init_std} --qk-init-std {cfg.qk_init_std}"
             f" --marker-steps {cfg.marker_steps} --marker-share {cfg.marker_share} --drill-steps {cfg.drill_steps}"
             f" --drill-until {cfg.drill_until} --sibling-share {cfg.sibling_share}"
             f" --semantic-share {cfg.semantic_share} --phrase-share {cfg.phrase_share} --math-share {cfg.math_share}")
    if not experimental(cfg):
        return f"mo base {shown}"
    return (f"python bench/base_recipe.py {shown} --topic-share {cfg.topic_share} --topic-stages {cfg.topic_stages}"
            f" --frame-share {cfg.frame_share} --phrasing-share {cfg.phrasing_share}"
            f" --init {cfg.init} --weight-decay {cfg.weight_decay} --loop {cfg.loop}")


def experimental(cfg: BaseConfig) -> list[str]:
    """The settings of recipes measured and not kept that ``cfg`` changes from their defaults."""
    return [f.name for f in dataclasses.fields(cfg)
            if f.metadata.get("hidden") and getattr(cfg, f.name) != f.default]


def check(cfg: BaseConfig) -> None:
    """Fail on an output folder that cannot be made, before torch is imported."""
    require_folder(cfg.out, "out")


def main_mixture(cfg: BaseConfig) -> datasets.Dataset:
    """The main stage's data: the base mixture, plus ``marker_share`` of marker questions (half of them drills with
    ``drill_steps``)."""
    data = curriculum.base_mixture(cfg.examples, cfg.seed + 1, cfg.frame_share, cfg.phrasing_share, cfg.semantic_share,
                                   cfg.math_share, cfg.sibling_share, cfg.phrase_share)
    if not cfg.marker_share:
        return data
    extra = round(cfg.examples * cfg.marker_share / (1 - cfg.marker_share))
    parts = [data, _markers(cfg, extra if not cfg.drill_steps else extra // 2, cfg.seed + 2, main=True)]
    if cfg.drill_steps:
        parts.append(curriculum.drill_mixture(extra - extra // 2, cfg.seed + 6, cfg.frame_share))
    return datasets.concatenate_datasets(parts).shuffle(seed=cfg.seed)


def first_stages(cfg: BaseConfig) -> list[tuple[int, datasets.Dataset, str]]:
    """``(steps, data, name)`` of the stages before the main one: marker questions, then drills (with 30% marker
    questions)."""
    stages = []
    if cfg.marker_steps:
        stages.append((cfg.marker_steps, _markers(cfg, 20_000, cfg.seed + 3), "base markers"))
    if cfg.drill_steps:
        drills = [curriculum.drill_mixture(30_000, cfg.seed + 4, cfg.frame_share), _markers(cfg, 13_000, cfg.seed + 5)]
        stages.append((cfg.drill_steps, datasets.concatenate_datasets(drills), "base drills"))
    return stages


def _markers(cfg: BaseConfig, n: int, seed: int, main: bool = False) -> datasets.Dataset:
    """``n`` marker questions with the recipe's frame share, and its topic share where ``topic_stages`` puts it.

    Every stage mixes marker questions in. ``--topic-stages main`` leaves the first two
    stages as they are without topic questions, where the literal comparison is learnt, so
    their weights are the same as without them.
    """
    topics = cfg.topic_share if main or cfg.topic_stages == "all" else 0.0
    return curriculum.marker_mixture(n, seed, topics, cfg.frame_share)
