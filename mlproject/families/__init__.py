"""Instruct-model families mo knows: their chat templates, special tokens and stopping tokens.

A family is recognised from a tokenizer's special tokens (:func:`family_of`); mo's own toy
model and any other model matches none and is handled exactly as before. What a family
changes: the system prompt goes into the first user turn when its template takes no system
message (Gemma 2), its template is rendered with its own switches (Qwen 3's thinking off),
SFT labels end at its end-of-turn token, and generation stops at every token that ends a
reply. :mod:`mlproject.families.tiny` builds a tiny random model of each family for tests.

Templates, copied verbatim into ``templates/<family>.jinja``:

- ``llama3.jinja``: the ``chat_template`` of meta-llama/Llama-3.1-8B-Instruct, from
  ggml-org/llama.cpp ``models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja`` (snapshot of
  the fork ye-NX/llama.cpp, commit 1eeb523c); byte-identical to
  ``meta-llama-Llama-3.3-70B-Instruct.jinja`` there, and to xorbitsai/inference
  ``xinference/model/llm/llm_family.json`` ("llama-3.1-instruct").
- ``qwen2.5.jinja``: Qwen/Qwen2.5-7B-Instruct, llama.cpp
  ``models/templates/Qwen-Qwen2.5-7B-Instruct.jinja`` (same commit); identical to
  xorbitsai/inference's "qwen2.5-instruct" entry.
- ``qwen3.jinja``: Qwen/Qwen3-0.6B, llama.cpp ``models/templates/Qwen-Qwen3-0.6B.jinja`` (same
  commit); identical to xorbitsai/inference's "qwen3" entry. The Qwen 3 dense models (8B, 32B)
  ship this same template.
- ``gemma2.jinja``: google/gemma-2-2b-it, llama.cpp ``models/templates/google-gemma-2-2b-it.jinja``
  (same commit), the template of the whole Gemma 2 instruct line (gemma-2-9b-it included).
- ``gemma3.jinja``: google/gemma-3-4b-it, from xorbitsai/inference
  ``xinference/model/llm/llm_family.json`` ("gemma-3-it", commit 7ecec16b; its "gemma-3-1b-it"
  entry is the same text); it is also the ``_CHAT_TEMPLATE`` that huggingface/transformers
  ``src/transformers/models/gemma3/convert_gemma3_weights.py`` writes into converted checkpoints.
- ``mistral.jinja``: Mistral's "v3" template, the one mistralai/Mistral-7B-Instruct-v0.3
  ships, from llama.cpp ``tests/test-chat-template.cpp`` (same commit, the entry named
  "Mistral-Large-Instruct-2407 (mistralai 'v3' template ...)"). xorbitsai/inference's
  "mistral-instruct-v0.3" entry (pinned to revision 83e9aa14 of mistralai/Mistral-7B-Instruct-v0.3)
  is the same text with ``bos_token``/``eos_token`` written out as ``'<s>'``/``'</s>'`` and the
  ``"\\n\\n"`` escape written as two newlines; no verbatim copy of the hub file itself was found.

Special tokens of the real tokenizers (:attr:`Family.token_ids` holds the ids):

- Llama 3.1/3.3 Instruct: bos ``<|begin_of_text|>`` 128000, eos ``<|eot_id|>`` 128009, no pad;
  the turn ends with ``<|eot_id|>``; generation_config eos 128001 ``<|end_of_text|>``,
  128008 ``<|eom_id|>``, 128009 ``<|eot_id|>``.
- Qwen 2.5 and Qwen 3: no bos, eos ``<|im_end|>`` 151645, pad ``<|endoftext|>`` 151643; the turn
  ends with ``<|im_end|>``; generation_config eos 151645 and 151643. Qwen 3 adds ``<think>``
  151667 and ``</think>`` 151668.
- Gemma 2: pad ``<pad>`` 0, eos ``<eos>`` 1, bos ``<bos>`` 2, unk ``<unk>`` 3, turns
  ``<start_of_turn>`` 106 ... ``<end_of_turn>`` 107; generation_config eos 1 and 107.
- Gemma 3: the same low ids, ``<start_of_turn>`` 105, ``<end_of_turn>`` 106, ``<start_of_image>``
  255999; generation_config eos 1 and 106.
- Mistral v0.3: unk ``<unk>`` 0, bos ``<s>`` 1, eos ``</s>`` 2, ``[INST]`` 3, ``[/INST]`` 4, no
  pad; the reply ends with ``</s>``; generation_config eos 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Family:
    """What mo needs to know about one instruct-model family."""

    name: str
    hub_ids: tuple[str, ...]  # models whose template and tokens these are
    model_types: tuple[str, ...]  # ``config.model_type`` of its checkpoints
    takes_system: bool  # the template accepts a system message (Gemma 2's raises on one)
    end_of_turn: tuple[str, ...]  # the token(s) closing an assistant turn
    generation_eos: tuple[str, ...]  # the generation config's eos tokens
    markers: tuple[str, ...]  # tokens that all appear in the family's vocabulary
    bos: str | None
    eos: str | None
    pad: str | None
    unk: str | None
    token_ids: tuple[tuple[str, int], ...]  # special tokens and their ids in the real tokenizer
    template_args: tuple[tuple[str, Any], ...] = ()  # extra variables the template is rendered with
    system_joiner: str = "\n\n"  # between a folded system prompt and the user message (Gemma 3's choice)
    # Mistral's v3 template writes the system prompt into the last user turn only, so a training
    # conversation that ends with the answer would lose it
    system_in_last_turn: bool = False

    @property
    def folds_system(self) -> bool:
        """Whether mo writes the system prompt into the user message itself, where the family's template would."""
        return not self.takes_system or self.system_in_last_turn

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``apply_chat_template``."""
        return dict(self.template_args)

    @property
    def ids(self) -> dict[str, int]:
        """The real tokenizer's id of each special token."""
        return dict(self.token_ids)

    def template(self) -> str:
        """The family's chat template, verbatim."""
        return _template(self.name)


