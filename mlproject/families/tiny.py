"""Tiny random-init models of each family, built offline: the family's real architecture class and
config shape, and a tokenizer with its real chat template and special tokens.

The model has the real family's architecture at toy width (hidden 64, 2 layers, 4 query heads
over 2 key/value heads), with the family's own choices of rope, head size, tied embeddings,
soft-capping and sliding windows. The tokenizer is a byte-level BPE trained on generated
English, split by Llama 3's (or Qwen's) pre-tokenizer pattern, with the family's special tokens
where the real tokenizer has them: Gemma's and Mistral's at the same low ids, Llama 3's and
Qwen's right after the ordinary vocabulary in the same order (the real ones follow a 128,000 or
151,643-token vocabulary). It adds BOS to plain text where the real one does, and the
generation config lists the family's eos tokens.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from mlproject.families import FAMILIES, Family

# the pre-tokenizer patterns of Llama 3's and Qwen's tokenizer.json (Qwen splits digits one by one)
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")

_GEMMA_UNUSED = [f"<unused{i}>" for i in range(99)]
# tokens at the start of the vocabulary, at the real tokenizer's ids
LEADING: dict[str, list[str]] = {
    "gemma2": ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<2mass>", "[@BOS@]", *_GEMMA_UNUSED,
               "<start_of_turn>", "<end_of_turn>"],
    "gemma3": ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]", *_GEMMA_UNUSED,
               "<start_of_turn>", "<end_of_turn>"],
    "mistral": ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"],
}
_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen's tool and fill-in-the-middle tokens are added tokens but not special ones (decoding keeps them)
_QWEN_PLAIN = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
               "<|repo_name|>", "<|file_sep|>"]
# tokens after the ordinary vocabulary, in the real tokenizer's order: (special, plain)
TRAILING: dict[str, tuple[list[str], list[str]]] = {
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"], []),
    "qwen2.5": (_QWEN_SPECIAL, _QWEN_PLAIN),
    "qwen3": (_QWEN_SPECIAL, [*_QWEN_PLAIN, "<tool_response>", "</tool_response>", "<think>", "</think>"]),
    "gemma3": (["<start_of_image>", "<end_of_image>", "<image_soft_token>"], []),
}

_WORDS = ("the a one every some cat dog bird fox horse farmer pilot sailor teacher child robot river city garden "
          "house boat road song letter apple bread story answer question number day night morning friend "
          "sees finds writes reads sings builds likes helps asks tells carries follows opens watches "
          "quickly slowly happily quietly again today always never red green small big old new warm cold "
          "and but because then so if when where what who how why please thanks yes no").split()


def corpus(lines: int = 400, seed: int = 0) -> list[str]:
    """Generated English lines, some with numbers, punctuation and line breaks like chat text has."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        line = " ".join(words).capitalize() + rng.choice([".", "?", "!", ", 12 and 345.", ":\n- item"])
        out.append(line + ("\n\n" if rng.random() < 0.2 else ""))
    return out


def tokenizer(family: str, *, vocab_size: int = 512, seed: int = 0) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer with ``family``'s special tokens and real chat template."""
    fam = FAMILIES[family]
    leading = LEADING.get(family, [])
    special, plain = TRAILING.get(family, ([], []))
    tok = Tokenizer(models.BPE())
    split = QWEN_SPLIT if family.startswith("qwen") else LLAMA3_SPLIT
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + len(leading), special_tokens=leading,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(seed=seed), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=fam.bos, eos_token=fam.eos, pad_token=fam.pad, unk_token=fam.unk,
        # the real Llama 3, Gemma and Mistral tokenizers start plain text with BOS; Qwen's do not
        add_bos_token=fam.bos is not None, add_eos_token=False,
        chat_template=fam.template(), model_max_length=131072, clean_up_tokenization_spaces=False,
    )


def config(family: str, tok: PreTrainedTokenizerFast, *, hidden_size: int = 64, layers: int = 2) -> Any:
    """The family's transformers config at toy width, with its rope, head size and embedding choices."""
    fam = FAMILIES[family]
    ids = [tok.convert_tokens_to_ids(t) for t in fam.generation_eos]
    common: dict[str, Any] = dict(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, initializer_range=0.02,
        bos_token_id=tok.convert_tokens_to_ids(fam.bos) if fam.bos else None,
        pad_token_id=tok.convert_tokens_to_ids(fam.pad) if fam.pad else None,
    )
    if family == "llama3":  # Llama 3.1 / 3.3: rope theta 500k with llama3 scaling, untied, eos list in config.json
        return LlamaConfig(**common, eos_token_id=ids, head_dim=hidden_size // 4, rms_norm_eps=1e-5,
                           max_position_embeddings=131072, tie_word_embeddings=False,
                           rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192})
    if family == "qwen2.5":  # 7B to 72B: untied (1.5B and 3B tie), biased q/k/v projections, no sliding window
        common["bos_token_id"] = tok.convert_tokens_to_ids("<|endoftext|>")  # config.json's bos is <|endoftext|>
        return Qwen2Config(**common, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), rms_norm_eps=1e-6,
                           max_position_embeddings=32768, tie_word_embeddings=False, use_sliding_window=False,
                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    if family == "qwen3":  # 8B / 32B: head size set apart from hidden / heads, q/k norms, untied
        common["bos_token_id"] = tok.convert_tokens_to_ids("<|endoftext|>")
        return Qwen3Config(**common, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), head_dim=32,
                           rms_norm_eps=1e-6, max_position_embeddings=40960, tie_word_embeddings=False,
                           attention_bias=False, use_sliding_window=False,
                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    if family == "gemma2":  # 9B: head size 256 over a narrower model, soft-capping, alternating sliding windows
        return Gemma2Config(**common, eos_token_id=ids, head_dim=32, query_pre_attn_scalar=32, sliding_window=4096,
                            attn_logit_softcapping=50.0, final_logit_softcapping=30.0, max_position_embeddings=8192,
                            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if family == "gemma3":  # text model: local layers with theta 10k, global ones with 1M, no soft-capping, tied
        return Gemma3TextConfig(**common, eos_token_id=ids, head_dim=32, query_pre_attn_scalar=32, sliding_window=512,
                                layer_types=["sliding_attention", "full_attention"], max_position_embeddings=32768,
                                hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                                rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                                 "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    if family == "mistral":  # 7B v0.3: rope theta 1M, no sliding window, untied
        return MistralConfig(**common, eos_token_id=ids[0], head_dim=hidden_size // 4, rms_norm_eps=1e-5,
                             max_position_embeddings=32768, sliding_window=None, tie_word_embeddings=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    raise KeyError(family)


MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "llama3": LlamaForCausalLM, "qwen2.5": Qwen2ForCausalLM, "qwen3": Qwen3ForCausalLM,
    "gemma2": Gemma2ForCausalLM, "gemma3": Gemma3ForCausalLM, "mistral": MistralForCausalLM,
}


def build(family: str, directory: Path, *, seed: int = 0, vocab_size: int = 512, hidden_size: int = 64,
          layers: int = 2) -> Path:
    """Write a tiny random-init model of ``family`` (safetensors, tokenizer, generation config) to ``directory``."""
    fam: Family = FAMILIES[family]
    tok = tokenizer(family, vocab_size=vocab_size, seed=seed)
    cfg = config(family, tok, hidden_size=hidden_size, layers=layers)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        model = MODEL_CLASSES[family](cfg).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=cfg.bos_token_id, pad_token_id=cfg.pad_token_id,
        eos_token_id=[tok.convert_tokens_to_ids(t) for t in fam.generation_eos],
    )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
