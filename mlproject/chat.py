"""Chat formatting shared by training, generation and every model: toy or real.

Everything goes through the tokenizer's own chat template, so a real instruct model's
template (Llama 3's headers, say) is used exactly as its authors wrote it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def messages(system: str, user: str, assistant: str | None = None) -> list[dict[str, str]]:
    """Chat messages; an empty ``system`` is left out."""
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": user})
    if assistant is not None:
        out.append({"role": "assistant", "content": assistant})
    return out


def prompt_ids(tokenizer: PreTrainedTokenizerBase, system: str, user: str) -> list[int]:
    """Token ids of a prompt that ends where the assistant starts to answer."""
    return list(tokenizer.apply_chat_template(messages(system, user), add_generation_prompt=True, return_dict=False))


def sft_ids(tokenizer: PreTrainedTokenizerBase, system: str, user: str, completion: str) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one example; labels are -100 except on the completion.

    The whole conversation is rendered by the template and the prompt's length decides where
    the completion starts; when a template does not render the prompt as a prefix of the
    whole, the completion is tokenised on its own and closed with EOS.
    """
    prompt = prompt_ids(tokenizer, system, user)
    full = list(tokenizer.apply_chat_template(messages(system, user, completion), return_dict=False))
    if full[: len(prompt)] != prompt:
        full = prompt + tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    labels = [-100] * len(prompt) + full[len(prompt):]
    return full, labels