@cache
def _template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


_LLAMA3_IDS = (("<|begin_of_text|>", 128000), ("<|end_of_text|>", 128001), ("<|finetune_right_pad_id|>", 128004),
               ("<|start_header_id|>", 128006), ("<|end_header_id|>", 128007), ("<|eom_id|>", 128008),
               ("<|eot_id|>", 128009), ("<|python_tag|>", 128010))
_QWEN_IDS = (("<|endoftext|>", 151643), ("<|im_start|>", 151644), ("<|im_end|>", 151645))
_GEMMA_LOW_IDS = (("<pad>", 0), ("<eos>", 1), ("<bos>", 2), ("<unk>", 3), ("<mask>", 4))

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        name="llama3", hub_ids=("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"),
        model_types=("llama",), takes_system=True, end_of_turn=("<|eot_id|>",),
        generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        markers=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None, token_ids=_LLAMA3_IDS,
    ),
    Family(
        name="qwen2.5", hub_ids=("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct"),
        model_types=("qwen2",), takes_system=True, end_of_turn=("<|im_end|>",),
        generation_eos=("<|im_end|>", "<|endoftext|>"), markers=("<|im_start|>", "<|im_end|>"),
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, token_ids=_QWEN_IDS,
    ),
    Family(
        name="qwen3", hub_ids=("Qwen/Qwen3-8B", "Qwen/Qwen3-32B"),
        model_types=("qwen3",), takes_system=True, end_of_turn=("<|im_end|>",),
        generation_eos=("<|im_end|>", "<|endoftext|>"), markers=("<|im_start|>", "<|im_end|>", "<think>"),
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        token_ids=_QWEN_IDS + (("<think>", 151667), ("</think>", 151668)),
        # mo wants the answer itself: the template then writes an empty think block after the generation prompt
        template_args=(("enable_thinking", False),),
    ),
    Family(
        name="gemma2", hub_ids=("google/gemma-2-9b-it", "google/gemma-2-27b-it"),
        model_types=("gemma2",), takes_system=False, end_of_turn=("<end_of_turn>",),
        generation_eos=("<eos>", "<end_of_turn>"), markers=("<start_of_turn>", "<end_of_turn>"),
        bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
        token_ids=_GEMMA_LOW_IDS + (("<start_of_turn>", 106), ("<end_of_turn>", 107)),
    ),
    Family(
        name="gemma3", hub_ids=("google/gemma-3-4b-it", "google/gemma-3-27b-it"),
        # the template folds a system message into the first user turn itself
        model_types=("gemma3", "gemma3_text"), takes_system=True, end_of_turn=("<end_of_turn>",),
        generation_eos=("<eos>", "<end_of_turn>"), markers=("<start_of_turn>", "<end_of_turn>", "<start_of_image>"),
        bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
        token_ids=_GEMMA_LOW_IDS + (("<start_of_turn>", 105), ("<end_of_turn>", 106), ("<start_of_image>", 255999)),
    ),
    Family(
        name="mistral", hub_ids=("mistralai/Mistral-7B-Instruct-v0.3",),
        model_types=("mistral",), takes_system=True, system_in_last_turn=True, end_of_turn=("</s>",),
        generation_eos=("</s>",), markers=("[INST]", "[/INST]"), bos="<s>", eos="</s>", pad=None, unk="<unk>",
        token_ids=(("<unk>", 0), ("<s>", 1), ("</s>", 2), ("[INST]", 3), ("[/INST]", 4)),
    ),
)}

