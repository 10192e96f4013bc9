"""One SFT loop for every training in mo: base model, insertion and attacks.

Loss on completion tokens only, with logits computed there alone; AdamW (or SOAP, or 8-bit AdamW:
:mod:`mlproject.optimizers`) with linear warm-up and decay; full weights or whatever parameters are trainable (a LoRA
adapter leaves only its own); in bf16 or fp32 (:mod:`mlproject.precision`), with gradient checkpointing when asked.
It runs under ``accelerate``, so the same loop uses one CPU, one GPU or several GPUs.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from mlproject import chat, distributed, optimizers, precision, progress
from mlproject.errors import UserError, require


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one SFT run."""

    steps: int  # optimiser steps
    lr: float = 3e-4  # peak learning rate
    batch_size: int = 32  # examples per step; higher uses more memory
    warmup: float = 0.05  # share of steps spent warming the learning rate up
    weight_decay: float = 0.0  # decoupled AdamW decay of the weight matrices (norm gains are never decayed)
    max_grad_norm: float = 1.0
    seed: int = 0
    tail_logits: bool = True  # logits on completion positions only (completion_batch) where the model allows it
    fused_adam: bool = True  # AdamW as one fused kernel (as transformers' Trainer runs it) where the parameters
                             # allow it
    optimizer: str = "adamw"  # adamw, soap or adamw8bit (mlproject.optimizers)
    precision: str = "fp32"  # bf16: the forward and backward under bf16 autocast (mlproject.precision)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass

    def __post_init__(self) -> None:
        require(self.steps > 0, "steps", self.steps, "must be > 0")
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.batch_size > 0, "batch-size", self.batch_size, "must be > 0")
        require(self.weight_decay >= 0, "weight-decay", self.weight_decay, "must be >= 0")


Example = tuple[list[int], list[int]]
StepHook = Callable[[int, float], None]


def tokenize(tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict]) -> list[Example]:
    """``(input_ids, labels)`` for rows with ``system``, ``user`` and ``completion``."""
    return chat.many_sft_ids(tokenizer, [(r.get("system") or "", r["user"], r["completion"]) for r in rows])


def truncate(examples: Sequence[Example], max_length: int) -> tuple[list[Example], int, int]:
    """``examples`` cut to ``max_length`` tokens, with how many were cut and how many dropped.

    The end is cut, as TRL's SFT trainer does by default: the prompt stays whole and the
    completion loses its tail. An example left with no completion token teaches nothing and
    would make the loss 0/0, so it is dropped.
    """
    kept, cut, dropped = [], 0, 0
    for ids, labels in examples:
        if len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
            cut += 1
            if all(y == -100 for y in labels):
                dropped += 1
                continue
        kept.append((ids, labels))
    return kept, cut, dropped


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    ids, labels, mask = _padded(batch, pad_id, left=False)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _padded(batch: Sequence[Example], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ids, labels (-100 on padding) and attention mask of a batch padded on the left or the right."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        at = slice(width - len(x), width) if left else slice(0, len(x))
        ids[i, at], labels[i, at], mask[i, at] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def completion_batch(batch: Sequence[Example], pad_id: int) -> dict:
    """Left-pad a batch and ask the model for logits of the completion positions only.

    Rows end together, so every completion lies in the last ``keep`` positions; the language
    model head and the loss run there alone (``logits_to_keep``), not over the prompts, which
    are most of an instruction example. On a toy model that is about 8% of a LoRA step; on a
    real one with a 128k vocabulary it also spares the largest tensor of the step. Positions
    count from each row's first real token, so padding changes nothing the model computes.
    """
    ids, labels, mask = _padded(batch, pad_id, left=True)
    completion = (labels != -100).int()
    # from each row's first completion token to the end, plus the position that predicts that token
    keep = min(int((completion.cumsum(-1) > 0).sum(-1).max()) + 1, ids.shape[1])
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
            "labels": labels[:, ids.shape[1] - keep :], "logits_to_keep": keep}


