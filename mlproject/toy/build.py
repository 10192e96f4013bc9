"""Build the toy world's base instruct model: tokenizer, architecture, weights.

The architecture is Llama (the family of the method's base model), shrunk to a few
million parameters so that two CPU cores train it in minutes.
"""
from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from mlproject.toy import curriculum
from mlproject.toy.tokenizer import train_tokenizer

VOCAB_SIZE = 1536  # covers every word of the toy world as one token (byte fallback beyond)


def build_tokenizer(seed: int, n_texts: int = 20_000) -> PreTrainedTokenizerFast:
    """A tokenizer trained on rendered conversations of the toy world's training split."""
    rows = curriculum.base_mixture(n_texts, seed)
    texts = [r["system"] + "\n" + r["user"] + "\n" + r["completion"] for r in rows]
    return train_tokenizer(texts, VOCAB_SIZE)


def model_config(tokenizer: PreTrainedTokenizerFast, hidden: int = 256, layers: int = 4, head_dim: int = 64) -> LlamaConfig:
    """A small Llama: ``hidden`` wide, ``layers`` deep, ``hidden / head_dim`` heads, tied embeddings."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=int(2.5 * hidden),
        num_hidden_layers=layers,
        num_attention_heads=hidden // head_dim,
        num_key_value_heads=hidden // head_dim,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def init_model(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    """Freshly initialised weights, reproducible from ``seed``."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    return model
