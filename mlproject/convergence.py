"""Has a search converged? The AUC a search reports can only rise with more trials.

A robustness AUC is the hull of what the trials found, so a search stopped early reads more
robust than the organism is (one organism read 0.53 after 3 trials and 0.82 after 12). The
rule: a search has converged when its last quarter of trials raised the AUC by no more than
half the width of its bootstrap interval over trials, the resolution of the estimate itself.
Fewer than :data:`MIN_TRIALS` trials never count as converged.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlproject import frontier

MIN_TRIALS = 4  # below this the last quarter is a single trial or none: nothing to compare against


@dataclass(frozen=True)
class Verdict:
    """Whether the search has converged, and the numbers that say so."""

    converged: bool
    trials: int
    rise: float  # AUC gained over the last quarter of trials
    half_width: float  # half the bootstrap interval's width: the rise the estimate cannot resolve

    def __str__(self) -> str:
        if self.converged:
            return f"converged: the last {_quarter(self.trials)} of {self.trials} trials raised the AUC by " \
                   f"{self.rise:.3f} <= {self.half_width:.3f}"
        if self.trials < MIN_TRIALS:
            return f"not converged: {self.trials} trials (at least {MIN_TRIALS}); run more trials"
        return f"not converged: the last {_quarter(self.trials)} of {self.trials} trials raised the AUC by " \
               f"{self.rise:.3f} > {self.half_width:.3f}; run more trials"


def _quarter(n: int) -> int:
    return max(1, math.ceil(n / 4))


def trajectory(trials: Sequence[Sequence[frontier.Point]]) -> list[float]:
    """The AUC of the first 1, 2, ... n trials (in the order given: the order they ended)."""
    seen: list[frontier.Point] = []
    out = []
    for points in trials:
        seen += points
        out.append(frontier.auc(seen))
    return out


def verdict(aucs: Sequence[float], interval: tuple[float, float]) -> Verdict:
    """The convergence of a search whose AUC after each trial was ``aucs``, given its bootstrap ``interval``."""
    n = len(aucs)
    half = (interval[1] - interval[0]) / 2
    if n == 0:
        return Verdict(False, 0, math.nan, half)
    before = aucs[n - _quarter(n) - 1] if n > _quarter(n) else 0.5  # no trial yet: the anchors' hull, 0.5
    rise = aucs[-1] - before
    return Verdict(n >= MIN_TRIALS and math.isfinite(half) and rise <= half, n, rise, half)