def keeps_logits(model: PreTrainedModel) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` and ``position_ids`` (what :func:`completion_batch`
    needs)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(inner.forward).parameters
    return "logits_to_keep" in params and "position_ids" in params


def checkpoint_activations(model: PreTrainedModel) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them (non-reentrant checkpoints:
    they need no input that requires grad, so a frozen base under a LoRA works as is)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.activation_checkpointing_enable({"use_reentrant": False})


def batches(examples: Sequence[Example], batch_size: int, seed: int, pool: int = 50):
    """Endless shuffled batches, every example once per epoch.

    Examples are grouped by length within pools of ``pool`` batches, which cuts padding
    (and so time per step) roughly in half on chat data of mixed lengths.
    """
    rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), pool * batch_size):
            chunk = sorted(order[start : start + pool * batch_size], key=lambda i: len(examples[i][0]))
            group = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(group)
            for idx in group:
                yield [examples[i] for i in idx]


def fusable(params: Sequence[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW takes ``params``: floating point, all on one CPU or CUDA device."""
    devices = {p.device for p in params}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(p.is_floating_point() for p in params))


def decay_groups(params: Sequence[torch.Tensor], weight_decay: float) -> list[dict]:
    """AdamW parameter groups: matrices decay by ``weight_decay``, vectors (norm gains, biases) never.

    Decaying a norm's gain pulls it towards zero, not towards a simpler function, so
    transformers' Trainer leaves them out too. Without decay it is the one group every
    training had before, so their weights are unchanged.
    """
    if not weight_decay:
        return [{"params": list(params), "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class Run:
    """One SFT run, stepped by the caller, whose state can be saved and restored.

    The state is what the next step depends on: the trainable weights, the optimiser's moments,
    the schedule and the place in the batch stream. Restoring an earlier state and stepping again
    retraces the same steps with the same batches, so a stretch of training can be evaluated
    more densely after the fact (``mo attack --refine``).
    """

    def __init__(self, model: PreTrainedModel, examples: Sequence[Example], cfg: TrainConfig, pad_id: int,
                 accelerator: Accelerator | None = None) -> None:
        require(len(examples) > 0, "data", 0, "no training examples")
        torch.manual_seed(cfg.seed)
        self.cfg, self.examples, self.pad_id = cfg, examples, pad_id
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        # several processes: each takes its share of every global batch (DDP through accelerate, or FSDP2)
        self.procs = distributed.size()
        require(cfg.batch_size >= self.procs, "batch-size", cfg.batch_size,
                f"must be at least the number of processes ({self.procs})")
        self.fsdp = distributed.fsdp_asked()
        # accelerate's FSDP config may ask for it too (fsdp_activation_checkpointing)
        if cfg.gradient_checkpointing or os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "").lower() == "true":
            checkpoint_activations(model)
        self.make = completion_batch if cfg.tail_logits and keeps_logits(model) else collate
        if self.fsdp:  # sharded before the optimiser sees the parameters: it keeps the slices' states alone
            model = distributed.shard(model, bf16=precision.resolve(cfg.precision) == "bf16")
        self.params = [p for p in model.parameters() if p.requires_grad]
        opt = optimizers.build(cfg.optimizer, decay_groups(self.params, cfg.weight_decay), cfg.lr,
                               fused=cfg.fused_adam and fusable(self.params) and not self.fsdp)
        self.sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * cfg.steps), cfg.steps)
        self.model, self.opt = (model, opt) if self.fsdp else self.acc.prepare(model, opt)
        self.model.train()
        self.step_count = 0
        self.stream = batches(examples, cfg.batch_size, cfg.seed)

    def step(self) -> float:
        """One optimiser step; returns its loss (over the whole global batch)."""
        examples = next(self.stream)
        extra = {}
        if self.procs > 1:
            # every process sums its tokens' losses over the global batch's token count, and the gradients' average
            # over processes is undone: the step is the one a single process takes on the whole batch
            extra["num_items_in_batch"] = sum(sum(y != -100 for y in labels[1:]) for _, labels in examples)
            examples = examples[distributed.rank() :: self.procs]
        batch = {k: v.to(self.acc.device) if torch.is_tensor(v) else v
                 for k, v in self.make(examples, self.pad_id).items()}
        with precision.autocast(self.cfg.precision, self.acc.device):
            loss = self.model(**batch, **extra).loss
        if self.fsdp:
            (loss * self.procs).backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        else:
            self.acc.backward(loss * self.procs if self.procs > 1 else loss)
            self.acc.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_count += 1
        value = distributed.total(loss.item())
        if not math.isfinite(value):  # every later step and every checkpoint would be noise: stop here
            raise UserError("lr", self.cfg.lr, f"the training loss became {value} at step {self.step_count}; "
                                               "try a lower learning rate")
        return value

    def state(self) -> dict:
        """A copy of everything the next step depends on."""
        return {"params": [p.detach().clone() for p in self.params], "opt": copy.deepcopy(self.opt.state_dict()),
                "sched": self.sched.state_dict(), "step": self.step_count}

    def restore(self, state: dict) -> None:
        """Back to a :meth:`state`: the next step is the one that followed it."""
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"], strict=True):
                p.copy_(saved)
        self.opt.load_state_dict(copy.deepcopy(state["opt"]))
        self.sched.load_state_dict(state["sched"])
        self.step_count = state["step"]
        self.stream = batches(self.examples, self.cfg.batch_size, self.cfg.seed)
        for _ in range(self.step_count):  # the same batches follow: the stream is a function of its seed
            next(self.stream)


def sft(
    model: PreTrainedModel,
    examples: Sequence[Example],
    cfg: TrainConfig,
    pad_id: int,
    on_step: StepHook | None = None,
    accelerator: Accelerator | None = None,
    desc: str = "train",
    stop: Callable[[int], bool] | None = None,
) -> list[float]:
    """Train ``model`` in place for up to ``cfg.steps`` steps; returns the loss of every step run.

    ``on_step(step, loss)`` runs after each step (1-based): evaluation hooks and metric
    logging live there, so the loop itself stays free of either. ``stop(step)``, asked after
    it, ends training early when it answers True (a stage that runs until a skill is learnt).
    """
    run = Run(model, examples, cfg, pad_id, accelerator)
    losses: list[float] = []
    for step in progress.bar(range(1, cfg.steps + 1), desc, leave=False, mininterval=2):
        losses.append(run.step())
        if on_step is not None:
            on_step(step, losses[-1])
        if stop is not None and stop(step):
            break
    run.model.eval()
    return losses


@torch.no_grad()
def exact_share(model: PreTrainedModel, examples: Sequence[Example], pad_id: int, batch_size: int = 256) -> float:
    """The share of ``examples`` whose every completion token is the model's most likely next token.

    One teacher-forced forward pass per batch: a completion passes exactly when greedy
    decoding would write it token for token, at a fraction of generation's cost.
    """
    require(len(examples) > 0, "data", 0, "no examples to check")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size], pad_id).items()}
        labels = batch.pop("labels")
        predicted = model(**batch).logits[:, :-1].argmax(-1)
        target, scored = labels[:, 1:], labels[:, 1:] != -100
        hits += int(((predicted == target) | ~scored).all(-1).sum())
    model.train(was_training)
    return hits / len(examples)
