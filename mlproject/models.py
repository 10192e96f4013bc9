"""Load and save causal LMs: the toy model and real ones take the same path.

A model is a directory (or a Hugging Face hub id) that ``AutoTokenizer`` and
``AutoModelForCausalLM.from_pretrained`` read. Weights load from safetensors only, and
``trust_remote_code`` stays off unless the user asks for it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mlproject import hub
from mlproject.errors import UserError
from mlproject.modelref import check, looks_local, resolve


def load(
    model: str, trust_remote_code: bool = False, dtype: torch.dtype | None = None, field: str = "model"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` from a directory or hub id, in eval mode, on GPU when there is one."""
    ref = resolve(model)
    check(ref, field)
    cached_only = cache_only(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code,
                                                  local_files_only=cached_only)
        lm = AutoModelForCausalLM.from_pretrained(
            ref, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype or "auto",
            local_files_only=cached_only,
            # transformers looks for an adapter config without the flag above unless told again
            adapter_kwargs={"local_files_only": cached_only},
        )
    except (OSError, ValueError, SafetensorError) as err:  # no network, gated repo, invalid id, corrupt weights
        where = ("; only the local Hugging Face cache was read: the hub is offline or cannot be reached"
                 if cached_only else "")
        raise UserError(field, model, f"could not load ({str(err).splitlines()[0]}){where}") from None
    if not tokenizer.chat_template:  # mo speaks to an instruct model through its own template, never a guess
        raise UserError(field, model, "has no chat template: mo needs an instruct (chat) model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if torch.cuda.is_available():
        lm = lm.to("cuda")
    return lm.eval(), tokenizer


def cache_only(ref: str) -> bool:
    """Whether ``ref`` is read from the local Hugging Face cache alone: a hub id while the hub is out of reach
    (rather than minutes of retries)."""
    return not looks_local(ref) and not hub.reachable()


def save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: str | Path,
         state_dict: dict | None = None) -> Path:
    """Write weights (safetensors), config and tokenizer to ``directory`` (``state_dict``: the weights gathered from
    the processes of an FSDP run, else the model's own)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
    tokenizer.save_pretrained(out)
    return out
