"""Has a search converged: the AUC after each trial, and the last quarter's rise against the interval."""
from __future__ import annotations

import math

import pytest

from mlproject import convergence, frontier
from mlproject.frontier import Point


def test_trajectory_is_the_auc_of_the_trials_so_far():
    trials = [[Point(1.0, 0.0)], [Point(0.9, 0.5)], [], [Point(0.5, 0.5)], [Point(0.95, 0.8)]]
    aucs = convergence.trajectory(trials)
    assert aucs[0] == pytest.approx(0.5) and aucs[2] == aucs[1] and aucs[3] == aucs[1]  # nothing new: no rise
    assert aucs[1] == pytest.approx(frontier.auc([Point(0.9, 0.5)]))
    assert aucs == sorted(aucs) and aucs[-1] == pytest.approx(frontier.auc([p for t in trials for p in t]))


def test_a_last_quarter_that_still_raises_the_auc_is_not_converged():
    flat = [0.6] * 9 + [0.62, 0.62, 0.62]  # 12 trials: the last 3 rose by 0.02 over trial 9
    assert convergence.verdict(flat, (0.55, 0.65)).converged  # 0.02 <= half-width 0.05
    said = convergence.verdict(flat, (0.60, 0.62))  # half-width 0.01 < 0.02
    assert not said.converged and said.rise == pytest.approx(0.02) and said.trials == 12
    assert "not converged" in str(said) and "run more trials" in str(said) and "last 3 of 12" in str(said)
    rising = [0.53, 0.60, 0.70, 0.82]
    assert not convergence.verdict(rising, (0.78, 0.86)).converged  # the last trial added 0.12 > 0.04


def test_too_few_trials_or_no_interval_never_converge():
    assert not convergence.verdict([0.5, 0.5, 0.5], (0.5, 0.5)).converged  # three trials: the demo's size
    assert "3 trials (at least 4)" in str(convergence.verdict([0.5, 0.5, 0.5], (0.5, 0.5)))
    assert convergence.verdict([0.5] * 4, (0.5, 0.5)).converged  # four that found nothing: nothing more to find
    assert not convergence.verdict([0.5] * 4, (math.nan, math.nan)).converged
    assert not convergence.verdict([], (math.nan, math.nan)).converged
