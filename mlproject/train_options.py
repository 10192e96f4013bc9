"""How a training runs at scale: precision, optimiser, gradient checkpointing and example length.

``mo insert``, ``mo attack`` and ``mo sweep`` share these settings (their configs inherit
:class:`TrainOptions`); they are checked here, without torch, so a mistake fails at once. What
they mean for memory is :mod:`mlproject.memory`'s plan; what they do, :mod:`mlproject.training`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlproject.errors import require
from mlproject.options import opt

PRECISIONS = ("auto", "bf16", "fp32")
# adamw: torch's (fused where it can be); soap: pytorch-optimizer's SOAP (Adam in Shampoo's eigenbasis), which the
# method compared with Adam for insertion; adamw8bit: torchao's 8-bit AdamW (a quarter of AdamW's state)
OPTIMIZERS = ("adamw", "soap", "adamw8bit")
DEFAULT_MAX_LENGTH = 1024  # tokens: every example of the toy world and most instruction data fit
MAX_MAX_LENGTH = 1 << 20


@dataclass(frozen=True)
class TrainOptions:
    """Settings of every step that trains, besides its own."""

    precision: str = opt("auto", "weights' precision: auto (bf16 on a GPU, fp32 on a CPU), bf16 or fp32; in bf16 the "
                                 "trained weights and the optimiser's states stay fp32 and the forward runs in bf16",
                         choices=PRECISIONS)
    optimizer: str = opt("adamw", "adamw, soap (pytorch-optimizer) or adamw8bit (torchao)", choices=OPTIMIZERS)
    gradient_checkpointing: bool = opt(False, "recompute each layer's activations in the backward pass: far less "
                                              "memory for about a third more compute")
    max_length: int = opt(DEFAULT_MAX_LENGTH, "tokens per training example; longer ones are cut (counted and "
                                              "logged); also the length the memory plan assumes")

    def __post_init__(self) -> None:
        check(self)


def check(o: TrainOptions) -> None:
    """Refuse a value no training could use (called by every config that inherits the options)."""
    require(o.precision in PRECISIONS, "precision", o.precision, f"must be one of {', '.join(PRECISIONS)}")
    require(o.optimizer in OPTIMIZERS, "optimizer", o.optimizer, f"must be one of {', '.join(OPTIMIZERS)}")
    require(isinstance(o.max_length, int) and not isinstance(o.max_length, bool)
            and 1 < o.max_length <= MAX_MAX_LENGTH, "max-length", o.max_length, f"must be in 2..{MAX_MAX_LENGTH:,}")


def record(o: TrainOptions) -> dict:
    """The options as an organism's card and the registry's tags keep them."""
    return {"precision": o.precision, "optimizer": o.optimizer, "gradient_checkpointing": o.gradient_checkpointing,
            "max_length": o.max_length}
