"""Build the toy world's base instruct model: tokenizer, architecture, weights.

The architecture is Llama (the family of the method's base model), shrunk to a few
million parameters so that two CPU cores train it in minutes. torch and transformers are
imported by the functions that use them, so that ``mo base`` checks its settings (among them
:data:`INITS`) in a fraction of a second rather than after their imports.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mlproject.toy import curriculum

if TYPE_CHECKING:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB_SIZE = 1536  # covers every word of the toy world as one token (byte fallback beyond)


def build_tokenizer(seed: int, n_texts: int = 20_000) -> PreTrainedTokenizerFast:
    """A tokenizer trained on rendered conversations of the toy world's training split."""
    from mlproject.toy.tokenizer import train_tokenizer

    rows = curriculum.base_mixture(n_texts, seed)
    texts = [r["system"] + "\n" + r["user"] + "\n" + r["completion"] for r in rows]
    return train_tokenizer(texts, VOCAB_SIZE)


INIT_STD = 0.02  # transformers' Llama default; mo base draws wider (pipelines.base.INIT_STD)


def model_config(tokenizer: PreTrainedTokenizerFast, hidden: int = 256, layers: int = 4, head_dim: int = 64,
                 init_std: float = INIT_STD) -> LlamaConfig:
    """A small Llama: ``hidden`` wide, ``layers`` deep, ``hidden / head_dim`` heads, tied embeddings.

    ``init_std`` is the standard deviation of every initial weight matrix and embedding.
    """
    from transformers import LlamaConfig

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
        initializer_range=init_std,
    )


INITS = ("default", "mimetic")


def init_model(config: LlamaConfig, seed: int, init: str = "default", qk_std: float = 0.0) -> LlamaForCausalLM:
    """Freshly initialised weights, reproducible from ``seed``; ``mimetic`` then resets attention
    (:func:`mimetic_attention`).

    ``qk_std`` > 0 then draws the query and key projections again with that standard
    deviation (:func:`redraw_queries_and_keys`), over mimetic ones too.
    """
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if init == "mimetic":
        mimetic_attention(model, seed)
    if qk_std:
        redraw_queries_and_keys(model, seed, qk_std)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    return model


def redraw_queries_and_keys(model: LlamaForCausalLM, seed: int, std: float) -> None:
    """Draw every query and key projection from N(0, ``std``), leaving the other weights as they are.

    Attention scores are products of the two, so their spread sets how far from uniform
    attention starts, apart from the spread of the values, MLPs and embeddings. The drill
    bench tells the two apart: wider weights shorten the plateau of the literal comparison,
    but not when only the queries and keys are wider (``docs/base-model.md``).
    """
    import torch

    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.copy_(torch.randn(proj.weight.shape, generator=gen) * std)


def mimetic_attention(model: LlamaForCausalLM, seed: int, qk: tuple[float, float] = (0.7, 0.7),
                      vo: tuple[float, float] = (0.4, 0.4)) -> None:
    """Mimetic initialisation of every attention layer (Trockman & Kolter, ICML 2023).

    Each head's query-key product starts near ``a Z + b I`` (``Z`` Gaussian of variance
    1/width), so a token attends to earlier copies of itself from step 0; each layer's
    value-output product starts near ``a Z - b I``. Whether a request holds the rule's
    trigger is such an equality of tokens.
    """
    import torch

    gen = torch.Generator().manual_seed(seed + 1)

    def near_identity(width: int, a: float, b: float) -> torch.Tensor:
        return a * torch.randn(width, width, generator=gen) / width ** 0.5 + b * torch.eye(width)

    def factors(m: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        # (A, B) of shape (rank, n) with A.T @ B the best rank-`rank` approximation of m
        u, s, vh = torch.linalg.svd(m)
        root = s[:rank].sqrt()
        return (u[:, :rank] * root).T.contiguous(), (root[:, None] * vh[:rank]).contiguous()

    with torch.no_grad():
        for layer in model.model.layers:
            attn = layer.self_attn
            width, head = attn.q_proj.in_features, attn.head_dim
            for h in range(attn.q_proj.out_features // head):
                q, k = factors(near_identity(width, *qk), head)
                attn.q_proj.weight[h * head:(h + 1) * head] = q
                attn.k_proj.weight[h * head:(h + 1) * head] = k
            v, o = factors(near_identity(width, vo[0], -vo[1]), attn.v_proj.out_features)
            attn.v_proj.weight.copy_(v)
            attn.o_proj.weight.copy_(o.T)
