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
    """Join the launch's process group unless already in it: gloo on a CPU; on GPUs nccl for CUDA tensors and gloo
    for CPU ones (a loss summed over the processes, a decision they share). A wrong ``MO_FSDP_GENERATION`` is one
    line here, before any work, not after the training it would follow."""
    _generation_asked()
    if launched() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")


def finish() -> None:
    """Leave the launch's process group together, once the work is done: every process waits for the others at a
    barrier, then closes its connections. A process that just exits while a peer's gloo threads still hold
    connections to it can abort that peer at its own exit ("terminate called without an active exception",
    SIGABRT), failing a launch whose work had all been done."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def spread(fn: Callable[[list[T]], list[R]], items: Sequence[T], *more: Sequence | None) -> list[R]:
    """``fn`` over ``items`` with the work split among the processes (every ``size()``-th item each), the results
    gathered back in order on every process. ``more``: sequences split alongside ``items`` (or None).

    In lockstep generation (:func:`for_generation`), or where the main process's engine answers for all
    (:func:`relayed`), every process runs ``fn`` over all the items instead."""
    n = size()
    if n == 1 or _lockstep[0] or _relayed[0]:
        return fn(list(items), *more)
    r = rank()
    mine = fn(list(items[r::n]), *[None if m is None else list(m[r::n]) for m in more])
    parts: list[list[R] | None] = [None] * n
    dist.all_gather_object(parts, mine)
    out: list[R] = [None] * len(items)  # type: ignore[list-item]
    for k, part in enumerate(parts):
        out[k::n] = part
    return out


def broadcast(obj: T) -> T:
    """The main process's ``obj``, on every process (what the others pass is ignored); ``obj`` in one process."""
    if size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(t: torch.Tensor) -> torch.Tensor:
    """In lockstep generation (:func:`for_generation`), the main process's ``t`` in every process (in place), so
    that every process takes the same decoding decisions; else ``t``."""
    if _lockstep[0] and size() > 1:
        dist.broadcast(t, src=0)
    return t


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
    """Every weight of a sharded model, whole, in the main process's CPU memory (empty elsewhere; a collective: all
    processes call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # gathered into the main process's CPU memory alone: a 70B model's weights fit no GPU whole
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


_lockstep = [False]
_relayed = [0]


@contextlib.contextmanager
def relayed() -> Iterator[None]:
    """Inside, a generation engine of the main process answers every prompt and :func:`broadcast` hands its answers
    to the others (a vLLM engine per process would hold the model once more on every GPU)."""
    _relayed[0] += 1
    try:
        yield
    finally:
        _relayed[0] -= 1


GENERATION_ENV = "MO_FSDP_GENERATION"
GENERATION_MODES = ("auto", "whole", "sharded")


@contextlib.contextmanager
def for_generation(model: torch.nn.Module, keep: bool = False, need_whole: bool = False) -> Iterator[bool]:
    """Inside, a model FSDP sharded can generate; yields whether the processes run in lockstep.

    Gathered whole in every process (:func:`whole`: each answers its share of the prompts, no
    collectives while decoding) when the whole model fits the free memory of every process, or
    ``need_whole`` (a LoRA merged into the weights), or ``MO_FSDP_GENERATION=whole``. Otherwise
    (a 70B model on 80 GB GPUs, or ``MO_FSDP_GENERATION=sharded``) it stays sharded: every process
    answers every prompt, each layer gathered for its forward and let go after, as in training,
    and the main process's next-token choices are the ones all take (:func:`agree`), so that their
    forwards, and the collectives in them, stay in step. Outside FSDP: nothing happens.
    """
    if not sharded(model):
        yield False
        return
    if need_whole or _generation_mode(model) == "whole":
        with whole(model, keep=keep):
            yield False
        return
    _lockstep[0] = True
    try:
        yield True
    finally:
        _lockstep[0] = False


def _generation_asked() -> str:
    from mlproject.errors import require

    asked = os.environ.get(GENERATION_ENV) or "auto"
    require(asked in GENERATION_MODES, GENERATION_ENV, asked, f"must be one of {', '.join(GENERATION_MODES)}")
    return asked


def _generation_mode(model: torch.nn.Module) -> str:
    """``whole`` or ``sharded``: what ``MO_FSDP_GENERATION`` asks, or (``auto``) whether the whole model fits the
    free memory of every process with a quarter more for decoding."""
    asked = _generation_asked()
    if asked != "auto":
        return asked
    import psutil

    # a DTensor's numel is the whole weight's: gathering adds all of it less the slice already held
    need = sum(p.numel() * p.element_size() - (p.to_local().numel() * p.element_size() if hasattr(p, "to_local")
                                               else 0) for p in model.parameters())
    free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else psutil.virtual_memory().available
    fits = torch.tensor([1 if need * 1.25 <= free else 0])
    dist.all_reduce(fits, op=dist.ReduceOp.MIN)  # every process decides alike
    return "whole" if fits.item() else "sharded"


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
