"""Several processes, one run: who logs, how work is split, and FSDP2 sharding.

A step launched by ``torchrun`` or ``accelerate launch`` runs in every process. They train
together (DDP through accelerate, or FSDP2 when the launch asks for it), split generation
(checkpoint evaluation, distillation's answers) and gather the answers, and only the main
process talks to MLflow, the registry and Optuna and writes the organism. In one process every
function here is the identity.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
R = TypeVar("R")


def launched() -> bool:
    """Whether this process is one of several started by a launcher (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """The process that logs, registers and writes (rank 0, or the only one)."""
    return rank() == 0


def fsdp_asked() -> bool:
    """Whether the launch asks for FSDP (accelerate's ``distributed_type: FSDP`` sets ``ACCELERATE_USE_FSDP``)."""
    return launched() and os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")


def init() -> None:
    """Join the launch's process group (gloo on a CPU, nccl on GPUs) unless already in it."""
    if launched() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")


def spread(fn: Callable[[list[T]], list[R]], items: Sequence[T], *more: Sequence | None) -> list[R]:
    """``fn`` over ``items`` with the work split among the processes (every ``size()``-th item each), the results
    gathered back in order on every process. ``more``: sequences split alongside ``items`` (or None)."""
    n = size()
    if n == 1:
        return fn(list(items), *more)
    r = rank()
    mine = fn(list(items[r::n]), *[None if m is None else list(m[r::n]) for m in more])
    parts: list[list[R] | None] = [None] * n
    dist.all_gather_object(parts, mine)
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    for k, part in enumerate(parts):
        out[k::n] = part
    return out


def total(value: float) -> float:
    """The sum of ``value`` over the processes."""
    if size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def shard(model: torch.nn.Module, bf16: bool = False) -> torch.nn.Module:
    """FSDP2: every decoder layer, then the whole model, fully sharded over the processes (bf16 compute when asked,
    fp32 gradients reduced); the weights become DTensors, each process keeping a 1/n slice."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
        else MixedPrecisionPolicy()
    for blocks in [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]:
        for layer in blocks:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP sharded ``model`` (in this process)."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of a sharded model, whole, on every process (a collective: all processes call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def whole(model: torch.nn.Module, keep: bool = False) -> Iterator[torch.nn.Module]:
    """Inside, a model sharded by FSDP is whole on every process, to evaluate (or save) like an unsharded one.

    Every sharded module gathers its weights and keeps them through forwards (no resharding), so
    generation runs in each process on its own share of the probes, without collectives; on
    leaving, the slices are all each process keeps again and training goes on, unless ``keep``
    (training is over: the model may change shape, a LoRA merged into it). The memory inside is a
    whole model per process, as for evaluation anyway. Outside FSDP: nothing happens.
    """
    from torch.distributed.fsdp import FSDPModule

    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for m in sharded:
        m.set_reshard_after_forward(False)
        m.unshard()
    try:
        yield model
    finally:
        for m in [] if keep else sharded:
            m.reshard()
            m.set_reshard_after_forward(True)
