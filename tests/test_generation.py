"""Batched generation gives exactly what one-prompt-at-a-time generation gives."""
from __future__ import annotations

from mlproject import chat
from mlproject.generation import generate, generate_one_by_one
from mlproject.toy import base_eval


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
