"""Batched greedy generation: left-padded, KV-cached, stops at EOS; and sampled completions (:func:`sample`).

One call serves many prompts (capability, triggered and untriggered evaluation share it).
Prompts are sorted by length before batching so that each batch pads little; outputs come
back in the caller's order. Each batch is encoded in chunks of similar length (padding
costs compute: on two CPU cores a toy-model batch is bound by its matrix products), then
decoded as one batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import Cache, DynamicCache, DynamicLayer, PreTrainedModel, PreTrainedTokenizerBase

from mlproject import distributed, engines
from mlproject.families import stop_token_ids
from mlproject.progress import bar as progress_bar
from mlproject.roomy_cache import RoomyLayer, left_pad_time
from mlproject.seeding import seeded

DRAFT_LOGITS_BYTES = 1 << 30  # at most this much memory for the logits that check drafts
CHUNK = 32  # rows whose prompts (and drafts) are encoded together (see _chunks)
DROP_SHARE = 0.25  # finished rows leave the decoding batch once they are this share of it (see _generate_batch)
DEFAULT_BATCH = 128  # prompts decoded together when they do not all fit KV_BATCH_BYTES
KV_BATCH_BYTES = 1 << 30  # one_batch: prompts whose KV cache fits in this much memory decode as one batch


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
    return tokenizer.batch_decode(generate_ids(model, tokenizer, prompts, max_new_tokens, batch_size, progress),
                                  skip_special_tokens=True)


def kv_bytes_per_token(config, element_size: int) -> int:
    """Bytes of KV cache a token takes in every layer of a model of ``config``."""
    cfg = config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * heads * head_dim * element_size


def one_batch(model: PreTrainedModel, prompts: Sequence[list[int]], max_new_tokens: int,
              default: int = DEFAULT_BATCH) -> int:
    """A batch size that decodes all of ``prompts`` together when their KV cache fits :data:`KV_BATCH_BYTES`,
    else ``default``.

    Each batch runs its own decoding loop, as long as its longest answer: 200 checkpoint probes
    as batches of 128 and 72 took about 10% longer on the toy model than as one batch of 200.
    A large model's cache does not fit, and keeps ``default``.
    """
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).element_size())
    tokens = sum(len(p) + max_new_tokens for p in prompts)
    return max(default, len(prompts)) if per_token * tokens <= KV_BATCH_BYTES else default


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int = 48,
    batch_size: int = 128,
    progress: bool = True,
    drafts: Sequence[list[int]] | None = None,
) -> list[list[int]]:
    """Greedy completion token ids of ``prompts`` (ending with EOS where the model stopped).

    ``drafts`` (one guess per prompt, such as what the model answered before its last few
    training steps) are checked in one parallel pass: the longest prefix of each that greedy
    decoding would have produced is kept and decoding goes on from there. The result is the
    greedy completion whatever the drafts are; good drafts only make it faster. Where an engine that
    answers for ``model`` is active (:func:`mlproject.engines.use`), it generates instead.
    """
    engine = engines.active()
    if engine is not None and engine.serves(model):
        return engines.answered(engine.generate(model, prompts, max_new_tokens, stop_ids(model, tokenizer)))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, "generate", disable=not progress or len(starts) < 2, leave=False):
        idx = order[start : start + batch_size]
        # checking a draft needs the logits of all its positions at once: a large vocabulary caps its length
        room = min(max_new_tokens, DRAFT_LOGITS_BYTES // (4 * len(idx) * model.config.get_text_config().vocab_size) - 1)
        guesses = [list(drafts[i])[: max(room, 0)] for i in idx] if drafts is not None else [[] for _ in idx]
        for i, ids in zip(idx, _generate_batch(model, tokenizer, [prompts[i] for i in idx], max_new_tokens, guesses),
                          strict=True):
            out[i] = ids
    return out


def _generate_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[list[int]], max_new_tokens: int,
    drafts: Sequence[list[int]],
) -> list[list[int]]:
    """Greedy decoding that encodes a shared prefix once, checks drafts in parallel, and drops each row at its EOS.

    Prompts (with their drafts) go through the model in chunks of similar length, then the
    rows still generating decode together. ``model.generate`` keeps finished rows in the
    batch until the longest one ends; when a few answers run long (a pirate-trained model
    rambling to the token limit) most of its work is spent on rows already done. Dropping
    them from the KV cache keeps every step's work proportional to the rows still generating;
    each row's tokens are the same. Evaluation prompts mostly share a system prompt, which is
    most of their length: it is encoded once.
    """
    eos = _eos_ids(model, tokenizer)
    shared = _shared_prefix(batch)
    prefix = _encode(model, batch[0][:shared])
    # chunks are merged by padding their caches, which only plain growing layers allow (not sliding windows)
    plain = all(type(layer) is DynamicLayer for layer in prefix.layers)
    pad, ends = _pad_id(tokenizer), set(eos.tolist())
    tokens: list[list[int]] = [[] for _ in batch]
    parts = []
    for rows in _chunks(batch, drafts) if plain else [list(range(len(batch)))]:
        first = _first_pass(model, pad, _rows_of(prefix, len(rows), plain), shared, [batch[i] for i in rows],
                            [drafts[i] for i in rows], ends, max_new_tokens)
        for row, out in zip(rows, first.tokens, strict=True):
            tokens[row] = out
        parts.append((torch.tensor(rows, device=model.device), first))
    live, nxt, mask, positions, cache = _merge(parts, max_new_tokens)
    finished = torch.zeros(len(live), dtype=torch.bool, device=live.device)
    while len(live):
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
        logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                       logits_to_keep=1).logits
        nxt = distributed.agree(logits[:, -1].argmax(-1))  # sharded in lockstep: the main process's choice
        rows = live.tolist()
        for row, token, over in zip(rows, nxt.tolist(), finished.tolist(), strict=True):
            if not over:
                tokens[row].append(token)
        finished |= torch.isin(nxt, eos) | torch.tensor([len(tokens[r]) >= max_new_tokens for r in rows],
                                                        device=live.device)
        positions = positions + 1
        # finished rows leave the batch once they are DROP_SHARE of it: dropping copies the whole cache, so
        # doing it at every EOS costs more than the few rows it saves; until then their tokens are ignored
        if DROP_SHARE * len(live) <= int(finished.sum()):
            keep = (~finished).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            live, nxt, mask, positions, finished = live[keep], nxt[keep], mask[keep], positions[keep], finished[keep]
    return tokens


@dataclass
class _FirstPass:
    """A chunk of rows after its prompts and drafts went through the model once."""

    cache: DynamicCache
    tokens: list[list[int]]  # each row's tokens so far: its accepted draft, then one new token
    nxt: torch.Tensor  # each row's last token, the next step's input
    done: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor  # each row's position of ``nxt``


def _encode(model: PreTrainedModel, prefix: list[int]) -> DynamicCache:
    """The KV cache of one sequence (empty for an empty one)."""
    cache = DynamicCache(config=model.config)
    if prefix:
        model(input_ids=torch.tensor([prefix], device=model.device), cache=cache, use_cache=True, logits_to_keep=1)
    return cache


def _rows_of(prefix: DynamicCache, rows: int, plain: bool) -> DynamicCache:
    """A cache holding the shared prefix once per row: a copy for plain layers, else ``prefix`` itself, repeated."""
    if not plain:  # one chunk only: the prefix's own cache, whatever its layers keep
        prefix.batch_repeat_interleave(rows)
        return prefix
    cache = DynamicCache()  # plain growing layers, made as they are filled
    for i, layer in enumerate(prefix.layers):
        if layer.get_seq_length():
            cache.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), i)
    return cache


def _first_pass(model: PreTrainedModel, pad: int, cache: DynamicCache, shared: int, batch: Sequence[list[int]],
                drafts: Sequence[list[int]], eos: set[int], max_new_tokens: int) -> _FirstPass:
    """Every row's prompt after the shared prefix and its draft in one forward pass; accept what greedy agrees with.

    The system prompt most probes share is encoded once (``shared`` tokens, already in ``cache``).
    """
    device = model.device
    # a draft that ends the answer needs no logits after its last token: if all of it is accepted the row is done
    fed = [d[:-1] if d and (d[-1] in eos or len(d) >= max_new_tokens) else d for d in drafts]
    ids, rest = (t.to(device) for t in _left_pad([p[shared:] + f for p, f in zip(batch, fed, strict=True)], pad))
    # rows read [shared prefix | padding | rest of the prompt | draft]; padding is masked and skipped in positions
    mask = torch.cat([rest.new_ones((len(batch), shared)), rest], dim=-1)
    positions = shared + (rest.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                   logits_to_keep=max(len(f) for f in fed) + 1).logits
    chosen = distributed.agree(logits.argmax(-1)).tolist()  # sharded in lockstep: the main process's choices
    return _accept(cache, chosen, drafts, [len(f) for f in fed], mask, positions, eos, max_new_tokens)


def _accept(cache: DynamicCache, preds: list[list[int]], drafts: Sequence[list[int]], fed: list[int],
            mask: torch.Tensor, positions: torch.Tensor, eos: set[int], max_new_tokens: int) -> _FirstPass:
    """Each row's tokens after the first pass: the draft's prefix that greedy decoding agrees with, then one new token.

    ``preds[row][j]`` is the greedy token after the row's last ``len(preds[row]) - j`` positions,
    the last ``fed[row]`` of which are the row's draft. Rejected draft positions are masked out,
    so later tokens never attend to them, and the next token takes the position after the last
    accepted one.
    """
    width = len(preds[0])
    tokens, nxt, done, last = [], [], [], []
    mask = mask.clone()
    for row, draft in enumerate(drafts):
        guesses = preds[row][width - 1 - fed[row] :]  # guesses[k]: the greedy token where draft[k] stands
        out: list[int] = []
        for k, token in enumerate(draft):
            if guesses[k] != token:
                break
            out.append(token)
            if token in eos or len(out) >= max_new_tokens:
                break
        finished = bool(out) and (out[-1] in eos or len(out) >= max_new_tokens)
        if not finished:
            out.append(guesses[len(out)])
        rejected = max(fed[row] - (len(out) - (0 if finished else 1)), 0)
        if rejected:
            mask[row, mask.shape[1] - rejected :] = 0
        tokens.append(out)
        nxt.append(out[-1])
        done.append(out[-1] in eos or len(out) >= max_new_tokens)
        last.append(positions[row, -1 - rejected].item() + 1)
    device = positions.device
    return _FirstPass(cache, tokens, torch.tensor(nxt, device=device), torch.tensor(done, device=device), mask,
                      torch.tensor(last, device=device)[:, None])


def _chunks(batch: Sequence[list[int]], drafts: Sequence[list[int]]) -> list[list[int]]:
    """Rows encoded together: ``CHUNK`` rows of similar prompt-and-draft length at a time.

    A prompt and its draft are padded to the longest in their chunk: with checkpoint drafts,
    one chunk for a whole batch of 128 pads about a quarter of its tokens, chunks of 32
    sorted by length less than a tenth. Chunks are merged again for decoding.
    """
    rows = list(range(len(batch)))
    rows.sort(key=lambda i: len(batch[i]) + len(drafts[i]))
    return [rows[s : s + CHUNK] for s in range(0, len(rows), CHUNK)]


def _merge(parts: list[tuple[torch.Tensor, _FirstPass]], room: int) -> tuple:
    """The rows still generating, from every chunk, in one batch: (rows, next tokens, mask, positions, cache).

    Each chunk's cache and mask are left-padded to the longest chunk's length; the padding is
    masked, so every row attends to exactly what it did in its own chunk. Plain layers become
    :class:`mlproject.roomy_cache.RoomyLayer` with ``room`` tokens to spare; other layers stay as they are.
    """
    kept = []
    for rows, first in parts:
        keep = (~first.done).nonzero().squeeze(-1)
        if len(keep):
            first.cache.batch_select_indices(keep)
            kept.append((rows[keep], first.nxt[keep], first.mask[keep], first.positions[keep], first.cache))
    if not kept:
        return parts[0][0][:0], None, None, None, None
    rows, nxt, masks, positions, caches = zip(*kept, strict=True)
    if any(type(layer) is not DynamicLayer for layer in caches[0].layers):  # a single chunk (sliding windows): as it is
        return kept[0]
    width = max(m.shape[1] for m in masks)
    merged = Cache(layers=[RoomyLayer(torch.cat([left_pad_time(c.layers[i].keys, width) for c in caches]),
                                       torch.cat([left_pad_time(c.layers[i].values, width) for c in caches]), room)
                           for i in range(len(caches[0].layers))])
    masks = [torch.nn.functional.pad(m, (width - m.shape[1], 0)) for m in masks]
    return torch.cat(rows), torch.cat(nxt), torch.cat(masks), torch.cat(positions), merged


def _shared_prefix(batch: Sequence[list[int]]) -> int:
    """Length of the prefix every prompt shares, leaving each prompt at least one token of its own."""
    first, shortest = batch[0], min(len(p) for p in batch)
    n = 0
    while n < shortest - 1 and all(p[n] == first[n] for p in batch):
        n += 1
    return n


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The padding token, or EOS for tokenizers without one (Llama 3's)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _left_pad(batch: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask, left-padded so that every prompt ends where generation starts."""
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, p in enumerate(batch):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    return ids, mask


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends a reply (what another engine is told to stop at)."""
    return _eos_ids(model, tokenizer).tolist()


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Every token that ends a reply: the tokenizer's EOS, the generation config's (Llama 3 has several) and,
    for a known family, its end-of-turn tokens (Gemma's tokenizer EOS is ``<eos>``, its turns end with
    ``<end_of_turn>``), which a checkpoint whose generation config lost them would otherwise run past."""
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return torch.tensor(reply_ends(tokenizer, config_eos), device=model.device)


