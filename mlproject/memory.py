"""The memory plan of a training, made from the model's config before any weight loads.

The model is built and one training step run on fake tensors (torch's ``FakeTensorMode``: shapes
and dtypes, no storage), under torch's own memory tracker (``torch.distributed._tools.MemTracker``),
which records weights, gradients, activations and temporaries as the step allocates and frees
them. So the plan follows the real architecture's code (grouped-query attention, tied embeddings,
the fp32 logits of the loss, the attention kernel, checkpointed layers) at the run's batch size,
length and precision, instead of a formula per family. The optimiser's states are added from the
trained parameters' shapes (:func:`mlproject.optimizers.state_bytes`); under FSDP the weights,
gradients and states are divided among the processes, plus one layer gathered whole.

If the plan does not fit the memory that is free, :func:`check` says so in one line, naming what
would fit, before the caller loads anything.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.distributed._tools.mem_tracker import MemTracker
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from mlproject import distributed, lora, models, optimizers, precision, training
from mlproject.errors import UserError
from mlproject.modelref import resolve
from mlproject.train_options import TrainOptions

GiB = 2**30


@dataclass(frozen=True)
class Job:
    """What a training asks of memory."""

    trains: str  # "lora", "full" (every weight) or "none" (evaluation only)
    batch_size: int
    length: int  # tokens of the longest example (the plan's worst case)
    precision: str = "fp32"  # bf16 or fp32 (resolved)
    optimizer: str = "adamw"
    rank: int = 64  # LoRA rank, when trains == "lora"
    gradient_checkpointing: bool = False
    shards: int = 1  # FSDP processes sharing weights, gradients and optimiser states
    probes: int = 0  # the most prompts the step decodes together (distillation, a checkpoint's evaluation); 0: none


@dataclass(frozen=True)
class Plan:
    """Peak bytes on one device, by what holds them."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # what the forward keeps for the backward, and the step's temporaries at the peak
    # decoding, between training steps (gradients freed, weights and optimiser states kept): the KV cache and
    # temporaries of a batch of prompts (under FSDP the processes may decode in lockstep on the sharded weights)
    generation: int = 0

    @property
    def training(self) -> int:
        """The peak of a training step."""
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def decoding(self) -> int:
        """The peak of generation between steps."""
        return self.weights + self.optimizer + self.generation

    @property
    def total(self) -> int:
        return max(self.training, self.decoding)

    def describe(self) -> str:
        parts = ", ".join(f"{k} {getattr(self, k) / GiB:.2f}" for k in ("weights", "gradients", "optimizer",
                                                                          "activations", "generation"))
        return f"{self.total / GiB:.2f} GiB ({parts})"


def config_of(model: str) -> PretrainedConfig:
    """The model's config alone (a few KB): from its folder (``toy`` too), or a hub id (the local cache alone when
    the hub cannot be reached)."""
    ref = resolve(model)
    return AutoConfig.from_pretrained(ref, local_files_only=models.cache_only(ref))


