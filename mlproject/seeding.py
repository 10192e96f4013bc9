"""Random draws that come from a seed alone and leave the caller's random state as it was."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside, torch's generators start from ``seed``; after, every one of them is back where it was.

    ``torch.manual_seed`` reseeds the CPU generator and every GPU's, so all of them are forked,
    whichever device the draws inside happen on. torch starts its generators from another seed
    in every process, so whatever must be the same from one run of a command to the next
    (a new LoRA adapter, a sampled answer) is drawn in here.
    """
    gpus = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield
