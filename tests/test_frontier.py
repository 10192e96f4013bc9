"""Frontier metrics against hand-computed cases."""
from __future__ import annotations

import pytest

from mlproject import frontier
from mlproject.frontier import Outcomes, Point


@pytest.mark.parametrize("points,area", [
    ([], 0.5),                                # nothing reached: maximally robust
    ([Point(0.5, 0.5)], 0.5),                 # on the proportional-cost line
    ([Point(1.0, 1.0)], 1.0),                 # removal for free
    ([Point(1.0, 0.5)], 0.75),                # trapezoid under (0,1)-(1,0.5)
    ([Point(1.2, 0.0)], 0.6),                 # capability above 1 is not clipped
    ([Point(0.9, -0.3)], 0.5),                # a rate increase removes nothing
    ([Point(1.0, 0.5), Point(0.5, 0.9)], 0.5 * 0.5 * (1.0 + 0.9) + 0.5 * 0.5 * (0.9 + 0.5)),
])
def test_auc(points, area):
    assert frontier.auc(points) == pytest.approx(area)


def test_pareto_drops_dominated_points():
    pts = [Point(1, 0), Point(0.9, 0.5), Point(0.8, 0.4), Point(0.5, 0.9), Point(0.5, 0.2)]
    assert frontier.pareto(pts) == [Point(1, 0), Point(0.9, 0.5), Point(0.5, 0.9)]


def test_reduction_at_uses_reached_points_only():
    pts = [Point(0.95, 0.3), Point(0.85, 0.9)]
    assert frontier.reduction_at(pts, 0.9) == 0.3
    assert frontier.reduction_at([Point(0.5, 1.0)], 0.9) == 0.0


def test_to_point():
    assert frontier.to_point(0.45, 0.9, 0.2, 0.8) == Point(pytest.approx(0.5), pytest.approx(0.75))
    assert frontier.to_point(0.5, 0.0, 0.5, 0.0) == Point(0.0, 0.0)


def test_hull_runs_from_destroy_to_do_nothing():
    h = frontier.hull([Point(1.0, 0.5), Point(0.4, 0.3)])
    assert h[0] == (0.0, 1.0) and h[-1][0] == 1.0 and (0.4, 0.3) not in h


def test_bootstrap_interval_brackets_the_estimate_and_narrows():
    before = Outcomes([True] * 80 + [False] * 20, [True] * 90 + [False] * 10)
    after = Outcomes([True] * 70 + [False] * 30, [True] * 45 + [False] * 55)
    estimate = frontier.auc([frontier.to_point(0.7, 0.8, 0.45, 0.9)])
    lo, hi = frontier.bootstrap_auc([after], before, n=300)
    assert lo <= estimate <= hi
    wide = frontier.bootstrap_rate([True, False] * 10, n=500)
    narrow = frontier.bootstrap_rate([True, False] * 500, n=500)
    assert wide[1] - wide[0] > narrow[1] - narrow[0] and narrow[0] < 0.5 < narrow[1]


def test_auc_refuses_points_it_cannot_place():
    """A NaN or infinite point is an error, never the anchors' 0.5 ("maximally robust") in its place."""
    import math

    import pytest

    for bad in (Point(math.nan, 0.5), Point(0.5, math.inf)):
        with pytest.raises(ValueError, match="finite"):
            frontier.auc([Point(0.9, 0.2), bad])


def test_trial_bootstrap_spans_the_draws_with_and_without_the_lucky_trial():
    """Trial 1 alone makes the hull; 7 in 10 draws of three trials hold it, the rest read lower."""
    import math

    trials = [[Point(1.0, 0.0), Point(0.8, 0.4)], [Point(0.9, 0.9)], [Point(0.2, 0.3)]]
    lo, hi = frontier.bootstrap_trials(trials, n=200, seed=0)
    assert hi == pytest.approx(frontier.auc(trials[1]))
    assert lo < hi and lo == pytest.approx(frontier.auc(trials[0] + trials[2]), abs=0.1)
    assert all(math.isnan(x) for x in frontier.bootstrap_trials([], n=10))  # no trials, no interval