def plan(config: PretrainedConfig, job: Job) -> Plan:
    """Peak memory of one training step of ``job`` on a model of ``config``, per device."""
    length = _length(config, job)
    with FakeTensorMode(), _modules_stay_put():
        model = _fake_model(config, job)
        trained = [p for p in model.parameters() if p.requires_grad]
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        grads = sum(p.numel() * p.element_size() for p in trained)
        states = optimizers.state_bytes(job.optimizer, [p.shape for p in trained])
        layer = max((sum(p.numel() * p.element_size() for p in m.parameters()) for m in _layers(model)), default=0)
    activations = _by_depth(config, lambda c: _traced(c, job, length)) if job.trains != "none" else 0
    decoding = _decoding(config, job, length) if job.probes else 0
    # counted whole beside the peak's activations: the optimiser's step holds every gradient at once, and the
    # states live through the whole step
    n = job.shards
    if n > 1:  # FSDP: each process keeps 1/n of weights, gradients and states, and gathers one layer at a time
        kept = weights // n + 2 * layer
        # generation needs no more than its cache: the processes can decode in lockstep on the sharded model, a
        # layer gathered at a time (distributed.for_generation); they gather it whole only where that fits too
        return Plan(kept, grads // n, states // n, activations, decoding)
    return Plan(weights, grads, states, activations, decoding)


def _length(config: PretrainedConfig, job: Job) -> int:
    """The longest sequence the job can hold: its ``--max-length``, at most the model's context."""
    return min(job.length, getattr(config, "max_position_embeddings", job.length) or job.length)


def _decoding(config: PretrainedConfig, job: Job, length: int) -> int:
    """Generation's peak beside the weights: the batch's KV cache, made room for to the full ``length`` when the
    encoded chunks are merged, and the encoding of one chunk (:data:`generation.CHUNK` rows) at that moment."""
    from mlproject import generation

    rows = decode_rows(config, job, length)
    element = 2 if job.precision == "bf16" else 4
    merged = rows * length * generation.kv_bytes_per_token(config, element)
    chunk = min(rows, generation.CHUNK)
    return merged + _by_depth(config, lambda c: _traced_decoding(c, job, chunk, length))


def decode_rows(config: PretrainedConfig, job: Job, length: int) -> int:
    """How many of ``job.probes`` prompts of ``length`` tokens decode together (:func:`generation.one_batch`'s rule)."""
    from mlproject import generation

    per_token = generation.kv_bytes_per_token(config, 2 if job.precision == "bf16" else 4)
    rows = job.probes if job.probes * length * per_token <= generation.KV_BATCH_BYTES else generation.DEFAULT_BATCH
    return min(rows, job.probes)


def _fake_model(config: PretrainedConfig, job: Job, computing: bool = False):
    """The job's model on fake tensors: the base in its dtype, the LoRA or the trained weights, checkpointing.

    ``computing``: in the dtype its layers compute in. Under FSDP with bf16 that is bf16 whatever the masters are
    (its mixed-precision policy gathers each layer as bf16 and lets it go after), so autocast keeps no bf16 copy of
    every weight through the forward, as it does for fp32 weights on one device (2 bytes a parameter, counted then).
    """
    trains_weights = job.trains == "full"
    dtype = precision.weights_dtype(job.precision, trains_weights)
    if computing and job.shards > 1 and job.precision == "bf16":
        dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if job.trains == "lora":
        model = lora.attach(model, job.rank)
    for p in model.parameters():
        p.requires_grad_(trains_weights or (job.trains == "lora" and p.requires_grad))
    if job.gradient_checkpointing:
        training.checkpoint_activations(model)
    return model.train()


def _by_depth(config: PretrainedConfig, trace: Callable[[PretrainedConfig], int]) -> int:
    """``trace`` of the whole model, from traces of the model cut to ``2k`` and ``4k`` of its layers.

    Every block of a decoder keeps the same activations for the backward (and the same KV cache when decoding), so
    the peak grows by the same amount per ``k`` layers (``k``: the period of the layer pattern, 6 for Gemma 3's five
    sliding-window layers and one global); tracing two depths and extending the line takes seconds where tracing
    80 layers of fake tensors takes minutes. The peak is the largest of a few moments (the logits' loss, the end of
    the forward), each growing at its own rate with depth; at one and two layers the logits' can lead and the line
    through them miss the one that leads at 80 (a 70B at batch 16 traced 27.2, 27.7, 29.6 and 31.7 GiB at one to
    four layers), so the two depths are taken deeper, where the fastest-growing moment leads.
    """
    layers = config.num_hidden_layers
    types = getattr(config, "layer_types", None) or []
    period = next((k for k in range(1, len(types) + 1) if types[k:] == types[:-k]), 1) if types else 1
    if layers <= 2 * period:
        return trace(config)
    low = 2 * period if layers > 4 * period else period
    one, two = (trace(_cut(config, k)) for k in (low, 2 * low))
    return one + (two - one) * (layers - low) // low


def _cut(config: PretrainedConfig, layers: int) -> PretrainedConfig:
    shallow = copy.deepcopy(config)
    shallow.num_hidden_layers = layers
    if getattr(shallow, "layer_types", None):
        shallow.layer_types = shallow.layer_types[:layers]
    return shallow


def _traced(config: PretrainedConfig, job: Job, length: int) -> int:
    """Activations and temporaries at the peak of one training step of a model of ``config``."""
    with FakeTensorMode(), _modules_stay_put():
        return _activations_at_peak(_fake_model(config, job, computing=True), job.batch_size, length, job.precision)


def _traced_decoding(config: PretrainedConfig, job: Job, rows: int, length: int) -> int:
    """The KV cache and temporaries at the peak of encoding ``rows`` sequences of ``length`` tokens at once (a chunk of
    prompts at the longest: shorter ones hold less)."""
    with FakeTensorMode(), _modules_stay_put():
        model = _fake_model(config, replace(job, gradient_checkpointing=False)).eval()  # it decodes with a cache
        ids = torch.zeros((rows, length), dtype=torch.long)
        tracker = _Tracker()
        tracker.track_external(model)
        with torch.no_grad(), warnings.catch_warnings(), tracker:
            warnings.filterwarnings("ignore", "The module hierarchy tracking", UserWarning)
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return _held(tracker)


@contextlib.contextmanager
def _modules_stay_put():
    """Fake parameters cannot be moved (``Module.to`` swaps them, and the fake mode holds a reference), and in a plan
    nothing needs to move: peft's moves of each new adapter to its base layer's device are skipped."""
    move = torch.nn.Module.to
    torch.nn.Module.to = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.nn.Module.to = move


class _Tracker(MemTracker):
    """torch's tracker, for models with frozen weights too: it hooks the gradient of every parameter of a module,
    and a frozen one has none (the gradients of the trained ones are still counted, as they are allocated)."""

    def _track_module_params_and_buffers(self, module, install_grad_hooks: bool = True) -> int:
        frozen = any(not p.requires_grad for p in module.parameters())
        return super()._track_module_params_and_buffers(module, install_grad_hooks and not frozen)


def _activations_at_peak(model, batch_size: int, length: int, prec: str) -> int:
    """What the tracker saw held for the backward, and as temporaries, at the peak of a forward and backward pass
    on a full batch."""
    ids = torch.zeros((batch_size, length), dtype=torch.long)
    # each gradient is let go once accumulated: the plan counts the gradients whole beside these activations, and
    # gradients piling up through the backward would move the traced peak from the activations to them as the
    # model deepens (cut to 1, 2, 3 and 4 layers, a 70B traced 14.6, 16.3, 18.2, then 4.2 GiB): the line the plan
    # extends through two depths holds only if every depth's peak is the activations'
    for p in model.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(_let_go)
    tracker = _Tracker()
    tracker.track_external(model)
    # the tracker doubts its module hierarchy when checkpointed layers run their forward again: the totals hold
    with warnings.catch_warnings(), tracker:
        warnings.filterwarnings("ignore", "The module hierarchy tracking", UserWarning)
        warnings.filterwarnings("ignore", "Expected a tensor or a traceable wrapper-subclass", UserWarning)
        with precision.autocast(prec, torch.device("cpu")):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    return _held(tracker)


def _let_go(p: torch.Tensor) -> None:
    p.grad = None


def _held(tracker: MemTracker) -> int:
    """Activations and temporaries at the tracker's peak."""
    return int(sum(n for snap in tracker.get_tracker_snapshot("peak").values() for kind, n in snap.items()
                   if str(kind).rpartition(".")[2] in ("ACT", "TEMP")))


def _layers(model) -> list[torch.nn.Module]:
    """The repeated blocks FSDP wraps one by one (the decoder layers)."""
    return [layer for blocks in model.modules() if isinstance(blocks, torch.nn.ModuleList) for layer in blocks]


def free_memory() -> tuple[str, int]:
    """The device a run uses and the bytes free there: the emptiest-but-fullest GPU, or the machine's memory."""
    if torch.cuda.is_available():
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        return f"cuda:{free.index(min(free))}", min(free)
    available = psutil.virtual_memory().available
    limit = _cgroup_room()
    return "cpu", min(available, limit) if limit is not None else available


def _cgroup_room() -> int | None:
    """Room left under this process's cgroup memory limit (a container's), if it has one."""
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    return None


def check(config: PretrainedConfig, job: Job, free: tuple[str, int] | None = None) -> Plan:
    """The plan, once it fits the free memory; else one line that names a setting that would fit."""
    where, room = free or free_memory()
    need = plan(config, job)
    if need.total <= room:
        return need
    raise UserError("memory", f"{need.total / GiB:.2f}GiB",
                    f"the plan needs {need.describe()} on {where}, which has {room / GiB:.2f} GiB free; "
                    f"{_what_fits(config, job, need, room)}")


def _what_fits(config: PretrainedConfig, job: Job, need: Plan, room: int) -> str:
    """The settings that would bring the plan under ``room``: each alone, then FSDP (with checkpointing if needed)."""
    fits = []
    # generating between steps is what does not fit (the step itself does): only a shorter cache helps; where the
    # weights and optimiser states alone exceed the room (an 8B's FWFT on one GPU) the step's remedies below apply
    if need.decoding > room and need.training <= room:
        spare = room - need.weights - need.optimizer
        shorter = math.floor(_length(config, job) * spare / need.generation) if spare > 0 and need.generation else 0
        for _ in range(5):  # the cache grows with the length, its encoding faster: shorten until the plan fits
            if shorter <= 0 or plan(config, replace(job, length=shorter)).total <= room:
                break
            shorter = math.floor(shorter * 0.9)
        else:
            shorter = 0
        if shorter > 0:
            fits.append(f"--max-length {shorter} (generation holds a KV cache of --max-length tokens per prompt)")
        return _named(fits)
    checkpointed = need
    if not job.gradient_checkpointing and job.trains != "none":
        checkpointed = plan(config, replace(job, gradient_checkpointing=True))
        if checkpointed.total <= room:
            fits.append(f"--gradient-checkpointing ({checkpointed.total / GiB:.2f} GiB)")
    fixed = need.weights + need.gradients + need.optimizer
    if job.batch_size > 1 and fixed < room and need.activations:  # activations grow with the batch
        batch = math.floor(job.batch_size * (room - fixed) / need.activations)
        if 0 < batch < job.batch_size:
            fits.append(f"--batch-size {batch}")
    if job.optimizer != "adamw8bit" and job.trains != "none":
        eight = plan(config, replace(job, optimizer="adamw8bit"))
        if eight.total <= room:
            fits.append(f"--optimizer adamw8bit ({eight.total / GiB:.2f} GiB)")
    if job.shards == 1 and job.trains != "none":
        for option, p in (("", need), (" with --gradient-checkpointing", checkpointed)):
            if p.activations < room:
                n = math.ceil(fixed / (room - p.activations))
                if 1 < n <= 1024:
                    fits.append(f"FSDP over {n} GPUs{option} (accelerate launch --config_file "
                                "configs/accelerate/fsdp-8gpu.yaml)")
                    break
    return _named(fits)


def _named(fits: list[str]) -> str:
    return ("would fit: " + "; or ".join(fits)) if fits else "nothing this run can change would fit: a larger device"


def fsdp_shards() -> int:
    """How many processes share the weights: the launch's world size under FSDP, else 1 (DDP keeps them whole)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if distributed.fsdp_asked() else 1


def check_training(model_ref: str, trains: str, options: TrainOptions, batch_size: int, rank: int | None = None,
                   field: str = "base-model", probes: int = 0) -> Plan:
    """:func:`check` for a step that trains ``trains`` ("lora", "full" or "none") of the model at ``model_ref`` and
    decodes up to ``probes`` prompts at a time between its steps (sequences of at most ``--max-length`` tokens)."""
    try:
        config = config_of(model_ref)
    except (OSError, ValueError) as err:
        raise UserError(field, model_ref, f"could not read its config ({str(err).splitlines()[0]})") from None
    checkpointing = options.gradient_checkpointing or os.environ.get("FSDP_ACTIVATION_CHECKPOINTING") == "true"
    job = Job(trains, batch_size, options.max_length, precision.resolve(options.precision), options.optimizer,
              rank or 64, checkpointing, fsdp_shards(), probes)
    return check(config, job)
