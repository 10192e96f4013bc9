"""The optimisers a training may use: AdamW, SOAP and 8-bit AdamW, each from a kept library.

AdamW is torch's own (one fused kernel where the parameters allow it, as transformers' Trainer
runs it); SOAP is pytorch-optimizer's (Adam run in the eigenbasis of Shampoo's preconditioner);
8-bit AdamW is torchao's (PyTorch's own library of low-precision training; its two moments
block-quantised to 8 bits, a quarter of AdamW's state, on a GPU or a CPU; its step is compiled on
first use). bitsandbytes' would do on a GPU, but importing it on a CPU with AVX-512 bf16 asks the
Hugging Face hub for a kernel, and peft imports it whenever it is installed. The two libraries
load only when chosen.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import torch

from mlproject.errors import UserError


def build(name: str, groups: Sequence[dict], lr: float, fused: bool = False) -> torch.optim.Optimizer:
    """The optimiser ``name`` over parameter ``groups`` (each with its own ``weight_decay``) at ``lr``."""
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if name == "soap":
        from pytorch_optimizer import SOAP

        # the library's defaults otherwise (betas 0.95, preconditioner refreshed every 10 steps), as its authors run it
        return SOAP(groups, lr=lr)
    if name == "adamw8bit":
        with _quiet("torchao"):  # it reports each optional CUDA extension it cannot load on this machine
            from torchao.optim import AdamW8bit
        return AdamW8bit(groups, lr=lr)
    raise UserError("optimizer", name, "is not adamw, soap or adamw8bit")


@contextlib.contextmanager
def _quiet(logger: str):
    """Silence ``logger`` below errors while a library imports."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def state_bytes(name: str, shapes: Sequence[torch.Size], dtype_bytes: int = 4) -> int:
    """Bytes of optimiser state for trained parameters of ``shapes`` (``dtype_bytes`` each), once every state exists.

    AdamW: two moments. SOAP: two moments, and for each dimension of a matrix (up to the library's
    10,000) Shampoo's statistic and its eigenbasis, both d x d. 8-bit AdamW: two uint8 moments and
    an fp32 scale per block of 256 (torchao keeps 32-bit moments for tensors under 4,096 elements or
    not a whole number of blocks).
    """
    total = 0
    for shape in shapes:
        n = shape.numel()
        if name == "adamw":
            total += 2 * n * dtype_bytes
        elif name == "soap":
            dims = [d for d in shape if d <= 10_000] if len(shape) >= 2 else []
            total += 2 * n * dtype_bytes + sum(2 * d * d * dtype_bytes for d in dims)
        elif name == "adamw8bit":
            total += 2 * n + 2 * 4 * (n // 256) if n >= 4096 and n % 256 == 0 else 2 * n * 4
    return total
