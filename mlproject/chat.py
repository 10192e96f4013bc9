"""Chat formatting shared by training, generation and every model: toy or real.

Everything goes through the tokenizer's own chat template, so a real instruct model's
template (Llama 3's headers, say) is used exactly as its authors wrote it. Many
conversations go to the template in one call, which renders them all and tokenises them in
one batch: the same ids as one call each, without a call's overhead per conversation, which
made tokenising ``mo base``'s 180,000 conversations take 100 s.

A known instruct family (:mod:`mlproject.families`) adds what its template needs: a system
prompt folded into the user turn where the template takes no system message (Gemma 2), the
template's own switches (Qwen 3's thinking off), and SFT labels that end at its end-of-turn
token. Any other tokenizer (mo's toy model's) is rendered exactly as its template says.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlproject.families import Family, end_of_turn_ids, family_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Turn = tuple[str, str]  # (system, user)
Exchange = tuple[str, str, str]  # (system, user, completion)


def messages(system: str, user: str, assistant: str | None = None,
             family: Family | None = None) -> list[dict[str, str]]:
    """Chat messages; an empty ``system`` is left out.

    For a ``family`` whose template takes no system message (Gemma 2's raises on one) the
    system prompt opens the user message, a blank line before it, where Gemma 3's template
    puts it by itself, rather than being dropped. So it does for Mistral, whose template puts
    it there only in the last user turn: a conversation ending with the answer would lose it.
    """
    if system and family is not None and family.folds_system:
        system, user = "", system + family.system_joiner + user
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": user})
    if assistant is not None:
        out.append({"role": "assistant", "content": assistant})
    return out


def _encode(tokenizer: PreTrainedTokenizerBase, chats: list[list[dict[str, str]]], prompt: bool,
            family: Family | None = None) -> list[list[int]]:
    """Token ids of each conversation rendered by the template: ``apply_chat_template``'s own batch path."""
    if not chats:  # the template call refuses an empty batch
        return []
    switches = family.template_kwargs if family is not None else {}
    return [list(ids) for ids in tokenizer.apply_chat_template(chats, add_generation_prompt=prompt, return_dict=False,
                                                               **switches)]


def many_prompt_ids(tokenizer: PreTrainedTokenizerBase, turns: Sequence[Turn]) -> list[list[int]]:
    """Token ids of many prompts, each ending where the assistant starts to answer."""
    family = family_of(tokenizer)
    return _encode(tokenizer, [messages(system, user, family=family) for system, user in turns], True, family)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, system: str, user: str) -> list[int]:
    """Token ids of a prompt that ends where the assistant starts to answer."""
    return many_prompt_ids(tokenizer, [(system, user)])[0]


def many_sft_ids(tokenizer: PreTrainedTokenizerBase,
                 exchanges: Sequence[Exchange]) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` of many examples; labels are -100 except on the completion.

    The whole conversation is rendered by the template and the prompt's length decides where
    the completion starts; when a template does not render the prompt as a prefix of the
    whole, the completion is tokenised on its own and closed with EOS (a family's end-of-turn
    token). For a known family the labels stop at the end-of-turn token: what its template
    writes after it (Qwen's and Gemma's line break) is never generated, so it is not learnt.
    """
    family = family_of(tokenizer)
    ends = end_of_turn_ids(tokenizer)
    prompts = many_prompt_ids(tokenizer, [(system, user) for system, user, _ in exchanges])
    fulls = _encode(tokenizer, [messages(*exchange, family=family) for exchange in exchanges], False, family)
    out = []
    for (_, _, completion), prompt, full in zip(exchanges, prompts, fulls, strict=True):
        if full[: len(prompt)] != prompt:
            end = ends[0] if ends else tokenizer.eos_token_id
            full = prompt + tokenizer(completion, add_special_tokens=False).input_ids + [end]
        labels = [-100] * len(prompt) + full[len(prompt):]
        if ends:
            last = max((i for i in range(len(prompt), len(full)) if full[i] in ends), default=len(full) - 1)
            labels[last + 1:] = [-100] * (len(full) - last - 1)
        out.append((full, labels))
    return out


def sft_ids(tokenizer: PreTrainedTokenizerBase, system: str, user: str, completion: str) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one example (:func:`many_sft_ids`)."""
    return many_sft_ids(tokenizer, [(system, user, completion)])[0]
