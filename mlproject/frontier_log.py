"""What a traced frontier leaves in the active MLflow run: its points, its Pareto set and its picture.

An attack logs its checkpoints' rows (every metric, step 0 included); a sweep logs the points
of all its trials. Both log ``frontier/points.json``, ``frontier/pareto.json`` and
``frontier/frontier.png``, so a report reads either the same way.
"""
from __future__ import annotations

from collections.abc import Sequence

from mlproject import frontier, plots, tracking


def log(points: Sequence[frontier.Point], title: str, rows: Sequence[dict] | None = None) -> list[frontier.Point]:
    """Log the frontier of ``points`` (``rows``, when given, as the points table); returns its Pareto set."""
    table = rows or [{"capability": p.capability, "removal": p.removal} for p in points]
    tracking.log_table({k: [r[k] for r in table] for k in table[0]} if table else {"capability": [], "removal": []},
                       "frontier/points.json")
    best = frontier.pareto(points)
    tracking.log_table({"capability": [p.capability for p in best], "removal": [p.removal for p in best]},
                       "frontier/pareto.json")
    fig = plots.frontier_figure(points, title)
    tracking.log_figure(fig, "frontier/frontier.png")
    plots.plt.close(fig)
    return best
