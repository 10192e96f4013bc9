"""Promote registered organisms: point an alias at the versions a robustness policy picks.

    mo promote --policy "max_auc <= 0.75" --alias robust [--dry-run]
    mo promote --policy "max_auc <= 0.75 and min_reduction_at_0.9 < 0.2" --alias robust
    mo promote --policy champion --alias champion

A policy reads the ``robustness.<attack>.*`` tags that attacks write on registered
versions (``registry.store.set_robustness``); ``champion`` picks, per backdoor, the version
with the lowest mean AUC. Each registered model ``mo-*`` gets the alias on at most one
version; where no version qualifies any more, the alias is removed. ``--dry-run`` prints
what would change and changes nothing. A version measured by a sweep that has not converged
(its last quarter of trials still raised the AUC) is held back unless ``--allow-unconverged``:
its AUC may yet rise. Every change is recorded on the version as
``mo.promotion.<alias>`` and in ``mo.promotion.history`` (MLflow keeps no alias history).
Use the result as ``models:/<name>@<alias>`` wherever an organism directory is accepted.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from mlproject import tracking
from mlproject.errors import UserError
from mlproject.options import opt
from registry.promote import Change, check_alias, parse, promote


@dataclass(frozen=True)
class PromoteConfig:
    """Settings of ``mo promote``."""

    policy: str = opt("max_auc <= 0.75", "'champion', or <min|max|mean>_<auc|reduction_at_0.9> <op> <number> "
                                         "[and ...] over the attacks a version met")
    alias: str = opt("robust", "the alias to move (not 'latest' or v<number>: MLflow reserves those)")
    dry_run: bool = opt(False, "print what would change, change nothing")
    allow_unconverged: bool = opt(False, "count versions whose sweeps have not converged (the last quarter of their "
                                         "trials still raised the AUC): their AUC may rise with more trials")

    def __post_init__(self) -> None:
        check_alias(self.alias)
        if self.policy.strip() != "champion":
            parse(self.policy)  # fail on the flags, before touching the registry


def run(cfg: PromoteConfig) -> list[Change]:
    """Apply (or, with ``dry_run``, preview) the promotion; one printed line per change."""
    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        changes = promote(cfg.policy, cfg.alias, cfg.dry_run, allow_unconverged=cfg.allow_unconverged)
    except MlflowException as err:  # an unreachable or refusing server: one line, not a traceback
        raise UserError("MLFLOW_TRACKING_URI", tracking.redact(uri),
                        f"registry call failed ({str(err).splitlines()[0]})") from None
    prefix = "would " if cfg.dry_run else ""
    for change in changes:
        print(prefix + str(change))
    if not changes:
        print(f"nothing to change: no mo-* version satisfies {cfg.policy!r} and none holds @{cfg.alias}")
    return changes