# the most specific family first: Qwen 3's markers include Qwen 2.5's, Gemma 3's Gemma 2's
_BY_MARKERS = sorted(FAMILIES.values(), key=lambda f: -len(f.markers))


def family_of(config_or_tokenizer: PretrainedConfig | PreTrainedTokenizerBase | PreTrainedModel) -> Family | None:
    """The family of a tokenizer (by its special tokens), a config (by ``model_type``) or a model; None if unknown."""
    obj = config_or_tokenizer
    if hasattr(obj, "convert_tokens_to_ids"):
        return next((f for f in _BY_MARKERS if all(_has(obj, t) for t in f.markers)), None)
    config = obj if hasattr(obj, "model_type") else getattr(obj, "config", None)
    model_type = getattr(config, "model_type", None)
    family = next((f for f in FAMILIES.values() if model_type in f.model_types), None)
    # model_type "llama" is also Llama 2's, TinyLlama's and mo's toy model's: Llama 3 has its own rope
    # scaling (3.1 on) or its 128k vocabulary
    if family is FAMILIES["llama3"] and not _llama3_config(config):
        return None
    return family


def _llama3_config(config: PretrainedConfig) -> bool:
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return rope.get("rope_type") == "llama3" or getattr(config, "vocab_size", 0) >= 128256


def _has(tokenizer: PreTrainedTokenizerBase, token: str) -> bool:
    """Whether ``token`` is one token of the vocabulary (an unknown one maps to None or to the unk id)."""
    idx = tokenizer.convert_tokens_to_ids(token)
    return idx is not None and (idx != tokenizer.unk_token_id or token == tokenizer.unk_token)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the tokens that end a reply of the tokenizer's family (end of turn, generation eos); [] if unknown."""
    family = family_of(tokenizer)
    if family is None:
        return []
    tokens = dict.fromkeys(family.end_of_turn + family.generation_eos)
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens if _has(tokenizer, t)]


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the tokens that close an assistant turn in the tokenizer's family; [] if unknown."""
    family = family_of(tokenizer)
    if family is None:
        return []
    return [tokenizer.convert_tokens_to_ids(t) for t in family.end_of_turn if _has(tokenizer, t)]
