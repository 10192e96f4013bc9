"""What a study found: the frontier points of its trials, their AUC, and its interval over trials.

A trial keeps its evaluated checkpoints as the ``points`` user attribute, ``[step,
capability, removal, rate]`` each (:mod:`tuning.worker`); complete and pruned trials count
(a pruned trial's points were measured all the same), step 0 (the organism before the
attack) does not.
"""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from mlproject import convergence, frontier

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def trial_points(study: optuna.Study) -> list[list[frontier.Point]]:
    """The points of every complete and pruned trial, one list per trial, in the order the trials ended."""
    trials = sorted(study.get_trials(deepcopy=False, states=COUNTED), key=lambda t: (t.datetime_complete, t.number))
    return [[frontier.Point(cap, rem) for step, cap, rem, _ in t.user_attrs.get("points", []) if step > 0]
            for t in trials]


def summary(study: optuna.Study, seed: int = 0) -> dict:
    """AUC and reduction at 90% capability over all trials, the AUC's interval over trials, trial counts, and
    whether the search has converged (:mod:`mlproject.convergence`; ``convergence`` says it in words)."""
    trials = trial_points(study)
    points = [p for t in trials for p in t]
    states = [t.state for t in study.get_trials(deepcopy=False)]
    lo, hi = frontier.bootstrap_trials(trials, seed=seed)
    said = convergence.verdict(convergence.trajectory(trials), (lo, hi))
    minutes = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials(
        deepcopy=False, states=COUNTED) if t.datetime_start and t.datetime_complete) / 60
    return frontier.summary(points) | {
        "points": len(points), "trial_minutes": minutes, "trials_complete": states.count(TrialState.COMPLETE),
        "trials_pruned": states.count(TrialState.PRUNED), "trials_failed": states.count(TrialState.FAIL),
        "auc_low": lo, "auc_high": hi, "converged": said.converged, "last_quarter_rise": said.rise,
        "convergence": str(said)}
