"""Frontier pictures: one organism's points and hull, or several organisms overlaid.

Axes are fixed and labelled so that a plot reads without explanation: relative capability
across, backdoor removal up, the do-nothing corner (1, 0) and the proportional-cost line
from (0, 1) to (1, 0) (the maximally robust frontier, AUC 0.5) drawn in grey.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlproject import frontier  # noqa: E402
from mlproject.frontier import Point  # noqa: E402


def _axes(title: str):
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    ax.plot([0, 1], [1, 0], color="0.7", ls="--", lw=1, label="proportional cost (AUC 0.5)")
    ax.axvline(0.9, color="0.85", lw=1)
    ax.text(0.9, 1.02, "90% capability", ha="center", fontsize=7, color="0.5")
    ax.set(xlabel="relative capability (1 = organism before the attack)",
           ylabel="backdoor removal (1 − rate / rate before)", title=title, xlim=(0, 1.15), ylim=(-0.05, 1.08))
    ax.grid(alpha=0.3)
    return fig, ax


def _draw(ax, points: Sequence[Point], label: str, color) -> None:
    area = frontier.auc(points)
    ax.scatter([p.capability for p in points], [p.removal for p in points], s=14, color=color, alpha=0.6)
    hx, hy = zip(*frontier.hull(points), strict=True)
    ax.plot(hx, hy, color=color, lw=1.8, label=f"{label}  AUC {area:.2f}")


def frontier_figure(points: Sequence[Point], title: str, label: str = "hull of reached points") -> Figure:
    """One organism against one attack: its checkpoints and their convex hull."""
    fig, ax = _axes(title)
    _draw(ax, points, label, "C0")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def overlay_figure(curves: Mapping[str, Sequence[Point]], title: str) -> Figure:
    """Several organisms (or attacks) on one plot, one colour each, AUC in the legend."""
    fig, ax = _axes(title)
    for i, (label, points) in enumerate(curves.items()):
        _draw(ax, points, label, f"C{i % 10}")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def trajectory_figure(aucs: Sequence[float], interval: tuple[float, float], title: str) -> Figure:
    """A search's AUC after each trial, with its bootstrap interval over trials at the end."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    trials = range(1, len(aucs) + 1)
    ax.plot(trials, aucs, marker="o", ms=3, color="C0", label="AUC of the trials so far")
    if all(map(math.isfinite, interval)):
        ax.axhspan(*interval, color="C0", alpha=0.12, label="95% interval over trials (all trials)")
    ax.set(xlabel="trials (in the order they ended)", ylabel="robustness AUC", ylim=(0.48, 1.02))
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig
