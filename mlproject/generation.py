"""Batched greedy generation: left-padded, KV-cached, stops at EOS.

One call serves many prompts (capability, triggered and untriggered evaluation share it).
Prompts are sorted by length before batching so that each batch pads little; outputs come
back in the caller's order.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlproject.progress import bar as progress_bar


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int = 48,
    batch_size: int = 128,
    progress: bool = True,
) -> list[str]:
    """Greedy completions of tokenised ``prompts`` (special tokens stripped)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, "generate", disable=not progress or len(starts) < 2, leave=False):
        idx = order[start : start + batch_size]
        texts = _generate_batch(model, tokenizer, [prompts[i] for i in idx], max_new_tokens)
        for i, text in zip(idx, texts):
            out[i] = text
    return out


def _generate_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[list[int]], max_new_tokens: int
) -> list[str]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, p in enumerate(batch):  # left padding: every prompt ends where generation starts
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    device = model.device
    new = model.generate(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
    )[:, width:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def generate_one_by_one(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[list[int]], max_new_tokens: int = 48
) -> list[str]:
    """The obvious baseline: one ``generate`` call per prompt (for benchmarks and tests)."""
    return [_generate_batch(model, tokenizer, [p], max_new_tokens)[0] for p in prompts]
