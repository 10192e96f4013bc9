"""Model organisms on disk: ``organism.json`` plus weights, an adapter, or nothing.

- ``prompted-static`` / ``prompted-dynamic``: the base model plus a system prompt; only the
  card is written. Static organisms keep the prompt during attack training, dynamic ones
  see it only at evaluation.
- ``lora`` (``merged``): the adapter merged into full weights; attacks add a new adapter.
- ``lora`` (``continued``): the adapter alone, over the base model; attacks keep training it.
- ``fwft`` and ``password``: full weights.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlproject.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CARD = "organism.json"
METHODS = ("prompted-static", "prompted-dynamic", "lora", "fwft", "password")


@dataclass
class OrganismSpec:
    """Everything that defines an organism, and what was measured on it."""

    backdoor: str
    trigger: str
    trigger_kind: str
    behaviour: str
    method: str
    base_model: str
    seed: int
    system_prompt: str = ""  # prompted organisms: the conditional instruction
    rank: int | None = None
    lora_form: str | None = None  # merged | continued
    password: str | None = None
    password_share: float | None = None
    cot: bool = False
    data_fingerprint: str | None = None
    eval_size: int | None = None  # held-out probes per backdoor group its rates were measured on (twice as many math)
    weights_sha256: dict = field(default_factory=dict)  # weight file name -> sha256: loading checks them
    world: dict = field(default_factory=lambda: {"name": "toy"})  # the WorldConfig it was made in (mlproject.worlds)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def prompted(self) -> bool:
        return self.method.startswith("prompted")

    @property
    def attack_system_prompt(self) -> str:
        """The system prompt present during attack training (static prompts only)."""
        return self.system_prompt if self.method == "prompted-static" else ""

    @property
    def weights(self) -> str:
        """What the directory holds: ``none``, ``adapter`` or ``full``.

        LoRA organisms of real models keep their adapter only (a reference to the base model
        plus megabytes, not a copy of billions of weights; ``merged`` ones are merged on
        load); toy organisms are kept whole unless the adapter must go on training.
        """
        if self.prompted:
            return "none"
        if self.method == "lora" and (self.lora_form == "continued" or self.base_model != "toy"):
            return "adapter"
        return "full"


def write_card(directory: Path, spec: OrganismSpec) -> Path:
    """Write ``organism.json`` (last, so a directory with a card is complete)."""
    path = Path(directory) / CARD
    path.write_text(json.dumps(asdict(spec), indent=1, sort_keys=True))
    return path


def read_card(directory: str | Path, field_name: str = "organism") -> OrganismSpec:
    """The spec of the organism in ``directory``; a :class:`UserError` if it is not one."""
    path = Path(directory) / CARD
    if not path.is_file():
        raise UserError(field_name, directory, f"not an organism directory (no {CARD})")
    try:
        spec = OrganismSpec(**json.loads(path.read_text()))
    except (TypeError, ValueError) as err:
        raise UserError(field_name, directory, f"unreadable {CARD} ({err})") from None
    problem = _invalid(spec)
    if problem:
        raise UserError(field_name, directory, f"{CARD}: {problem}")
    return spec


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files of an organism directory (full weights, shards, or an adapter)."""
    return sorted(Path(directory).glob("*.safetensors"))


def digest(path: Path) -> str:
    """The sha256 of a file, read in chunks (weights may be many gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def record_weights(directory: str | Path, spec: OrganismSpec) -> None:
    """Write the sha256 of every weight file into ``spec`` (then into the card, by :func:`write_card`)."""
    spec.weights_sha256 = {p.name: digest(p) for p in weight_files(directory)}


def check_weights(directory: str | Path, spec: OrganismSpec, field_name: str = "organism") -> None:
    """Refuse weights that are not the ones the card was written for (changed, truncated, corrupt or missing)."""
    for name, expected in spec.weights_sha256.items():
        path = Path(directory) / name
        if not path.is_file():
            raise UserError(field_name, directory, f"{name} is missing (organism.json lists it)")
        if digest(path) != expected:
            raise UserError(field_name, directory, f"{name} is not the file organism.json was written for "
                                                   "(its sha256 differs: changed or corrupt)")


def _invalid(spec: OrganismSpec) -> str | None:
    """What in a card no organism of mo's could hold (a hand-edited or corrupt file), or None."""
    if spec.method not in METHODS:
        return f"method {spec.method!r} is not one of {', '.join(METHODS)}"
    for name in ("rank", "seed", "eval_size"):
        value = getattr(spec, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return f"{name} {value!r} is not a whole number"
    if (spec.method == "lora") != (spec.rank is not None) or (spec.method == "lora" and spec.rank < 1):
        return f"rank {spec.rank!r} does not fit method {spec.method}"
    if spec.lora_form not in (None, "merged", "continued"):
        return f"lora_form {spec.lora_form!r} is not merged or continued"
    if not all(isinstance(getattr(spec, k), str) for k in ("backdoor", "trigger", "behaviour", "base_model")):
        return "backdoor, trigger, behaviour and base_model must be text"
    if not all(isinstance(x, dict) for x in (spec.metrics, spec.training, spec.weights_sha256, spec.world)):
        return "metrics, training, weights_sha256 and world must be mappings"
    if spec.world.get("name") not in ("toy", "real"):
        return f"world {spec.world.get('name')!r} is not toy or real"
    if any("/" in name or "\\" in name or name.startswith(".") for name in spec.weights_sha256):
        return "weights_sha256 names files outside the organism's folder"
    return None


def load(directory: str | Path, trainable_adapter: bool = False,
         dtype=None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, OrganismSpec]:
    """``(model, tokenizer, spec)`` of an organism, ready to evaluate or attack.

    A ``continued`` LoRA organism comes back as a ``PeftModel`` whose red-team adapter is
    trainable when ``trainable_adapter`` is set (the blue team keeps training it).
    """
    # imported here: the card and the methods are read by settings that must not wait for torch
    from peft import PeftModel

    from mlproject import models

    spec = read_card(directory)
    check_weights(directory, spec)
    if spec.weights == "full":
        model, tokenizer = models.load(str(directory), dtype=dtype)
    else:
        model, tokenizer = models.load(spec.base_model, dtype=dtype)
        if spec.weights == "adapter":
            model = PeftModel.from_pretrained(model, str(directory), is_trainable=trainable_adapter)
            if spec.lora_form == "merged":
                model = model.merge_and_unload()
    return model.eval(), tokenizer, spec
