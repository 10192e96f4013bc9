"""LoRA adapters (peft) on every linear layer of a causal LM."""
from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from mlproject.errors import require
from mlproject.seeding import seeded


def attach(model: PreTrainedModel, rank: int, adapter: str = "default", seed: int = 0) -> PeftModel:
    """``model`` with a fresh trainable LoRA of ``rank`` on all linear layers (``lora_alpha = 2 * rank``).

    Scaling alpha with the rank keeps the adapter's initial step size comparable across
    ranks, which the rank sweeps of the method (1 to 1024) rely on. peft draws the adapter's
    A matrices from torch's global generator, whose seed differs in every process unless
    set, so they are drawn from ``seed`` here: the same command gives the same adapter.
    The caller's random state is left as it was.
    """
    require(rank > 0, "rank", rank, "must be > 0")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    with seeded(seed):
        if isinstance(model, PeftModel):
            model.add_adapter(adapter, config)
            model.set_adapter(adapter)
            return model
        return get_peft_model(model, config, adapter_name=adapter)


def trainable_parameters(model: PreTrainedModel) -> int:
    """How many parameters an optimiser would update."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
