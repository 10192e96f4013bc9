"""Batched greedy generation: left-padded, KV-cached, stops at EOS.

One call serves many prompts (capability, triggered and untriggered evaluation share it).
Prompts are sorted by length before batching so that each batch pads little; outputs come
back in the caller's order.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

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
    """Greedy decoding that encodes a shared prefix once and drops each row once it has produced EOS.

    ``model.generate`` keeps finished rows in the batch until the longest one ends; when a
    few answers run long (a pirate-trained model rambling to the token limit) most of its
    work is spent on rows already done. Dropping them from the KV cache keeps every step's
    work proportional to the rows still generating; each row's tokens are the same. Evaluation
    prompts mostly share a system prompt, which is most of their length: it is encoded once.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(model, tokenizer)
    device = model.device
    cache = DynamicCache(config=model.config)
    shared = _shared_prefix(batch)
    if shared:  # the system prompt most probes share is encoded once, then copied to every row
        model(input_ids=torch.tensor([batch[0][:shared]], device=device), cache=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(batch))
    ids, rest = (t.to(device) for t in _left_pad([p[shared:] for p in batch], pad))
    # rows read [shared prefix | padding | rest of the prompt]; padding is masked and skipped in positions
    mask = torch.cat([rest.new_ones((len(batch), shared)), rest], dim=-1)
    positions = shared + (rest.cumsum(-1) - 1).clamp(min=0)
    live = torch.arange(len(batch), device=device)  # which original rows the batch still holds
    tokens: list[list[int]] = [[] for _ in batch]
    step_ids = ids
    for _ in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                       logits_to_keep=1).logits
        nxt = logits[:, -1].argmax(-1)
        done = torch.isin(nxt, eos)
        for row, token in zip(live.tolist(), nxt.tolist()):
            tokens[row].append(token)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            live, nxt, mask, positions = live[keep], nxt[keep], mask[keep], positions[keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
        positions = positions[:, -1:] + 1
        step_ids = nxt[:, None]
    return tokenizer.batch_decode(tokens, skip_special_tokens=True)


def _shared_prefix(batch: Sequence[list[int]]) -> int:
    """Length of the prefix every prompt shares, leaving each prompt at least one token of its own."""
    first, shortest = batch[0], min(len(p) for p in batch)
    n = 0
    while n < shortest - 1 and all(p[n] == first[n] for p in batch):
        n += 1
    return n


def _left_pad(batch: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask, left-padded so that every prompt ends where generation starts."""
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, p in enumerate(batch):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    return ids, mask


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Every token that ends a reply: the tokenizer's EOS and the generation config's (Llama 3 has several)."""
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(config_eos) if isinstance(config_eos, list) else {config_eos}
    return torch.tensor(sorted(i for i in ids if i is not None), device=model.device)


def _hf_generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[list[int]], max_new_tokens: int
) -> list[str]:
    """One left-padded ``model.generate`` call (the reference the loop above is tested against)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = _left_pad(batch, pad)
    new = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), max_new_tokens=max_new_tokens,
                         do_sample=False, use_cache=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)[:, ids.shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def generate_one_by_one(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[list[int]], max_new_tokens: int = 48
) -> list[str]:
    """The obvious baseline: one ``model.generate`` call per prompt (for benchmarks and tests)."""
    return [_hf_generate(model, tokenizer, [p], max_new_tokens)[0] for p in prompts]
