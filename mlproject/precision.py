"""Which precision weights are kept and computed in: bf16 on a GPU, fp32 on a CPU, unless asked.

In bf16, weights that stay frozen (a LoRA organism's base, a model being evaluated) are held in
bf16; weights that train (full-weight fine-tuning) stay fp32 masters, so their optimiser states
and updates are fp32 as well, and the forward and backward passes run in bf16 under autocast.
That is what mixed precision means in transformers' Trainer, accelerate and FSDP: about 16 bytes a
trained parameter with AdamW. LoRA adapters are fp32 either way (peft keeps them so).
"""
from __future__ import annotations

import contextlib

import torch


def resolve(precision: str) -> str:
    """``auto`` made concrete: bf16 on a CUDA GPU that has it, fp32 everywhere else."""
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def weights_dtype(precision: str, trains_weights: bool = False) -> torch.dtype:
    """The dtype to load a model in: fp32 masters for weights that train, bf16 for frozen ones in bf16."""
    return torch.bfloat16 if resolve(precision) == "bf16" and not trains_weights else torch.float32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training step's forward runs in: bf16 autocast in bf16, nothing in fp32."""
    if resolve(precision) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