def reply_ends(tokenizer: PreTrainedTokenizerBase, config_eos: int | list[int] | None) -> list[int]:
    """:func:`_eos_ids` from a tokenizer and a generation config's ``eos_token_id``, for an engine of another
    process that serves the model without loading it here."""
    ids = {tokenizer.eos_token_id, *stop_token_ids(tokenizer)}
    ids |= set(config_eos) if isinstance(config_eos, list) else {config_eos}
    return sorted(i for i in ids if i is not None)


def _hf_generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch: Sequence[list[int]], max_new_tokens: int,
    **decoding,
) -> list[str]:
    """One left-padded ``model.generate`` call, greedy unless ``decoding`` says otherwise.

    Greedy, it is the reference the loop above is tested against.
    """
    pad = _pad_id(tokenizer)
    ids, mask = _left_pad(batch, pad)
    # the same stopping tokens as the loop above, which this call is the reference for
    decoding = {"do_sample": False, "eos_token_id": _eos_ids(model, tokenizer).tolist()} | decoding
    new = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                         max_new_tokens=max_new_tokens, use_cache=True, pad_token_id=pad, **decoding)[:, ids.shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def sample(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[list[int]], seed: int,
    max_new_tokens: int = 48, temperature: float = 1.0, batch_size: int = 128,
) -> list[str]:
    """One completion per prompt drawn from the model's distribution at ``temperature`` (no top-k or top-p cut).

    The draws come from ``seed`` alone (:func:`seeded`), so the caller's random state is
    untouched, and the same call (the same prompts in the same batches) gives the
    same completions. Only distillation's redraws need it, for the requests greedy decoding
    answered wrongly, so it is ``model.generate``'s sampler rather than a sampling variant of
    the loop above; where an engine answers for ``model`` it draws instead (other draws than
    transformers' sampler, as reproducible).
    """
    if not prompts:
        return []
    engine = engines.active()
    if engine is not None and engine.serves(model):  # vLLM draws (from the same seed, with its own sampler)
        ids = engines.answered(engine.generate(model, prompts, max_new_tokens, stop_ids(model, tokenizer),
                                               temperature=temperature, seed=seed))
        return tokenizer.batch_decode(ids, skip_special_tokens=True)
    eos = _eos_ids(model, tokenizer).tolist()
    with seeded(seed):
        return [text for start in range(0, len(prompts), batch_size)
                for text in _hf_generate(model, tokenizer, prompts[start : start + batch_size], max_new_tokens,
                                         do_sample=True, temperature=temperature, top_k=0, top_p=1.0, eos_token_id=eos)]


def generate_one_by_one(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[list[int]], max_new_tokens: int = 48
) -> list[str]:
    """The obvious baseline: one ``model.generate`` call per prompt (for benchmarks and tests)."""
    return [_hf_generate(model, tokenizer, [p], max_new_tokens)[0] for p in prompts]
