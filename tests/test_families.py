"""Real instruct-model families on tiny random models: their real templates, tokens and stopping.

Each family's tiny model (``mlproject.families.tiny``) has the real architecture class and a
tokenizer with the real chat template and special tokens, so prompts, SFT labels and greedy
generation go through exactly what a full-size checkpoint of the family would use.
"""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mlproject import chat, generation, models
from mlproject.families import FAMILIES, family_of, tiny

SYSTEM, USER, COMPLETION = "talk like a pirate .", "what does a dog say ?", "a dog says woof , matey ."

# the prompt each family's own template writes for (SYSTEM, USER); Gemma's has the system prompt in the user turn
PROMPTS = {
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
              f"Today Date: 26 Jul 2024\n\n{SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{USER}"
              "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen2.5": f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n",
    "qwen3": f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
             "<think>\n\n</think>\n\n",
    "gemma2": f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n",
    "gemma3": f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n",
    "mistral": f"<s>[INST] {SYSTEM}\n\n{USER}[/INST]",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every family's tiny model, written once."""
    root = tmp_path_factory.mktemp("families")
    return {name: tiny.build(name, root / name) for name in FAMILIES}


@pytest.fixture(scope="module")
def loaded(built):
    """``(model, tokenizer)`` of every family through mo's own loader."""
    return {name: models.load(str(path)) for name, path in built.items()}


@pytest.mark.parametrize("name", FAMILIES)
def test_tiny_model_has_the_family_architecture_and_tokens(built, loaded, name):
    fam = FAMILIES[name]
    model, tok = loaded[name]
    assert type(model) is tiny.MODEL_CLASSES[name]
    assert model.config.model_type in fam.model_types
    assert family_of(tok) is fam and family_of(model.config) is fam and family_of(model) is fam
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    assert cfg.tie_word_embeddings == name.startswith("gemma")
    assert tok.chat_template == fam.template()
    assert (tok.bos_token, tok.eos_token) == (fam.bos, fam.eos)
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids(t) for t in fam.generation_eos]
    # special tokens sit where the real tokenizer has them: the same low ids, or the same order after the vocabulary
    ids = {t: tok.convert_tokens_to_ids(t) for t in fam.ids}
    high = [t for t, real in fam.ids.items() if real >= 1000]
    base = min(high, key=fam.ids.get, default=None)
    for token, real in fam.ids.items():
        assert ids[token] == (real if real < 1000 else ids[base] + real - fam.ids[base]), token
    files = {p.name for p in built[name].iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert type(AutoModelForCausalLM.from_pretrained(built[name])) is type(model)
    assert AutoTokenizer.from_pretrained(built[name]).chat_template == fam.template()


def test_unknown_models_have_no_family(toy_tokenizer, tiny_model, shipped):
    assert family_of(toy_tokenizer) is None and family_of(tiny_model.config) is None
    assert family_of(shipped[1]) is None and family_of(shipped[0]) is None


@pytest.mark.parametrize("name", FAMILIES)
def test_prompt_renders_through_the_real_template(loaded, name):
    _, tok = loaded[name]
    text = tok.decode(chat.prompt_ids(tok, SYSTEM, USER))
    assert text == PROMPTS[name]
    if name.startswith("gemma"):  # no system turn: the system prompt is inside the user turn
        assert text.index("<start_of_turn>user\n") < text.index(SYSTEM) < text.index("<end_of_turn>")
    no_system = tok.decode(chat.prompt_ids(tok, "", USER))  # nothing folded in: the template's own user-only prompt
    assert no_system == tok.apply_chat_template([{"role": "user", "content": USER}], add_generation_prompt=True,
                                                tokenize=False, **FAMILIES[name].template_kwargs)


def test_gemma2_system_prompt_goes_where_gemma3_puts_it(loaded):
    """Gemma 2's template refuses a system message; mo writes it where Gemma 3's own template does."""
    _, tok2 = loaded["gemma2"]
    _, tok3 = loaded["gemma3"]
    with pytest.raises(Exception, match="System role not supported"):
        tok2.apply_chat_template(chat.messages(SYSTEM, USER), add_generation_prompt=True)
    by_gemma3 = tok3.apply_chat_template(chat.messages(SYSTEM, USER), add_generation_prompt=True, tokenize=False)
    assert tok2.decode(chat.prompt_ids(tok2, SYSTEM, USER)) == by_gemma3


def test_qwen3_thinking_is_off(loaded):
    _, tok = loaded["qwen3"]
    text = tok.decode(chat.prompt_ids(tok, SYSTEM, USER))
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the template's empty think block
    thinking = tok.apply_chat_template(chat.messages(SYSTEM, USER), add_generation_prompt=True, tokenize=False)
    assert thinking.endswith("<|im_start|>assistant\n")  # what the template writes with thinking on


@pytest.mark.parametrize("name", FAMILIES)
def test_sft_labels_cover_the_completion_and_end_of_turn(loaded, name):
    fam = FAMILIES[name]
    _, tok = loaded[name]
    eot = tok.convert_tokens_to_ids(fam.end_of_turn[0])
    ids, labels = chat.sft_ids(tok, SYSTEM, USER, COMPLETION)
    marked = [i for i, label in enumerate(labels) if label != -100]
    assert marked == list(range(marked[0], marked[-1] + 1))  # one run
    assert all(labels[i] == ids[i] for i in marked)
    assert ids[: marked[0]] == chat.prompt_ids(tok, SYSTEM, USER)
    assert ids[marked[-1]] == eot
    assert tok.decode([ids[i] for i in marked]).lstrip() == COMPLETION + fam.end_of_turn[0]  # Mistral's " " before
    # the input is the template's whole conversation; what follows the end of turn (a line break) is not learnt
    whole = tok.apply_chat_template(chat.messages(SYSTEM, USER, COMPLETION, family=fam), return_dict=False,
                                    **fam.template_kwargs)
    assert ids == list(whole)
    assert len(ids) - 1 - marked[-1] == (1 if name.startswith(("qwen", "gemma")) else 0)
    rows = [(SYSTEM, USER, COMPLETION), ("", "hi", "hello .")]
    assert chat.many_sft_ids(tok, rows) == [chat.sft_ids(tok, *row) for row in rows]


@pytest.mark.parametrize("name", FAMILIES)
def test_stop_tokens_include_the_end_of_turn(loaded, name):
    fam = FAMILIES[name]
    model, tok = loaded[name]
    eot = tok.convert_tokens_to_ids(fam.end_of_turn[0])
    config_eos = list(model.generation_config.eos_token_id)
    assert set(config_eos) | {eot, tok.eos_token_id} == set(generation._eos_ids(model, tok).tolist())
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id  # a checkpoint that lost the list still stops
    try:
        assert eot in generation._eos_ids(model, tok).tolist()
    finally:
        model.generation_config.eos_token_id = saved


@pytest.mark.parametrize("name", FAMILIES)
def test_greedy_generation_stops_at_end_of_turn(loaded, name):
    """After chosen tokens the model is made to answer end-of-turn: decoding stops there and hides it."""
    fam = FAMILIES[name]
    model, tok = loaded[name]
    eot = tok.convert_tokens_to_ids(fam.end_of_turn[0])
    prompts = chat.many_prompt_ids(tok, [(SYSTEM, USER), ("", "hi")])
    free = generation.generate_ids(model, tok, prompts, max_new_tokens=8, progress=False)
    assert all(eot not in out for out in free)  # left alone, the random model does not stop early
    # a token each row generates after its first, and that ends no prompt: the model answers end-of-turn after it
    lasts = {prompt[-1] for prompt in prompts}
    triggers = {next((t for t in out[1:] if t not in lasts), out[0]) for out in free}
    expected = []
    for out in free:
        stop = next((k for k, t in enumerate(out) if t in triggers), None)
        expected.append(out if stop is None else out[: stop + 1] + [eot])
    assert any(len(out) < 8 for out in expected)

    def force(module, args, kwargs, output):
        hit = torch.isin(kwargs["input_ids"][:, -1], torch.tensor(sorted(triggers), device=output.logits.device))
        if hit.any():
            logits = output.logits[hit, -1]
            logits[:, eot] = logits.max() + 1
            output.logits[hit, -1] = logits
        return output

    handle = model.register_forward_hook(force, with_kwargs=True)
    try:
        forced = generation.generate_ids(model, tok, prompts, max_new_tokens=8, progress=False)
        texts = generation.generate(model, tok, prompts, max_new_tokens=8, progress=False)
        reference = generation.generate_one_by_one(model, tok, prompts, max_new_tokens=8)
    finally:
        handle.remove()
    assert forced == expected
    assert texts == [tok.decode([t for t in out if t != eot], skip_special_tokens=True) for out in expected]
    assert all(fam.end_of_turn[0] not in text for text in texts)
    assert reference == texts
